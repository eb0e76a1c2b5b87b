"""``DistSamplerSeedHook``: tells the train sampler which epoch starts, so shuffles differ per epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cockpit.hooks.base import Hook
from cockpit.priority import Priority

if TYPE_CHECKING:
    from cockpit.interface import RunContext


class DistSamplerSeedHook(Hook):
    """Calls ``set_epoch(epoch)`` on the train sampler (and batch sampler) before each epoch."""

    priority = Priority.NORMAL

    def before_train_epoch(self, runner: RunContext) -> None:
        loader = runner.train_loop.dataloader
        for sampler in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(runner.epoch)
