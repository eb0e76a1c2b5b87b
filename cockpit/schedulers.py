"""Parameter schedulers: torch's LR schedulers with MMEngine's ``begin``/``end``/``by_epoch``.

A ``ParamScheduler`` wraps one torch scheduler and steps it only while the run is
inside ``[begin, end)``, counted in epochs (``by_epoch=True``) or iterations.
A list of them gives warm-up then decay: ``LinearLR`` for ``[0, 100)`` iterations,
``CosineAnnealingLR`` from 100 on. ``convert_to_iter_based=True`` turns an
epoch-based schedule into the same curve stepped every iteration.

Without an ``end``, a scheduler runs to the end of training, as MMEngine's
``Runner.build_param_scheduler`` arranges: ``end`` defaults to ``max_epochs`` for
an epoch-based scheduler (also one converted to iterations, which then ends at
``max_epochs * epoch_length``) and to ``max_iters`` for an iteration-based one.
``T_max`` and ``total_iters`` are derived from that ``end``.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

_EPOCH_LENGTH_FIELDS = ("T_max", "total_iters", "step_size", "T_0")

#: MMEngine's stand-in for "never ends" (``mmengine.optim.scheduler.param_scheduler.INF``): lengths
#: derived from an unbounded window (``total_iters``) use it so the curve matches MMEngine's.
MMENGINE_INF = int(1e9)


def default_end(by_epoch: bool, max_epochs: int | None, max_iters: int | None) -> float:
    """The ``end`` MMEngine gives a scheduler config without one.

    MMEngine 0.10.7 (``Runner._build_param_scheduler``) sets ``end`` to the train loop's
    ``max_epochs`` when the config's ``by_epoch`` (default True) is true, even with
    ``convert_to_iter_based=True`` (the conversion then multiplies it by the epoch length),
    and to ``max_iters`` otherwise. An iteration-based train loop has ``max_epochs == 1``.
    Without a train loop (``None`` here) the scheduler never ends.
    """
    limit = max_epochs if by_epoch else max_iters
    return math.inf if limit is None else limit


def _resolve_eta_min(kwargs: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    """MMEngine's ``eta_min_ratio`` (the floor as a fraction of the initial lr) as torch's ``eta_min``."""
    ratio = kwargs.pop("eta_min_ratio", None)
    if kwargs.get("eta_min", 0.0) is None:
        kwargs.pop("eta_min")  # MMEngine: eta_min=None without a ratio means 0
    if ratio is None:
        return
    if "eta_min" in kwargs:
        raise ValueError("give eta_min or eta_min_ratio, not both (as in MMEngine)")
    initial = {group.get("initial_lr", group["lr"]) for group in optimizer.param_groups}
    if len(initial) != 1:
        raise ValueError("eta_min_ratio with parameter groups of different learning rates is not supported: "
                         "write eta_min=... instead")
    kwargs["eta_min"] = initial.pop() * ratio


class ParamScheduler:
    """One torch scheduler, active in ``[begin, end)``.

    Args:
        scheduler_cls: a ``torch.optim.lr_scheduler`` class (or compatible).
        optimizer: the torch optimizer it drives.
        by_epoch: count epochs (stepped after each epoch) or iterations.
        begin: first epoch/iteration it is active.
        end: the epoch/iteration it stops at; ``None`` (or leaving it out) means MMEngine's
            default, the end of training: ``max_epochs`` if ``by_epoch`` else ``max_iters``
            (see :func:`default_end`), and never (``math.inf``) when those are not given.
        convert_to_iter_based: with ``by_epoch=True``, step every iteration instead,
            with ``begin``, ``end`` and the length arguments scaled by the epoch length.
            As in MMEngine, ``gamma`` is not rescaled: a converted ``ExponentialLR``
            multiplies the learning rate by ``gamma`` every iteration.
        epoch_length: iterations per epoch (needed to convert).
        max_epochs: the train loop's ``max_epochs`` (1 for an iteration-based loop), for the default ``end``.
        max_iters: the train loop's ``max_iters``, for the default ``end``.
        **kwargs: the torch scheduler's own arguments. ``T_max`` defaults to ``end - begin``
            and ``total_iters`` to ``end - begin - 1`` (the last unit inside the window has the
            final value), as in MMEngine. MMEngine's ``eta_min_ratio`` sets ``eta_min`` to that
            fraction of the initial learning rate.

    Outside ``[begin, end)`` the scheduler leaves the learning rate alone: before ``begin``
    it has not started, from ``end`` on the last value stays.
    """

    def __init__(self, scheduler_cls: type, optimizer: torch.optim.Optimizer, *, by_epoch: bool = True,
                 begin: int = 0, end: float | None = None, convert_to_iter_based: bool = False,
                 epoch_length: int | None = None, max_epochs: int | None = None, max_iters: int | None = None,
                 **kwargs: Any) -> None:
        end_given = end is not None
        if end is None:
            end = default_end(by_epoch, max_epochs, max_iters)
        if end <= begin:
            if end_given:
                raise ValueError(f"scheduler end ({end}) must be greater than begin ({begin})")
            limit = "max_epochs" if by_epoch else "max_iters"
            raise ValueError(f"scheduler begin ({begin}) is not before its default end, train_cfg's {limit} "
                             f"({end}); set end=... after begin, or lower begin")
        if convert_to_iter_based:
            if not by_epoch:
                raise ValueError("convert_to_iter_based=True only applies to by_epoch=True schedulers")
            if not epoch_length:
                raise ValueError("convert_to_iter_based needs the epoch length (a sized train dataloader)")
            begin = int(begin * epoch_length)
            end = end if math.isinf(end) else int(end * epoch_length)
            for field in _EPOCH_LENGTH_FIELDS:
                if field in kwargs:
                    kwargs[field] = kwargs[field] * epoch_length
            if "milestones" in kwargs:
                kwargs["milestones"] = [m * epoch_length for m in kwargs["milestones"]]
            by_epoch = False
        parameters = inspect.signature(scheduler_cls).parameters
        if "eta_min" in parameters:
            _resolve_eta_min(kwargs, optimizer)
        if math.isinf(end):
            if "total_iters" in parameters and "total_iters" not in kwargs:
                # MMEngine: end - begin - 1 with end = INF, i.e. the change never completes
                # (torch's own default of 5 steps would be a different curve).
                kwargs["total_iters"] = MMENGINE_INF - begin - 1
        else:
            if "T_max" in parameters and not kwargs.get("T_max"):
                kwargs["T_max"] = int(end - begin)  # MMEngine: ``T_max or (end - begin)``
            if "total_iters" in parameters and "total_iters" not in kwargs:
                kwargs["total_iters"] = max(1, int(end - begin - 1))
        if "T_max" in parameters and not kwargs.get("T_max"):
            raise ValueError(f"{scheduler_cls.__name__} needs T_max or an end: set end=... (or T_max=...); "
                             "the runner defaults end to train_cfg's max_epochs/max_iters")
        self.by_epoch = by_epoch
        self.begin = begin
        self.end = end
        # A torch scheduler applies its first value when it is made; one that begins later
        # must not touch the learning rate until then.
        saved = [group["lr"] for group in optimizer.param_groups]
        self.scheduler = scheduler_cls(optimizer, **kwargs)
        if begin > 0:
            for group, lr in zip(optimizer.param_groups, saved, strict=True):
                group["lr"] = lr
        self.count = 0

    def step(self) -> None:
        """Advance one epoch or iteration: set the value of the next unit if it is inside ``[begin, end)``."""
        upcoming = self.count + 1
        if upcoming == self.begin:
            self.scheduler.last_epoch = -1
            self.scheduler._initial_step()  # the scheduler's first value, now that it begins
        elif self.begin < upcoming < self.end:
            self.scheduler.step()
        self.count += 1

    def get_last_lr(self) -> list[float]:
        return self.scheduler.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.scheduler.load_state_dict(state["scheduler"])

    def __repr__(self) -> str:
        unit = "epoch" if self.by_epoch else "iter"
        return f"ParamScheduler({type(self.scheduler).__name__}, {unit} [{self.begin}, {self.end}))"


class ReduceOnPlateauLR:
    """MMEngine's ``ReduceOnPlateauLR``: lower the learning rate when a validation metric stops improving.

    It is stepped with the validation metrics after each validation (``need_val_args``), and
    counts epochs in between; inside ``[begin, end)`` a metric that has not improved for more
    than ``patience`` validations multiplies every group's lr by ``factor`` (down to ``min_value``).

    Args:
        optimizer: the torch optimizer.
        monitor: the metric key to watch (as the evaluator names it, e.g. ``'accuracy/top1'``).
        rule: ``'less'`` or ``'greater'`` is better.
        factor: the multiplier, in (0, 1).
        patience: validations without improvement tolerated before lowering.
        threshold: the least change that counts as an improvement.
        threshold_rule: ``'rel'`` (relative to the best) or ``'abs'``.
        cooldown: validations to wait after lowering before counting again.
        min_value: the lowest lr (one number, or one per group).
        eps: lowering by less than this is skipped.
        begin, end: the epochs it acts in; ``end`` defaults to MMEngine's (``max_epochs``).
        by_epoch: must be True (MMEngine steps it per validation epoch only).
    """

    need_val_args = True

    def __init__(self, optimizer: torch.optim.Optimizer, monitor: str = "loss", rule: str = "less",
                 factor: float = 0.1, patience: int = 10, threshold: float = 1e-4, threshold_rule: str = "rel",
                 cooldown: int = 0, min_value: float | list[float] = 0.0, eps: float = 1e-8, begin: int = 0,
                 end: float | None = None, by_epoch: bool = True, max_epochs: int | None = None,
                 max_iters: int | None = None, epoch_length: int | None = None,
                 convert_to_iter_based: bool = False) -> None:
        if not by_epoch or convert_to_iter_based:
            raise ValueError("ReduceOnPlateauLR is stepped after each validation: by_epoch must be True "
                             "and convert_to_iter_based False (as in MMEngine)")
        if rule not in ("less", "greater") or threshold_rule not in ("rel", "abs"):
            raise ValueError("rule must be 'less' or 'greater', threshold_rule 'rel' or 'abs'")
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.optimizer = optimizer
        self.monitor, self.rule, self.factor, self.patience = monitor, rule, factor, patience
        self.threshold, self.threshold_rule, self.cooldown, self.eps = threshold, threshold_rule, cooldown, eps
        groups = len(optimizer.param_groups)
        self.min_values = list(min_value) if isinstance(min_value, (list, tuple)) else [min_value] * groups
        if len(self.min_values) != groups:
            raise ValueError(f"min_value has {len(self.min_values)} values for {groups} parameter groups")
        self.by_epoch = True
        self.begin = begin
        self.end = default_end(True, max_epochs, max_iters) if end is None else end
        self.count = 0  # epochs counted (steps without metrics)
        self.best = math.inf if rule == "less" else -math.inf
        self.bad_epochs = 0
        self.cooldown_left = 0

    def _better(self, value: float) -> bool:
        if self.threshold_rule == "rel":
            margin = abs(self.best) * self.threshold if math.isfinite(self.best) else 0.0
        else:
            margin = self.threshold
        return value < self.best - margin if self.rule == "less" else value > self.best + margin

    def step(self, metrics: dict[str, Any] | None = None) -> None:
        """Count an epoch (no metrics), or judge a validation's ``metrics``."""
        if metrics is None:
            self.count += 1
            return
        if not self.begin <= self.count < self.end:
            return
        if self.monitor not in metrics:
            raise KeyError(f"ReduceOnPlateauLR monitors {self.monitor!r}, which is not among the validation "
                           f"metrics {sorted(metrics)}; set monitor to one of them")
        value = float(metrics[self.monitor])
        if self._better(value):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.patience:
            for group, floor in zip(self.optimizer.param_groups, self.min_values, strict=True):
                lowered = max(group["lr"] * self.factor, floor)
                if group["lr"] - lowered > self.eps:
                    group["lr"] = lowered
            self.cooldown_left, self.bad_epochs = self.cooldown, 0

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "best": self.best, "bad_epochs": self.bad_epochs,
                "cooldown_left": self.cooldown_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.cooldown_left = int(state["cooldown_left"])

    def __repr__(self) -> str:
        return f"ReduceOnPlateauLR(monitor={self.monitor!r}, rule={self.rule!r}, factor={self.factor})"
