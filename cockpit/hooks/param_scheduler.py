"""``ParamSchedulerHook``: steps iteration-based schedulers after each iteration, epoch-based after each epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cockpit.hooks.base import DataBatch, Hook
from cockpit.priority import Priority

if TYPE_CHECKING:
    from cockpit.interface import RunContext


class ParamSchedulerHook(Hook):
    """Steps ``runner.param_schedulers`` at their unit's end; those that need the validation metrics
    (``need_val_args``, e.g. ``ReduceOnPlateauLR``) also after each validation, with them (as MMEngine)."""

    priority = Priority.LOW
    reads_every_iteration = False

    def after_train_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None,
                         outputs: dict | None = None) -> None:
        for scheduler in runner.param_schedulers:
            if not scheduler.by_epoch:
                scheduler.step()

    def after_train_epoch(self, runner: RunContext) -> None:
        for scheduler in runner.param_schedulers:
            if scheduler.by_epoch:
                scheduler.step()

    def after_val_epoch(self, runner: RunContext, metrics: dict | None = None) -> None:
        if metrics is None:
            return
        for scheduler in runner.param_schedulers:
            if scheduler.by_epoch and getattr(scheduler, "need_val_args", False):
                scheduler.step(metrics)
