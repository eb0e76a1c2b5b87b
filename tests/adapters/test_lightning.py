"""The cockpit on a Lightning fit: ``callbacks=[CockpitCallback()]``, then every command from outside.

Each test fits ``tests/adapters/lightning_train.py`` in a child process and acts on it only through
the channel, as ``cockpit ctl`` and the views do. Every batch waits for a gate file, so commands
sent before the first one land at a known place, and a test can hold the run still.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

pytest.importorskip("lightning")

from adapters.helpers import HERE, ScriptRun, scalar_after, steer_from_the_notebook  # noqa: E402
from cockpit.adapters.lightning import metric_key  # noqa: E402
from cockpit.channel.client import find_runs  # noqa: E402


def start(folder: Path, *extra: str, env: dict[str, str] | None = None) -> ScriptRun:
    run = ScriptRun(folder, [str(HERE / "lightning_train.py"), str(folder / "w"), "--gate", str(folder / "gate"),
                             *extra], env=env)
    try:
        run.connect(folder / "w")
    except BaseException:
        run.end()
        raise
    return run


@pytest.fixture
def fit(tmp_path):
    run = start(tmp_path / "fit")
    try:
        yield run
    finally:
        run.end()


def test_every_command_from_outside_and_the_notebook_widget(fit):
    run = fit
    state = run.state
    table = dict(state.hooks)
    assert [name for _, _, name in table["on_train_batch_end"]] == ["CockpitCallback", "ModelCheckpoint"]
    assert [name for _, _, name in table["on_train_batch_start"]] == ["Gate", "CockpitCallback"]
    offered = {c.name for c in state.commands}
    assert {"val", "save", "pause", "continue", "stop", "set", "note"} <= offered
    # Lightning cannot load a checkpoint into a running fit: no view offers resume (sent anyway, it says how).
    assert "resume" not in offered and "resume" not in {c["name"] for c in run.client.commands()}
    assert state.status == "running" and state.info["max_iters"] == 100_000

    pause = run.client.command("pause", wait=False)
    run.release()
    run.wait_status("paused")
    assert run.client.request("outcome", {"id": pause["id"]})["message"] == "paused at iter 1"

    message = run.command("set", "*0.5")
    assert message == "lr 0.06 -> 0.03; the schedule is scaled x0.5 and continues from the new value"
    saved = run.command("save")
    assert saved.endswith("checkpoints/cockpit-epoch=0-step=1.ckpt") and Path(saved.split()[-1]).is_file()
    run.wait(lambda s: any(c["path"].endswith("cockpit-epoch=0-step=1.ckpt") for c in s.checkpoints),
             "the checkpoint in the view")
    assert run.command("val") == ("validating after this batch (step 1); the metrics follow as val/ scalars and "
                                  "in the log")
    assert run.command("note", "hello") == "noted hello"
    run.wait(lambda s: s.info.get("note") == "hello at step 1", "the callback's command to act")
    refused = run.command("resume", "latest", expect="rejected")
    assert refused.endswith(f"trainer.fit(model, ckpt_path={saved.split()[-1]!r})"), refused
    assert "missing.ckpt" in run.command("resume", "missing.ckpt", expect="rejected")

    run.command("continue")
    run.wait(lambda s: "val/acc" in s.scalars and "val/loss" in s.scalars, "the validation the command asked for")
    assert any("cockpit: validation at step 1: val/" in line for _, _, line in run.state.logs)
    # The warm-up ends at step 5; the schedule, scaled, goes on from half the configured lr.
    run.wait(lambda s: scalar_after(s, "train/lr", 6) is not None, "steps past the warm-up")
    assert scalar_after(run.state, "train/lr", 6) == pytest.approx(0.05)
    run.wait(lambda s: "train/loss" in s.scalars and s.info.get("iter", 0) >= 20, "twenty steps")
    steer_from_the_notebook(run)

    assert run.command("stop") == "stopping after this iteration (checkpoint saved)"
    run.wait_status("stopped")
    assert run.exit_code() == 0, run.output()[-3000:]
    record = run.record()
    assert record["status"] == "stopped" and Path(record["last_checkpoint"]).is_file()
    assert find_runs(run.folder / "w")[0]["status"] == "stopped"
    calls, seconds = run.state.hook_timings[("on_train_batch_end", "CockpitCallback")]
    assert calls >= 20 and seconds / calls < 0.05  # the paused time is not the callback's


def test_a_finished_and_a_failed_fit_say_so(tmp_path):
    announce = tmp_path / "announced.json"  # what `cockpit run --script` waits for
    run = start(tmp_path / "short", "--max-steps", "6", env={"COCKPIT_ANNOUNCE": str(announce)})
    try:
        assert json.loads(announce.read_text())["run_dir"] == str(run.run_dir)
        run.release()
        run.wait_status("finished")
        assert run.exit_code() == 0 and run.record()["iter"] == 6
    finally:
        run.end()
    run = start(tmp_path / "broken", "--fail-at", "3")
    try:
        run.release()
        run.wait_status("failed")
        assert run.exit_code() != 0
        assert run.state.status_detail == "RuntimeError: failing on purpose at step 3"
        assert run.record()["status"] == "failed"
    finally:
        run.end()


def test_sigterm_saves_then_stops_the_fit(tmp_path):
    run = start(tmp_path / "term")
    try:
        run.release()
        run.wait(lambda s: s.info.get("iter", 0) >= 3, "a few steps")
        run.process.send_signal(signal.SIGTERM)
        run.wait_status("stopped")
        assert run.state.status_detail == "received SIGTERM"
        run.exit_code()
        record = run.record()
        assert record["status"] == "stopped", record
        saved = list((tmp_path / "term").glob("**/cockpit-epoch=*-step=*.ckpt"))
        assert saved, "no checkpoint was saved on SIGTERM"
    finally:
        run.end()


@pytest.mark.parametrize(("name", "mode", "key"), [
    ("val_loss", "val", "val/loss"), ("train_acc", "val", "train/acc"), ("acc", "val", "val/acc"),
    ("valid/f1", "train", "valid/f1"), ("loss", "train", "train/loss"), ("validation", "val", "val/validation"),
])
def test_logged_names_become_hub_keys(name, mode, key):
    assert metric_key(name, mode) == key
    assert re.fullmatch(r"\w+/.+", key)


def test_commands_reach_every_rank_of_a_ddp_fit(tmp_path):
    run = start(tmp_path / "ddp", "--devices", "2")
    work = run.folder / "w"
    try:
        run.client.command("pause", wait=False)
        run.release()
        run.wait_status("paused")
        assert run.command("note", "both") == "noted both"  # each rank applies it: one file each
        assert run.command("set", "*0.5").startswith("lr 0.06 -> 0.03")
        assert run.command("save").endswith("cockpit-epoch=0-step=1.ckpt")  # every rank saves, or it would hang
        run.command("continue")
        run.wait(lambda s: s.info.get("iter", 0) >= 10, "both ranks training on")
        run.command("stop")
        run.wait_status("stopped")
        assert run.exit_code() == 0, run.output()[-3000:]
        assert [(work / f"note-rank{rank}").read_text() for rank in (0, 1)] == ["both at step 1\n"] * 2
    finally:
        run.end()
