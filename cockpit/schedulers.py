"""Parameter schedulers: torch's LR schedulers with MMEngine's ``begin``/``end``/``by_epoch``.

A ``ParamScheduler`` wraps one torch scheduler and steps it only while the run is
inside ``[begin, end)``, counted in epochs (``by_epoch=True``) or iterations.
A list of them gives warm-up then decay: ``LinearLR`` for ``[0, 100)`` iterations,
``CosineAnnealingLR`` from 100 on. ``convert_to_iter_based=True`` turns an
epoch-based schedule into the same curve stepped every iteration.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

_EPOCH_LENGTH_FIELDS = ("T_max", "total_iters", "step_size", "T_0")


class ParamScheduler:
    """One torch scheduler, active in ``[begin, end)``.

    Args:
        scheduler_cls: a ``torch.optim.lr_scheduler`` class (or compatible).
        optimizer: the torch optimizer it drives.
        by_epoch: count epochs (stepped after each epoch) or iterations.
        begin: first epoch/iteration it is active.
        end: the epoch/iteration it stops at (``math.inf`` for never).
        convert_to_iter_based: with ``by_epoch=True``, step every iteration instead,
            with ``begin``, ``end`` and the length arguments scaled by the epoch length.
        epoch_length: iterations per epoch (needed to convert).
        **kwargs: the torch scheduler's own arguments. ``T_max`` defaults to ``end - begin``
            and ``total_iters`` to ``end - begin - 1`` (the last unit inside the window has the
            final value), as in MMEngine.

    Outside ``[begin, end)`` the scheduler leaves the learning rate alone: before ``begin``
    it has not started, from ``end`` on the last value stays.
    """

    def __init__(self, scheduler_cls: type, optimizer: torch.optim.Optimizer, *, by_epoch: bool = True,
                 begin: int = 0, end: float = math.inf, convert_to_iter_based: bool = False,
                 epoch_length: int | None = None, **kwargs: Any) -> None:
        if end <= begin:
            raise ValueError(f"scheduler end ({end}) must be greater than begin ({begin})")
        if convert_to_iter_based:
            if not by_epoch:
                raise ValueError("convert_to_iter_based=True only applies to by_epoch=True schedulers")
            if not epoch_length:
                raise ValueError("convert_to_iter_based needs the epoch length (a sized train dataloader)")
            begin = int(begin * epoch_length)
            end = end if math.isinf(end) else int(end * epoch_length)
            for field in _EPOCH_LENGTH_FIELDS:
                if field in kwargs:
                    kwargs[field] = int(kwargs[field] * epoch_length)
            if "milestones" in kwargs:
                kwargs["milestones"] = [int(m * epoch_length) for m in kwargs["milestones"]]
            if scheduler_cls is torch.optim.lr_scheduler.ExponentialLR and "gamma" in kwargs:
                kwargs["gamma"] = kwargs["gamma"] ** (1 / epoch_length)
            by_epoch = False
        parameters = inspect.signature(scheduler_cls).parameters
        if not math.isinf(end):
            if "T_max" in parameters and "T_max" not in kwargs:
                kwargs["T_max"] = int(end - begin)
            if "total_iters" in parameters and "total_iters" not in kwargs:
                kwargs["total_iters"] = max(1, int(end - begin - 1))
        if "T_max" in parameters and "T_max" not in kwargs:
            raise ValueError(f"{scheduler_cls.__name__} needs T_max or a finite end")
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
