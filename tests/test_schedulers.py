"""Parameter schedulers through real runs: per-iteration vs per-epoch stepping, begin/end, conversion.

The expected curves follow MMEngine's ``_ParamScheduler``: a scheduler is active for the
epochs/iterations in ``[begin, end)``; its first value applies at ``begin``, and from ``end``
on the learning rate keeps the value it had at ``end - 1``. ``LinearLR`` reaches ``end_factor``
at ``end - 1`` (MMEngine's ``total_iters = end - begin - 1``); ``T_max`` defaults to ``end - begin``.
"""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
from support import ToyData

from cockpit import ParamScheduler
from cockpit.errors import ConfigError

NO_IO = dict(checkpoint=None, logger=None)
BASE_LR = 0.1
EPOCH_LEN = 4  # 32 samples in batches of 8


def cosine(t: float, t_max: float, base: float = BASE_LR, eta_min: float = 0.0) -> float:
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


def lr_curve(make_runner, param_scheduler, train_cfg) -> list[float]:
    """The ``train/lr`` the hub recorded at each training iteration of a run."""
    runner = make_runner(
        default_hooks=NO_IO, val_dataloader=None, val_evaluator=None, val_cfg=None,
        train_dataloader=dict(dataset=dict(type=ToyData, size=8 * EPOCH_LEN), batch_size=8),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=BASE_LR)),
        param_scheduler=param_scheduler, train_cfg=train_cfg,
    )
    runner.train()
    steps, values, _, _ = runner.message_hub.get_scalar("train/lr").series()
    assert steps == list(range(runner.iter))
    return values


def assert_curve(actual: list[float], expected: list[float]) -> None:
    assert len(actual) == len(expected)
    mismatches = [(i, a, e) for i, (a, e) in enumerate(zip(actual, expected, strict=True))
                  if a != pytest.approx(e, rel=1e-6, abs=1e-12)]
    assert not mismatches, f"(iteration, lr, expected): {mismatches}"


def epochs_of(curve: list[float]) -> list[list[float]]:
    return [curve[i:i + EPOCH_LEN] for i in range(0, len(curve), EPOCH_LEN)]


