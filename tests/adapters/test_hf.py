"""The cockpit on a Hugging Face Trainer run: ``callbacks=[CockpitCallback()]``, then every command from outside.

Each test trains a 2-layer Bert built from a config (no download; ``tests/adapters/hf_train.py``) in a
child process and acts on it only through the channel, as ``cockpit ctl`` and the views do. Every step
waits for a gate file, so commands sent before the first one land at a known place.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from adapters.helpers import HERE, ScriptRun, scalar_after, steer_from_the_notebook  # noqa: E402
from cockpit.adapters.hf import metric_key  # noqa: E402
from cockpit.channel.client import find_runs  # noqa: E402


def start(folder: Path, *extra: str) -> ScriptRun:
    run = ScriptRun(folder, [str(HERE / "hf_train.py"), str(folder / "out"), "--gate", str(folder / "gate"), *extra])
    try:
        run.connect(folder / "out")
    except BaseException:
        run.end()
        raise
    return run


@pytest.fixture
def trainer_run(tmp_path):
    run = start(tmp_path / "hf")
    try:
        yield run
    finally:
        run.end()


def test_every_command_from_outside_and_the_notebook_widget(trainer_run):
    run = trainer_run
    state = run.state
    table = dict(state.hooks)
    assert [name for _, _, name in table["on_step_end"]] == ["DefaultFlowCallback", "CockpitCallback"]
    assert [name for _, _, name in table["on_step_begin"]] == ["Gate", "CockpitCallback"]
    offered = {c.name for c in state.commands}
    assert {"val", "save", "pause", "continue", "stop", "set", "note"} <= offered
    # the Trainer cannot load a checkpoint into a running fit: no view offers resume (sent anyway, it says how).
    assert "resume" not in offered and "resume" not in {c["name"] for c in run.client.commands()}
    assert state.status == "running" and state.info["max_iters"] == 100_000
    out = run.folder / "out"

    pause = run.client.command("pause", wait=False)
    run.release()
    run.wait_status("paused")
    assert run.client.request("outcome", {"id": pause["id"]})["message"] == "paused at iter 1"

    # The linear warm-up's second value, 0.01 * 1/10, in the Trainer's two groups (with and without weight decay).
    assert run.command("set", "*0.5") == ("lr 0.001, 0.001 -> 0.0005, 0.0005; the schedule is scaled x0.5 and "
                                          "continues from the new value")
    assert run.command("save") == f"saving {out.resolve() / 'checkpoint-1'} at the end of this step"
    assert run.command("val") == ("evaluating at the end of this step (step 1); the metrics follow as val/ scalars "
                                  "and in the log")
    assert run.command("note", "hello") == "noted hello"
    run.wait(lambda s: s.info.get("note") == "hello at step 1", "the callback's command to act")
    assert run.command("resume", "latest", expect="rejected") == "no checkpoint has been saved yet"

    run.command("continue")
    run.wait(lambda s: "val/loss" in s.scalars, "the evaluation the command asked for")
    run.wait(lambda s: any(c["path"].endswith("checkpoint-1") for c in s.checkpoints), "checkpoint-1 in the view")
    assert (out / "checkpoint-1" / "trainer_state.json").is_file()
    refused = run.command("resume", "latest", expect="rejected")
    assert refused.endswith(f"trainer.train(resume_from_checkpoint={str(out.resolve() / 'checkpoint-1')!r})"), refused
    # After the warm-up, the linear decay goes on from half the configured lr.
    run.wait(lambda s: scalar_after(s, "train/lr", 11) is not None, "steps past the warm-up")
    assert scalar_after(run.state, "train/lr", 11) == pytest.approx(0.005, rel=1e-3)
    run.wait(lambda s: len(s.scalars.get("train/loss", ())) >= 12 and "train/grad_norm" in s.scalars,
             "every step's loss and the Trainer's logs")
    steer_from_the_notebook(run)

    assert run.command("stop") == "stopping after this iteration (checkpoint saved)"
    run.wait_status("stopped")
    assert run.exit_code() == 0, run.output()[-3000:]
    record = run.record()
    assert record["status"] == "stopped" and Path(record["last_checkpoint"]).is_dir()
    assert Path(record["last_checkpoint"]).name == f"checkpoint-{record['iter']}"
    assert find_runs(out)[0]["status"] == "stopped"
    calls, seconds = run.state.hook_timings[("on_step_end", "CockpitCallback")]
    assert calls >= 12 and seconds / calls < 0.5  # the paused time is not the callback's


def test_a_finished_and_a_failed_run_say_so(tmp_path):
    run = start(tmp_path / "short", "--max-steps", "4")
    try:
        run.release()
        run.wait_status("finished")
        assert run.exit_code() == 0 and run.record()["iter"] == 4
        assert run.state.info["train_summary"]["train_runtime"] > 0
    finally:
        run.end()
    run = start(tmp_path / "broken", "--fail-at", "2")
    try:
        run.release()
        run.wait_status("failed")
        assert run.exit_code() != 0
        assert run.state.status_detail == "RuntimeError: failing on purpose at step 2"
        assert run.record()["status"] == "failed"
    finally:
        run.end()


@pytest.mark.parametrize(("name", "key"), [
    ("eval_loss", "val/loss"), ("eval_accuracy", "val/accuracy"), ("grad_norm", "train/grad_norm"),
    ("learning_rate", "train/lr"), ("epoch", None), ("train_runtime", None), ("custom/x", "custom/x"),
])
def test_logged_names_become_hub_keys(name, key):
    assert metric_key(name) == key
