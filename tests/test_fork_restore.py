"""A run restored from another run's checkpoint (a fork) never touches the files that run wrote,
and a fork's changed optimizer settings win over the checkpoint's."""

from __future__ import annotations

import copy

import pytest
from support import tiny_cfg

from cockpit import Runner


def _runner(work_dir, **overrides) -> Runner:
    hooks = dict(logger=None, checkpoint=dict(type="CheckpointHook", interval=1, save_best="accuracy/top1",
                                              max_keep_ckpts=1))
    return Runner.from_cfg(copy.deepcopy(tiny_cfg(work_dir, default_hooks=hooks, **overrides)), log_to_console=False)


def test_a_restore_from_another_work_dir_forgets_that_runs_files(tmp_path):
    parent = _runner(tmp_path / "parent")
    parent.train()
    best = next(iter(parent.checkpointer.best_ckpts.values()))
    assert (tmp_path / "parent" / "epoch_2.pth").is_file()

    fork = _runner(tmp_path / "fork")
    fork.resume(tmp_path / "parent" / "epoch_2.pth")
    assert fork.checkpointer.best_ckpts == {} and fork.checkpointer.last_ckpt is None
    assert fork.message_hub.get_info("last_ckpt") is None
    fork.checkpointer.configure()
    fork.checkpointer.save_best("accuracy/top1", 1.0, "best_accuracy_top1_epoch_3.pth", ("best_score", "best_ckpt"))
    fork.checkpointer.save_periodic(3)
    assert (tmp_path / "parent" / "epoch_2.pth").is_file() and best and (tmp_path / "parent").joinpath(
        best.rsplit("/", 1)[1]).is_file(), "the fork removed a file of its parent"


def test_a_forks_changed_lr_scales_the_restored_one(tmp_path):
    parent = _runner(tmp_path / "parent", param_scheduler=[dict(type="LinearLR", start_factor=0.5, by_epoch=False,
                                                                 begin=0, end=100)])
    parent.train()
    restored_lr = parent.optim_wrapper.optimizer.param_groups[0]["lr"]

    fork = _runner(tmp_path / "fork", optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
                   param_scheduler=[dict(type="LinearLR", start_factor=0.5, by_epoch=False, begin=0, end=100)])
    fork.checkpointer.lineage = {"parent": None, "checkpoint": str(tmp_path / "parent" / "epoch_2.pth"),
                                 "forked_at": None}
    fork.checkpointer.fork_options = frozenset({"lr"})
    assert fork.train_loop  # built before the resume, as train() does: the schedulers exist then
    fork.resume(tmp_path / "parent" / "epoch_2.pth")
    group = fork.optim_wrapper.optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(restored_lr / 10)
    assert group["initial_lr"] == pytest.approx(0.01)
    assert fork.message_hub.get_info("lineage")["forked_at"] == 16
