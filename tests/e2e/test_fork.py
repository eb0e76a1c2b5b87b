"""``cockpit run cfg.py --fork-from CHECKPOINT``: a new run from another run's checkpoint, with its lineage."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from cockpit.widgets.notebook.compare import compare
from support import wait_for, write_child_config

from cockpit.channel.client import RunClient

from .helpers import cockpit, record, run_folders, start, stop_pid


def _digest(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())
            if path.is_file()}


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A finished two-epoch run (a checkpoint per epoch, both kept), its config and the gate the config
    waits on at each iteration (present: the parent ran through)."""
    folder = tmp_path_factory.mktemp("fork")
    gate = folder / "gate"
    gate.touch()
    config = write_child_config(folder, gate=gate, max_keep_ckpts=2)
    done = cockpit("run", str(config), "--no-tui", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return config, folder / "work_dirs" / "cfg", gate


def test_a_fork_trains_in_its_own_work_dir_with_the_new_options_and_records_its_parent(parent):
    config, work, gate = parent
    tmp_path = config.parent
    parent_folder = run_folders(work)[0]
    before = _digest(work)
    gate.unlink()  # the fork stands at its first iteration until the test has looked at it
    fork = start("run", str(config), "--no-tui", "--fork-from", "epoch_1.pth",
                 "--cfg-options", "optim_wrapper.optimizer.lr=0.01", cwd=tmp_path)
    try:
        fork_work = tmp_path / "work_dirs" / "cfg-fork-epoch_1"
        wait_for(lambda: run_folders(fork_work) and record(run_folders(fork_work)[0]).get("status") == "running",
                 120, "the fork to run")
        fork_folder = run_folders(fork_work)[0]
        with RunClient.connect(fork_folder) as client:
            lineage = wait_for(lambda: client.snapshot(max_points=1)["info"].get("lineage"), 60, "the lineage info")
        assert lineage["parent"] == str(parent_folder)
        assert lineage["checkpoint"] == str(work / "epoch_1.pth")
        assert lineage["forked_at"] == 8
        assert lineage["changed"] == ["optim_wrapper.optimizer.lr: 0.1 in the checkpoint, 0.01 now"]
        gate.touch()
        output = fork.communicate(timeout=180)[0]
    finally:
        gate.touch()
        stop_pid(fork.pid)
    assert fork.returncode == 0, output
    assert f"forked from {work / 'epoch_1.pth'} (iter 8, run {parent_folder})" in output
    assert _digest(work) == before, "the fork changed the parent's work dir"
    assert (fork_folder / "lineage.json").is_file()
    saved = torch.load(fork_work / "epoch_2.pth", weights_only=True)
    assert saved["meta"]["iter"] == 16, "the fork did not continue from the checkpoint's iteration"
    assert saved["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.01)
    assert saved["message_hub"]["runtime_info"]["lineage"]["checkpoint"] == str(work / "epoch_1.pth")
    assert (fork_work / "last_checkpoint").read_text().strip() == str(fork_work / "epoch_2.pth")
    # The overlay of the fork and its parent, as the notebook's compare (and the dashboard's c) draw it.
    figure = compare([parent_folder, fork_folder], keys=["train/loss"])
    names = [trace.name for trace in figure.data]
    assert names == [f"cfg/{parent_folder.name}", f"cfg-fork-epoch_1/{fork_folder.name} (fork of cfg/{parent_folder.name} @ 8)"]
    assert min(figure.data[1].x) > 8, "the fork's own points start after the iteration it forked at"


def test_a_refused_resume_names_the_fork(parent):
    config, _, _ = parent
    tmp_path = config.parent
    refused = cockpit("run", str(config), "--no-tui", "--resume", "epoch_1.pth",
                      "--cfg-options", "optim_wrapper.optimizer.lr=0.01", cwd=tmp_path)
    assert refused.returncode == 2
    assert "--fork-from " in refused.stderr and "epoch_1.pth --cfg-options optim_wrapper.optimizer.lr=0.01" in \
        refused.stderr


@pytest.mark.parametrize(("extra", "said"), [
    (["--fork-from", "nope.pth", "--resume"], "--fork-from and --resume together"),
    (["--fork-from", "nope.pth"], "checkpoint nope.pth does not exist"),
    (["--fork-from", "broken.pth"], "broken.pth is corrupt or not a checkpoint"),
    (["--fork-from", "epoch_1.pth", "--work-dir", "work_dirs/cfg"], "holds the parent's checkpoints"),
])
def test_bad_fork_requests_get_one_line_and_leave_nothing(parent, extra, said):
    config, work, _ = parent
    tmp_path = config.parent
    (work / "broken.pth").write_bytes(b"not a checkpoint")
    before = sorted(path.name for path in (tmp_path / "work_dirs").iterdir())
    refused = cockpit("run", str(config), "--no-tui", *extra, cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert said in refused.stderr.splitlines()[0]
    assert sorted(path.name for path in (tmp_path / "work_dirs").iterdir()) == before
    assert len(run_folders(work)) == 1


def test_a_live_resume_back_publishes_the_abandoned_branch(tmp_path):
    """``ctl RUN resume epoch_1.pth`` on a live run: its hub info gets the segment after iteration 8."""
    release = tmp_path / "release"
    config = write_child_config(tmp_path, seconds=0.3, release=release, max_epochs=3)  # slow until released
    work = tmp_path / "work_dirs" / "cfg"
    run = start("run", str(config), "--no-tui", cwd=tmp_path)
    try:
        wait_for(lambda: (work / "epoch_1.pth").is_file() and run_folders(work)
                 and (record(run_folders(work)[0]).get("iter") or 0) >= 12, 120, "the run past its first checkpoint")
        folder = run_folders(work)[0]
        resumed = cockpit("ctl", str(folder), "resume", "epoch_1.pth", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        with RunClient.connect(folder) as client:
            branches = client.snapshot(max_points=1)["info"]["branches"]
        assert len(branches) == 1 and branches[0]["at"] == 8 and branches[0]["checkpoint"] == "epoch_1.pth"
        loss = branches[0]["scalars"]["train/loss"]
        assert loss["steps"] and min(loss["steps"]) > 8 and len(loss["steps"]) == len(loss["values"])
    finally:
        release.touch()
        output = run.communicate(timeout=180)[0]
        stop_pid(run.pid)
    assert run.returncode == 0, output