# --- per-epoch vs per-iteration ---------------------------------------------------------
def test_epoch_based_scheduler_is_flat_within_each_epoch(make_runner):
    curve = lr_curve(make_runner, dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=3),
                     dict(by_epoch=True, max_epochs=3))
    expected = [cosine(k // EPOCH_LEN, 3) for k in range(3 * EPOCH_LEN)]
    assert_curve(curve, expected)
    for epoch in epochs_of(curve):
        assert len(set(epoch)) == 1


def test_iteration_based_scheduler_changes_every_iteration(make_runner):
    n = 3 * EPOCH_LEN
    curve = lr_curve(make_runner, dict(type="CosineAnnealingLR", by_epoch=False, begin=0, end=n),
                     dict(by_epoch=True, max_epochs=3))
    assert_curve(curve, [cosine(k, n) for k in range(n)])
    assert all(b < a for a, b in pairwise(curve))


def test_step_lr_per_iteration_and_per_epoch(make_runner):
    per_iter = lr_curve(make_runner, dict(type="StepLR", by_epoch=False, step_size=3, gamma=0.5),
                        dict(by_epoch=True, max_epochs=2))
    assert_curve(per_iter, [BASE_LR * 0.5 ** (k // 3) for k in range(2 * EPOCH_LEN)])
    per_epoch = lr_curve(make_runner, dict(type="StepLR", by_epoch=True, step_size=1, gamma=0.5),
                         dict(by_epoch=True, max_epochs=3))
    assert_curve(per_epoch, [BASE_LR * 0.5 ** (k // EPOCH_LEN) for k in range(3 * EPOCH_LEN)])


def test_iteration_based_training_steps_iteration_schedulers(make_runner):
    curve = lr_curve(make_runner, dict(type="StepLR", by_epoch=False, step_size=2, gamma=0.1),
                     dict(by_epoch=False, max_iters=6))
    assert_curve(curve, [BASE_LR * 0.1 ** (k // 2) for k in range(6)])


def test_convert_to_iter_based_gives_the_per_iteration_curve(make_runner):
    n = 3 * EPOCH_LEN
    converted = lr_curve(make_runner, dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=3,
                                           convert_to_iter_based=True), dict(by_epoch=True, max_epochs=3))
    assert_curve(converted, [cosine(k, n) for k in range(n)])
    assert len(set(converted)) == n


# --- warm-up then decay -------------------------------------------------------------------
WARMUP_THEN_COSINE = [
    dict(type="LinearLR", by_epoch=False, begin=0, end=4),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=3, convert_to_iter_based=True),
]


def test_warmup_then_cosine_curve(make_runner):
    """MMEngine: warm-up over iterations 0..3 ending at the base lr; cosine over [4, 12) with T_max 8."""
    curve = lr_curve(make_runner, WARMUP_THEN_COSINE, dict(by_epoch=True, max_epochs=3))
    warmup = [BASE_LR * (1 / 3 + (2 / 3) * k / 3) for k in range(4)]  # total_iters = end - begin - 1 = 3
    decay = [cosine(k - 4, 8) for k in range(4, 12)]
    assert_curve(curve, warmup + decay)


def test_warmup_then_cosine_shape(make_runner):
    curve = lr_curve(make_runner, WARMUP_THEN_COSINE, dict(by_epoch=True, max_epochs=3))
    assert curve[0] == pytest.approx(BASE_LR / 3)
    assert all(b > a for a, b in pairwise(curve[:4]))  # warming up
    assert curve[4] == pytest.approx(BASE_LR)  # the cosine starts from the base lr at its begin
    # After the conversion the cosine changes the lr at every iteration, T_max = (3 - 1) * 4 = 8.
    assert all(b < a for a, b in pairwise(curve[4:]))
    assert_curve(curve[4:], [cosine(k, 8) for k in range(8)])


def test_warmup_then_epoch_cosine_is_flat_within_epochs(make_runner):
    curve = lr_curve(make_runner, [
        dict(type="LinearLR", by_epoch=False, begin=0, end=4),
        dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=3),
    ], dict(by_epoch=True, max_epochs=3))
    epochs = epochs_of(curve)
    assert len(set(epochs[0])) == 4  # the warm-up moves every iteration
    assert_curve(epochs[1], [BASE_LR] * EPOCH_LEN)  # cosine step 0: the base lr
    assert_curve(epochs[2], [cosine(1, 2)] * EPOCH_LEN)  # T_max = end - begin = 2


# --- begin / end ---------------------------------------------------------------------------
def test_scheduler_leaves_the_lr_alone_before_begin(make_runner):
    """LinearLR active in [2, 5): iterations 0 and 1 train at the base lr; start_factor applies at 2."""
    curve = lr_curve(make_runner, dict(type="LinearLR", by_epoch=False, begin=2, end=5, start_factor=0.5),
                     dict(by_epoch=True, max_epochs=2))
    assert_curve(curve, [0.1, 0.1, 0.05, 0.075, 0.1, 0.1, 0.1, 0.1])


def test_exponential_decay_starts_after_begin(make_runner):
    curve = lr_curve(make_runner, dict(type="ExponentialLR", by_epoch=True, begin=2, gamma=0.5),
                     dict(by_epoch=True, max_epochs=5))
    per_epoch = [e[0] for e in epochs_of(curve)]
    assert per_epoch == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.025])
    assert all(len(set(e)) == 1 for e in epochs_of(curve))


def test_scheduler_keeps_its_last_value_from_end_on(make_runner):
    """ExponentialLR active in epochs [1, 3): epoch 1 is its step 0, epoch 2 its step 1; epochs 3+ keep that."""
    curve = lr_curve(make_runner, dict(type="ExponentialLR", by_epoch=True, begin=1, end=3, gamma=0.5),
                     dict(by_epoch=True, max_epochs=5))
    per_epoch = [e[0] for e in epochs_of(curve)]
    assert per_epoch == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05])


# --- ParamScheduler arguments ------------------------------------------------------------------
def sgd() -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE_LR)


def test_t_max_defaults_to_end_minus_begin():
    scheduler = ParamScheduler(torch.optim.lr_scheduler.CosineAnnealingLR, sgd(), begin=1, end=3)
    assert scheduler.scheduler.T_max == 2
    assert scheduler.by_epoch is True


def test_explicit_t_max_is_kept():
    scheduler = ParamScheduler(torch.optim.lr_scheduler.CosineAnnealingLR, sgd(), begin=1, end=3, T_max=10)
    assert scheduler.scheduler.T_max == 10


def test_conversion_scales_begin_end_and_lengths():
    converted = ParamScheduler(torch.optim.lr_scheduler.CosineAnnealingLR, sgd(), by_epoch=True, begin=1, end=3,
                               convert_to_iter_based=True, epoch_length=8)
    assert (converted.begin, converted.end, converted.by_epoch) == (8, 24, False)
    assert converted.scheduler.T_max == 16
    explicit = ParamScheduler(torch.optim.lr_scheduler.CosineAnnealingLR, sgd(), by_epoch=True, begin=0, end=3,
                              T_max=5, convert_to_iter_based=True, epoch_length=8)
    assert explicit.scheduler.T_max == 40
    steps = ParamScheduler(torch.optim.lr_scheduler.MultiStepLR, sgd(), by_epoch=True, milestones=[1, 3],
                           convert_to_iter_based=True, epoch_length=4)
    assert sorted(steps.scheduler.milestones) == [4, 12]
    assert math.isinf(steps.end)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(begin=0),  # no end, no T_max
        dict(begin=3, end=3),
        dict(begin=4, end=2, T_max=2),
        dict(by_epoch=False, begin=0, end=3, convert_to_iter_based=True, epoch_length=4),
        dict(by_epoch=True, begin=0, end=3, convert_to_iter_based=True),  # no epoch length
    ],
    ids=["no-t-max", "empty", "reversed", "convert-iter-based", "convert-without-length"],
)
def test_bad_scheduler_arguments(kwargs):
    with pytest.raises(ValueError):
        ParamScheduler(torch.optim.lr_scheduler.CosineAnnealingLR, sgd(), **kwargs)


def test_bad_scheduler_in_a_config_fails_before_training(make_runner):
    # Without end, MMEngine runs a scheduler to max_epochs (2 here); beginning there leaves it nothing.
    runner = make_runner(default_hooks=NO_IO, param_scheduler=dict(type="CosineAnnealingLR", by_epoch=True, begin=2))
    with pytest.raises(ConfigError, match="end"):
        runner.train()
    assert runner.message_hub.status == "created"


def test_state_dict_round_trip():
    optimizer = sgd()
    scheduler = ParamScheduler(torch.optim.lr_scheduler.StepLR, optimizer, by_epoch=False, step_size=1, gamma=0.5)
    for _ in range(3):
        optimizer.step()  # no gradients: a no-op that keeps torch's step-order check quiet
        scheduler.step()
    state = scheduler.state_dict()
    assert state["count"] == 3

    other_optimizer = sgd()
    other = ParamScheduler(torch.optim.lr_scheduler.StepLR, other_optimizer, by_epoch=False, step_size=1, gamma=0.5)
    other.load_state_dict(state)
    other_optimizer.param_groups[0]["lr"] = optimizer.param_groups[0]["lr"]
    for opt, sched in ((optimizer, scheduler), (other_optimizer, other)):
        opt.step()
        sched.step()
    assert other.count == scheduler.count == 4
    assert other.get_last_lr() == pytest.approx(scheduler.get_last_lr())
    assert scheduler.get_last_lr() == pytest.approx([BASE_LR / 16])
