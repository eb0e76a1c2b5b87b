"""The cockpit on an unmodified MMEngine run: two config lines, then every command from outside.

Each test trains ``tests/adapters/mm_train.py`` (``Runner.from_cfg(...).train()``, MMEngine's own
runner) in a child process and acts on it only through the channel, as ``cockpit ctl`` and the
views do. The first iteration waits for a gate file, so commands sent before it land at a known
place; a paused run stands still until the test continues it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("mmengine")
pytest.importorskip("cv2")

from adapters.helpers import HERE, ScriptRun, mmengine_config, scalar_after, steer_from_the_notebook  # noqa: E402
from cockpit.channel.client import find_runs  # noqa: E402


@pytest.fixture
def iter_run(tmp_path):
    folder = tmp_path / "iter"
    folder.mkdir()
    config = mmengine_config(folder, by_epoch=False, gate=folder / "gate")
    run = ScriptRun(folder, [str(HERE / "mm_train.py"), str(config)])
    try:
        run.connect(folder / "w")
        yield run
    finally:
        run.end()


def test_every_command_from_outside_and_the_notebook_widget(iter_run):
    run = iter_run
    state = run.state
    # What a view sees at once: MMEngine's hooks in priority order, the commands (built-in and a hook's).
    table = dict(state.hooks)
    assert [name for _, _, name in table["after_train_iter"]][-1] == "CockpitHook"
    assert ("VERY_HIGH", 10, "RuntimeInfoHook") in table["before_train_iter"]
    assert {"val", "save", "resume", "pause", "continue", "stop", "set", "note"} <= {c.name for c in state.commands}
    assert state.command("resume").key == "r"  # resumed in place: offered, with its key
    assert state.status == "running"

    # Sent while the first iteration waits at the gate: applied at that iteration's end.
    pause = run.client.command("pause", wait=False)
    run.release()
    run.wait_status("paused")
    assert run.client.request("outcome", {"id": pause["id"]})["message"] == "paused at iter 1"
    assert run.state.info["iter"] == 0  # the iteration in progress, as a Cockpit run says

    message = run.command("set", "*0.5")
    before, after = map(float, re.fullmatch(r"lr (\S+) -> (\S+); the schedule is scaled x0\.5 and continues from "
                                            r"the new value", message).groups())
    assert 0.05 < before < 0.1 and after == pytest.approx(before / 2)
    saved = run.command("save")
    assert saved.endswith("iter_1.pth") and Path(saved.split()[-1]).is_file()
    run.wait(lambda s: any(c["path"].endswith("iter_1.pth") for c in s.checkpoints), "the checkpoint in the view")
    assert (run.folder / "w" / "last_checkpoint").read_text().endswith("iter_1.pth")
    assert run.command("val").startswith("accuracy=")
    run.wait(lambda s: "val/accuracy" in s.scalars, "the validation metric")
    assert run.command("note", "hello") == "noted hello"
    run.wait(lambda s: s.info.get("note") == "hello at iter 0", "the hook's command to act")
    assert "bad" in run.command("set", "lr=bad", expect="rejected")

    run.command("continue")
    # The warm-up ends at iteration 5; the schedule, scaled, goes on from half the configured lr.
    run.wait(lambda s: scalar_after(s, "train/lr", 6) is not None, "iterations past the warm-up")
    assert scalar_after(run.state, "train/lr", 6) == pytest.approx(0.05)
    run.wait(lambda s: s.info.get("iter", 0) >= 20, "twenty iterations")

    run.command("pause")
    at = run.state.info["iter"]
    loss = run.poll().scalars["train/loss"]
    first_run = {step: value for step, value in zip(loss.steps, loss.values, strict=True) if 1 <= step <= 5}
    refused = run.command("resume", "iter_1.pth", expect="rejected")
    assert "resume iter_1.pth trust" in refused and "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" in refused
    message = run.command("resume", "iter_1.pth", "trust")
    assert re.fullmatch(r"resumed from iter_1\.pth: iter \d+ -> 1 \(epoch 0\)", message), message
    assert int(message.split("iter ")[1].split()[0]) >= at
    run.wait(lambda s: s.info.get("iter") == 1, "the view to show the run back at iteration 1")
    run.command("continue")
    run.wait(lambda s: s.info.get("iter", 0) >= 7, "training to go on from the checkpoint")
    steer_from_the_notebook(run)
    # The same weights, optimizer state, schedule and data position: the same losses as the first time.
    loss = run.state.scalars["train/loss"]
    again = {step: value for step, value in zip(loss.steps, loss.values, strict=True) if 1 <= step <= 5}
    assert again == pytest.approx(first_run) and len(again) == 5

    message = run.command("stop")
    assert message == "stopping after this iteration (checkpoint saved)"
    run.wait_status("stopped")
    assert run.exit_code() == 0, run.output()[-3000:]
    record = run.record()
    assert record["status"] == "stopped" and record["serving"] is False
    assert Path(record["last_checkpoint"]).is_file()
    assert find_runs(run.folder / "w")[0]["status"] == "stopped"
    timings = run.state.hook_timings
    assert timings[("after_train_iter", "LoggerHook")][0] > 20


def test_an_epoch_based_run_resumes_at_its_epochs_start_and_stops_mid_epoch(tmp_path):
    folder = tmp_path / "epoch"
    folder.mkdir()
    config = mmengine_config(folder, by_epoch=True, gate=folder / "gate", seconds=0.01)
    run = ScriptRun(folder, [str(HERE / "mm_train.py"), str(config)], env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    try:
        run.connect(folder / "w")
        run.release()
        run.wait(lambda s: any(c["path"].endswith("epoch_1.pth") for c in s.checkpoints), "the first epoch's save")
        run.wait(lambda s: s.info.get("iter", 0) >= 10, "the second epoch under way")
        at = int(run.command("pause").split()[-1])
        saved = run.command("save")
        # Mid-epoch (or, if the pause came after the epoch's hooks, at its end).
        assert (saved.endswith(f"iter_{at}.pth (mid-epoch: MMEngine resumes it from the start of epoch "
                               f"{(at - 1) // 8 + 1})") or saved.endswith(f"epoch_{at // 8}.pth")), saved
        message = run.command("resume", "epoch_1.pth")  # loads: the run trusts MMEngine checkpoints (env)
        assert message == f"resumed from epoch_1.pth: iter {at} -> 8 (epoch 1); epoch 2 starts from its first batch"
        run.hold()  # the next iteration waits at the gate: the view must show where it stands
        run.command("continue")
        run.wait(lambda s: s.info.get("epoch") == 1 and s.info.get("iter") == 8 and s.status == "running",
                 "epoch 2 about to start from its first batch")
        run.release()
        run.wait(lambda s: s.info.get("iter", 0) >= 10, "training to go on")
        run.command("stop")
        run.wait_status("stopped")
        assert run.exit_code() == 0, run.output()[-3000:]
        stopped_at = run.record()["iter"]
        # It left its epoch part-way, or at an epoch's very end (which epoch depends on how soon the view saw
        # iteration 10), and saved where it stopped.
        assert stopped_at >= 10
        saved = sorted(p.name for p in (folder / "w").glob("*.pth"))
        assert f"iter_{stopped_at}.pth" in saved or f"epoch_{stopped_at // 8}.pth" in saved, saved
    finally:
        run.end()


def test_a_finished_run_says_so_and_a_failed_one_too(tmp_path):
    folder = tmp_path / "short"
    folder.mkdir()
    config = mmengine_config(folder, by_epoch=False, gate=folder / "gate")
    config.write_text(config.read_text().replace("max_iters=100000", "max_iters=6"))
    run = ScriptRun(folder, [str(HERE / "mm_train.py"), str(config)])
    try:
        run.connect(folder / "w")
        run.release()
        run.wait_status("finished")
        assert run.exit_code() == 0
        assert run.record()["status"] == "finished" and run.record()["iter"] == 6
    finally:
        run.end()

    broken = tmp_path / "broken"
    broken.mkdir()
    config = mmengine_config(broken, by_epoch=False, gate=broken / "gate")
    config.write_text(config.read_text().replace("dict(type='ToyData', size=64)", "dict(type='ToyData', size=64, "
                                                                                   "features=5)"))
    run = ScriptRun(broken, [str(HERE / "mm_train.py"), str(config)])
    try:
        run.connect(broken / "w")
        run.release()
        run.wait_status("failed")
        assert run.exit_code() != 0
        assert "RuntimeError" in run.state.status_detail and run.record()["status"] == "failed"
    finally:
        run.end()

