"""Abandoned branches: a resume that jumps back keeps what it abandons, in the hub's ``branches`` info."""

from __future__ import annotations

import copy

from support import tiny_cfg

from cockpit import Runner
from cockpit.hub import MessageHub
from cockpit.restore import BRANCH_POINTS, MAX_BRANCHES, abandoned_branch, kept_branches


def _trained(work_dir, **overrides) -> Runner:
    cfg = tiny_cfg(work_dir, default_hooks=dict(logger=None, checkpoint=dict(type="CheckpointHook", interval=1)),
                   **overrides)
    runner = Runner.from_cfg(copy.deepcopy(cfg), log_to_console=False)
    runner.train()
    return runner


def test_a_jump_back_keeps_the_abandoned_segment_and_checkpoints_carry_it(tmp_path):
    runner = _trained(tmp_path / "work")
    hub = runner.message_hub
    losses_after = [(s, v) for s, v in zip(*hub.get_scalar("train/loss").series()[:2], strict=True) if s > 8]

    runner.resume(tmp_path / "work" / "epoch_1.pth")  # what the live `resume` command calls

    branches = hub.get_info("branches")
    assert len(branches) == 1
    branch = branches[0]
    assert branch["at"] == 8 and branch["checkpoint"] == "epoch_1.pth"
    loss = branch["scalars"]["train/loss"]
    assert list(zip(loss["steps"], loss["values"], strict=True)) == losses_after
    assert min(branch["scalars"]["val/accuracy/top1"]["steps"]) > 8
    assert max(hub.get_scalar("train/loss").series()[0]) <= 8, "the live history is the checkpoint's again"

    # Saved with the hub: a run resumed later from a checkpoint still has the branch.
    path = runner.save_checkpoint(tmp_path / "work", "after_jump.pth")
    fresh = Runner.from_cfg(copy.deepcopy(tiny_cfg(tmp_path / "other")), log_to_console=False)
    fresh.resume(path)
    assert fresh.message_hub.get_info("branches") == branches


def test_a_resume_forward_or_at_start_makes_no_branch(tmp_path):
    runner = _trained(tmp_path / "work")
    fresh = Runner.from_cfg(copy.deepcopy(tiny_cfg(tmp_path / "work")), log_to_console=False)
    fresh.resume(tmp_path / "work" / "epoch_1.pth")
    assert fresh.message_hub.get_info("branches") is None
    runner.resume(tmp_path / "work" / "epoch_2.pth")  # the end: nothing after it to abandon
    assert runner.message_hub.get_info("branches") is None


def test_a_long_branch_is_downsampled_keeping_its_spike():
    hub = MessageHub()
    for step in range(5000):
        hub.update_scalar("train/loss", 1000.0 if step == 3210 else 1.0, step)
    branch = abandoned_branch(hub, 100, "/runs/iter_100.pth")
    loss = branch["scalars"]["train/loss"]
    assert len(loss["steps"]) <= BRANCH_POINTS
    assert loss["steps"] == sorted(loss["steps"]) and min(loss["steps"]) > 100
    assert 1000.0 in loss["values"], "the spike was lost"
    assert branch["checkpoint"] == "iter_100.pth"


def test_only_the_newest_branches_are_kept():
    hub = MessageHub()
    hub.update_info("branches", [{"at": index, "checkpoint": "x.pth", "scalars": {}} for index in range(MAX_BRANCHES)])
    kept = kept_branches(hub, {"at": 99, "checkpoint": "y.pth", "scalars": {}})
    assert len(kept) == MAX_BRANCHES
    assert kept[-1]["at"] == 99 and kept[0]["at"] == 1
    assert kept_branches(hub, None) is None
