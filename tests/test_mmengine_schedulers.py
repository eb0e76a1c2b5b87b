"""Parameter schedulers as MMEngine 0.10.7 runs them: the default ``end``, ``T_max`` and conversion.

MMEngine's ``Runner._build_param_scheduler`` gives a scheduler config without ``end`` the train
loop's ``max_epochs`` (``by_epoch=True``, the default, also with ``convert_to_iter_based``) or
``max_iters`` (``by_epoch=False``); an iteration-based loop has ``max_epochs == 1``. ``T_max``
and ``total_iters`` then follow from ``end - begin``. Every expected curve below is what a real
MMEngine 0.10.7 ``Runner`` recorded (base lr 0.1, 4 iterations an epoch), noted as
"MMEngine 0.10.7 gives ...".
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from toys import ToyData

from cockpit import ParamScheduler
from cockpit.build import Builder
from cockpit.schedulers import default_end

BASE_LR = 0.1
EPOCH_LEN = 4


def sgd() -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE_LR)


def lr_per_iteration(configs: dict | list[dict], *, max_epochs: int | None = None,
                     max_iters: int | None = None) -> list[float]:
    """The lr at each training iteration, stepping as the runner does (what MMEngine's loops do).

    Iteration-based schedulers step after every iteration, epoch-based ones after every epoch.
    The schedulers are built as the runner's builder builds them: given the train loop's
    ``max_epochs`` and ``max_iters`` (``max_epochs`` is 1 for an iteration-based loop).
    """
    by_epoch_run = max_epochs is not None
    loop_epochs = max_epochs if by_epoch_run else 1
    loop_iters = max_epochs * EPOCH_LEN if by_epoch_run else max_iters
    optimizer = sgd()
    schedulers = []
    for config in configs if isinstance(configs, list) else [configs]:
        config = dict(config)
        scheduler_cls = getattr(torch.optim.lr_scheduler, config.pop("type"))
        schedulers.append(ParamScheduler(scheduler_cls, optimizer, epoch_length=EPOCH_LEN, max_epochs=loop_epochs,
                                         max_iters=loop_iters, **config))
    curve: list[float] = []
    while len(curve) < loop_iters:
        for _ in range(min(EPOCH_LEN, loop_iters - len(curve))):
            curve.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            for scheduler in schedulers:
                if not scheduler.by_epoch:
                    scheduler.step()
        if by_epoch_run:
            for scheduler in schedulers:
                if scheduler.by_epoch:
                    scheduler.step()
    return curve


def per_epoch(curve: list[float]) -> list[float]:
    return curve[::EPOCH_LEN]


# --- end defaults to the end of training --------------------------------------------------------
def test_constant_lr_without_end_ends_at_max_epochs():
    curve = lr_per_iteration(dict(type="ConstantLR", factor=0.5, begin=0), max_epochs=3)
    # MMEngine 0.10.7 gives [0.05, 0.05, 0.1] per epoch (end=3, total_iters = end - begin - 1 = 2).
    assert per_epoch(curve) == pytest.approx([0.05, 0.05, 0.1])


def test_cosine_without_t_max_or_end_takes_t_max_from_max_epochs():
    """The Swin-style ``CosineAnnealingLR(begin=1)``: MMEngine derives T_max = max_epochs - begin."""
    curve = lr_per_iteration(dict(type="CosineAnnealingLR", begin=1), max_epochs=3)
    # MMEngine 0.10.7 gives [0.1, 0.1, 0.05] per epoch (end=3, T_max=2).
    assert per_epoch(curve) == pytest.approx([0.1, 0.1, 0.05])


def test_converted_cosine_without_end_ends_at_max_epochs_in_iterations():
    curve = lr_per_iteration(dict(type="CosineAnnealingLR", begin=1, convert_to_iter_based=True), max_epochs=3)
    # MMEngine 0.10.7 gives these (begin=4, end=12, T_max=8 iterations):
    assert curve == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.1, 0.0961939766, 0.0853553391, 0.0691341716,
                                   0.05, 0.0308658284, 0.0146446609, 0.0038060234])


def test_swin_warmup_then_cosine_without_end():
    """Swin's schedule: a linear warm-up over iterations, then a converted cosine with no end."""
    curve = lr_per_iteration([
        dict(type="LinearLR", start_factor=1e-3, by_epoch=False, end=4),
        dict(type="CosineAnnealingLR", eta_min=1e-5, by_epoch=True, begin=1, convert_to_iter_based=True),
    ], max_epochs=3)
    # MMEngine 0.10.7 gives these:
    assert curve == pytest.approx([0.0001, 0.0334, 0.0667, 0.1, 0.1, 0.0961943572, 0.0853568035, 0.0691372582,
                                   0.050005, 0.0308727418, 0.0146531965, 0.0038156428], rel=1e-6)


def test_iteration_scheduler_without_end_ends_at_max_iters():
    curve = lr_per_iteration(dict(type="LinearLR", by_epoch=False, start_factor=0.5), max_iters=6)
    # MMEngine 0.10.7 gives [0.05, 0.06, 0.07, 0.08, 0.09, 0.1] (end=6, total_iters=5).
    assert curve == pytest.approx([0.05, 0.06, 0.07, 0.08, 0.09, 0.1])


def test_iteration_scheduler_without_end_in_an_epoch_run_ends_at_max_iters():
    curve = lr_per_iteration(dict(type="CosineAnnealingLR", by_epoch=False), max_epochs=3)
    # MMEngine 0.10.7 gives a cosine over all 12 iterations (end = max_iters = 12, T_max=12).
    assert curve == pytest.approx([BASE_LR * (1 + math.cos(math.pi * k / 12)) / 2 for k in range(12)])


def test_epoch_scheduler_without_end_in_an_iteration_run_ends_at_one_epoch():
    """An iteration-based loop has max_epochs == 1, so MMEngine gives such a scheduler end=1."""
    optimizer = sgd()
    scheduler = ParamScheduler(torch.optim.lr_scheduler.CosineAnnealingLR, optimizer, max_epochs=1, max_iters=12)
    # MMEngine 0.10.7 builds CosineAnnealingLR(begin=0, end=1, T_max=1), and the lr stays 0.1.
    assert (scheduler.begin, scheduler.end, scheduler.scheduler.T_max) == (0, 1, 1)
    assert lr_per_iteration(dict(type="CosineAnnealingLR"), max_iters=12) == pytest.approx([0.1] * 12)
    converted = ParamScheduler(torch.optim.lr_scheduler.CosineAnnealingLR, sgd(), convert_to_iter_based=True,
                               epoch_length=EPOCH_LEN, max_epochs=1, max_iters=12)
    # MMEngine 0.10.7: end = max_epochs = 1 epoch, converted to 4 iterations.
    assert (converted.begin, converted.end, converted.by_epoch) == (0, EPOCH_LEN, False)


def test_explicit_end_wins_over_the_default():
    scheduler = ParamScheduler(torch.optim.lr_scheduler.CosineAnnealingLR, sgd(), begin=0, end=2,
                               max_epochs=10, max_iters=40)
    assert (scheduler.end, scheduler.scheduler.T_max) == (2, 2)


@pytest.mark.parametrize("t_max", [None, 0])
def test_empty_t_max_is_derived_like_mmengine(t_max):
    """MMEngine writes ``T_max or (end - begin)``: None and 0 both mean "derive it"."""
    scheduler = ParamScheduler(torch.optim.lr_scheduler.CosineAnnealingLR, sgd(), begin=1, T_max=t_max,
                               max_epochs=5)
    # MMEngine 0.10.7 gives T_max == 4.
    assert scheduler.scheduler.T_max == 4


def test_default_end_rule():
    assert default_end(True, 3, 12) == 3
    assert default_end(False, 3, 12) == 12
    assert math.isinf(default_end(True, None, None))


def test_begin_after_the_default_end_is_an_error_naming_max_epochs():
    # MMEngine 0.10.7 raises "end should be larger than begin, but got begin=5, end=3".
    with pytest.raises(ValueError, match="max_epochs"):
        ParamScheduler(torch.optim.lr_scheduler.ConstantLR, sgd(), begin=5, max_epochs=3, max_iters=12)


def test_no_end_and_no_train_loop_never_ends_like_mmengine_inf():
    """Built outside a runner (no max_epochs), MMEngine's end is INF: ConstantLR never restores the lr."""
    optimizer = sgd()
    scheduler = ParamScheduler(torch.optim.lr_scheduler.ConstantLR, optimizer, by_epoch=False, factor=0.5)
    values = []
    for _ in range(8):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # MMEngine 0.10.7 gives 0.05 for ever (total_iters = INF - begin - 1); torch's own default would restore at 5.
    assert values == pytest.approx([0.05] * 8)


def test_eta_min_ratio_is_a_fraction_of_the_initial_lr():
    curve = lr_per_iteration(dict(type="CosineAnnealingLR", eta_min_ratio=0.1, by_epoch=False), max_epochs=2)
    # MMEngine 0.10.7 gives a cosine from 0.1 towards eta_min = 0.01 over 8 iterations:
    assert curve == pytest.approx([0.1, 0.096574579, 0.0868198052, 0.0722207545, 0.055, 0.0377792455,
                                   0.0231801948, 0.013425421])
    # MMEngine 0.10.7 raises AssertionError("Either `eta_min` or `eta_min_ratio should be specified").
    with pytest.raises(ValueError, match="not both"):
        ParamScheduler(torch.optim.lr_scheduler.CosineAnnealingLR, sgd(), eta_min=0.01, eta_min_ratio=0.1, end=4)


# --- conversion ------------------------------------------------------------------------------------
def test_converted_exponential_multiplies_by_gamma_every_iteration():
    """MMEngine's ExponentialLR.build_iter_from_epoch does not rescale gamma."""
    curve = lr_per_iteration(dict(type="ExponentialLR", gamma=0.5, convert_to_iter_based=True), max_epochs=3)
    # MMEngine 0.10.7 gives 0.1 * 0.5 ** k at iteration k.
    assert curve == pytest.approx([BASE_LR * 0.5 ** k for k in range(12)])


# --- through the runner --------------------------------------------------------------------------
_BUILDER_PASSES_TRAIN_LENGTH = "max_epochs" in inspect.signature(Builder.build_param_schedulers).parameters
needs_builder = pytest.mark.skipif(not _BUILDER_PASSES_TRAIN_LENGTH,
                                   reason="Builder.build_param_schedulers does not pass max_epochs/max_iters yet")


def runner_curve(make_runner, param_scheduler, train_cfg) -> list[float]:
    runner = make_runner(
        default_hooks=dict(checkpoint=None, logger=None), val_dataloader=None, val_evaluator=None, val_cfg=None,
        train_dataloader=dict(dataset=dict(type=ToyData, size=8 * EPOCH_LEN), batch_size=8),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=BASE_LR)),
        param_scheduler=param_scheduler, train_cfg=train_cfg,
    )
    runner.train()
    return runner.message_hub.get_scalar("train/lr").series()[1]


@needs_builder
def test_runner_constant_lr_without_end(make_runner):
    curve = runner_curve(make_runner, dict(type="ConstantLR", factor=0.5, begin=0), dict(by_epoch=True, max_epochs=3))
    # MMEngine 0.10.7 gives [0.05, 0.05, 0.1] per epoch.
    assert per_epoch(curve) == pytest.approx([0.05, 0.05, 0.1])


@needs_builder
def test_runner_cosine_begin_1_without_t_max(make_runner):
    curve = runner_curve(make_runner, dict(type="CosineAnnealingLR", begin=1), dict(by_epoch=True, max_epochs=3))
    # MMEngine 0.10.7 gives [0.1, 0.1, 0.05] per epoch.
    assert per_epoch(curve) == pytest.approx([0.1, 0.1, 0.05])


@needs_builder
def test_runner_iteration_scheduler_without_end(make_runner):
    curve = runner_curve(make_runner, dict(type="LinearLR", by_epoch=False, start_factor=0.5),
                         dict(by_epoch=False, max_iters=6))
    # MMEngine 0.10.7 gives [0.05, 0.06, 0.07, 0.08, 0.09, 0.1].
    assert curve == pytest.approx([0.05, 0.06, 0.07, 0.08, 0.09, 0.1])
