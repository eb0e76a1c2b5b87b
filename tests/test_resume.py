"""Resuming reproduces the uninterrupted run, bit for bit on CPU with deterministic settings."""

from __future__ import annotations

import copy

import pytest
from support import ToyNet, tiny_cfg

from cockpit import Hook, Runner


class StopAt(Hook):
    """Asks for a save-and-stop after the given (1-based) iteration, like Ctrl-C would."""

    priority = "LOWEST"

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.at:
            runner.request_stop("test interruption")


def _cfg(work_dir, by_epoch: bool, sampler: str = "DefaultSampler", **overrides):
    train_cfg = (dict(by_epoch=True, max_epochs=3, val_interval=1) if by_epoch
                 else dict(by_epoch=False, max_iters=30, val_interval=10))
    schedulers = [
        dict(type="LinearLR", start_factor=0.2, by_epoch=False, begin=0, end=6),
        dict(type="CosineAnnealingLR", by_epoch=False, begin=6, end=24, eta_min=1e-4),
    ]
    cfg = tiny_cfg(
        work_dir,
        model=dict(type=ToyNet, dropout=0.3),  # dropout: the torch RNG state must be restored too
        train_cfg=train_cfg,
        param_scheduler=schedulers,
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        randomness=dict(seed=7, deterministic=True),
        default_hooks=dict(logger=None, checkpoint=dict(type="CheckpointHook", interval=1, by_epoch=by_epoch,
                                                        max_keep_ckpts=2)),
        **overrides,
    )
    cfg["train_dataloader"]["sampler"] = dict(type=sampler, shuffle=True)
    return cfg


def _train(cfg) -> Runner:
    runner = Runner.from_cfg(copy.deepcopy(cfg), log_to_console=False)
    runner.train()
    return runner


def _trajectory(runner: Runner) -> dict[str, tuple[list, list]]:
    out = {}
    for key in ("train/loss", "train/lr"):
        steps, values, _, _ = runner.message_hub.get_scalar(key).series()
        out[key] = (steps, values)
    return out


def _resumed_trajectory(tmp_path, by_epoch: bool, stops: list[int], sampler: str = "DefaultSampler") -> Runner:
    work = tmp_path / "interrupted"
    for stop in stops:
        resume = {"resume": True} if (work / "last_checkpoint").exists() else {}
        runner = _train(_cfg(work, by_epoch, sampler, custom_hooks=[StopAt(stop)], **resume))
        assert runner.iter == stop, "the interruption did not stop where asked"
        assert runner.stop_reason == "test interruption"
    return _train(_cfg(work, by_epoch, sampler, resume=True))


@pytest.mark.parametrize(
    ("by_epoch", "stops", "sampler"),
    [
        (True, [5], "DefaultSampler"),  # mid-epoch
        (True, [8], "DefaultSampler"),  # exactly at the end of epoch 1, before its epoch-end hooks
        (True, [10], "DefaultSampler"),  # just after an epoch boundary
        (True, [3, 6], "DefaultSampler"),  # twice within one epoch
        (False, [13], "InfiniteSampler"),
        (False, [11, 19], "DefaultSampler"),  # iteration-based over a finite sampler, crossing passes
    ],
)
def test_resume_reproduces_the_uninterrupted_trajectory(tmp_path, by_epoch, stops, sampler):
    reference = _train(_cfg(tmp_path / "reference", by_epoch, sampler))
    resumed = _resumed_trajectory(tmp_path, by_epoch, stops, sampler)

    assert resumed.iter == reference.iter
    expected, got = _trajectory(reference), _trajectory(resumed)
    for key in expected:
        assert got[key][0] == expected[key][0], f"{key}: steps differ"
        assert got[key][1] == expected[key][1], f"{key}: values differ after resuming at {stops}"
    for name, tensor in reference.model.state_dict().items():
        assert resumed.model.state_dict()[name].equal(tensor), f"final weight {name} differs"
    val_ref = reference.message_hub.get_scalar("val/accuracy/top1").series()[:2]
    assert resumed.message_hub.get_scalar("val/accuracy/top1").series()[:2] == val_ref


def test_resume_marks_the_jump_and_keeps_the_history(tmp_path):
    work = tmp_path / "run"
    _train(_cfg(work, True, custom_hooks=[StopAt(5)]))
    resumed = _train(_cfg(work, True, resume=True))
    markers = resumed.message_hub.markers
    assert [m["kind"] for m in markers] == ["resume"]
    assert markers[0]["step"] == 5
    steps = resumed.message_hub.get_scalar("train/loss").series()[0]
    assert steps[:6] == [0, 1, 2, 3, 4, 5], "the hub history from before the interruption was not restored"


def test_resume_does_not_replay_skipped_batches(tmp_path):
    """A mid-epoch resume starts at the next batch: the dataset is not read for the skipped ones."""
    work = tmp_path / "run"
    _train(_cfg(work, True, custom_hooks=[StopAt(6)]))

    reads = []

    class CountingHook(Hook):
        def before_train_epoch(self, runner):
            dataset = runner.train_dataloader.dataset
            original = type(dataset).__getitem__

            def counting(self_, index):
                reads.append(index)
                return original(self_, index)

            dataset.__class__ = type("Counted", (type(dataset),), {"__getitem__": counting})

        def after_train_epoch(self, runner):
            raise SystemExit  # only the first (resumed) epoch matters here

    runner = Runner.from_cfg(copy.deepcopy(_cfg(work, True, resume=True, custom_hooks=[CountingHook()])),
                             log_to_console=False)
    with pytest.raises(SystemExit):
        runner.train()
    assert len(reads) == (8 - 6) * 8, "skipped batches were read again"
