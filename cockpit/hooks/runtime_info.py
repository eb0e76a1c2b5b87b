"""``RuntimeInfoHook``: keeps the hub's runtime info and the step's scalars current."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from cockpit.events import Status
from cockpit.hooks.base import DataBatch, Hook
from cockpit.priority import Priority

if TYPE_CHECKING:
    from cockpit.interface import RunContext


def _is_scalar(value: Any) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    numel = getattr(value, "numel", None) or getattr(value, "size", None)
    if callable(numel):
        return numel() == 1
    return isinstance(numel, int) and numel == 1


class RuntimeInfoHook(Hook):
    """Writes epoch, iter, maxima, loop stage, learning rate and the step's logged values to the hub.

    The keys follow MMEngine: info ``epoch``, ``iter``, ``max_epochs``, ``max_iters``,
    ``loop_stage``; scalars ``train/lr``, ``train/<loss key>``, ``val/<metric>``, ``test/<metric>``.
    """

    priority = Priority.VERY_HIGH

    def __init__(self) -> None:
        self.last_loop_stage: str | None = None

    def before_run(self, runner: RunContext) -> None:
        runner.message_hub.update_info_dict({
            "experiment_name": runner.experiment_name,
            "seed": runner.seed,
            "work_dir": runner.work_dir,
            "log_dir": runner.log_dir,
        })
        self.last_loop_stage = None

    def before_train(self, runner: RunContext) -> None:
        hub = runner.message_hub
        hub.update_info("loop_stage", "train")
        hub.update_info("epoch", runner.epoch)
        hub.update_info("iter", runner.iter)
        hub.update_info("max_epochs", runner.max_epochs)
        hub.update_info("max_iters", runner.max_iters)
        meta = getattr(runner.train_dataloader.dataset, "metainfo", None)
        if meta is not None:
            hub.update_info("dataset_meta", meta)

    def after_train(self, runner: RunContext) -> None:
        runner.message_hub.pop_info("loop_stage")

    def before_train_epoch(self, runner: RunContext) -> None:
        runner.message_hub.update_info("epoch", runner.epoch)

    def before_train_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None) -> None:
        hub = runner.message_hub
        hub.update_info("iter", runner.iter)
        for name, lrs in runner.optim_wrapper.get_lr().items():
            hub.update_scalar(f"train/{name}", lrs[0])

    def after_train_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None,
                         outputs: dict | None = None) -> None:
        if outputs:
            hub = runner.message_hub
            # The step's logged values are tensors (as in MMEngine); one transfer reads them all.
            values = list(outputs.values())
            if all(isinstance(v, torch.Tensor) and v.numel() == 1 for v in values):
                values = torch.stack([v.detach().reshape(()).float() for v in values]).tolist()
            for key, value in zip(outputs, values, strict=True):
                hub.update_scalar(f"train/{key}", value)
        skipped = getattr(runner.optim_wrapper, "skipped_steps", 0)
        if skipped != runner.message_hub.get_info("skipped_steps", 0):
            runner.message_hub.update_info("skipped_steps", skipped)
            runner.logger.warning(f"skipped a step with a non-finite loss at iter {runner.iter + 1} "
                                  f"({skipped} skipped so far)")
        norm = getattr(runner.optim_wrapper, "last_grad_norm", None)
        if norm is not None:
            runner.message_hub.update_scalar("train/grad_norm", norm)
            runner.optim_wrapper.last_grad_norm = None

    def before_val(self, runner: RunContext) -> None:
        self.last_loop_stage = runner.message_hub.get_info("loop_stage")
        runner.message_hub.update_info("loop_stage", "val")
        if runner.message_hub.status == "running":
            runner.message_hub.set_status(Status.VALIDATING)

    def after_val_epoch(self, runner: RunContext, metrics: dict[str, Any] | None = None) -> None:
        self._metrics(runner, "val", metrics)

    def after_val(self, runner: RunContext) -> None:
        # Validation may run inside training: go back to the stage it interrupted.
        if runner.message_hub.status == "validating":
            runner.message_hub.set_status(Status.RUNNING)
        if self.last_loop_stage == "train":
            runner.message_hub.update_info("loop_stage", "train")
            self.last_loop_stage = None
        else:
            runner.message_hub.pop_info("loop_stage")

    def before_test(self, runner: RunContext) -> None:
        runner.message_hub.update_info("loop_stage", "test")

    def after_test(self, runner: RunContext) -> None:
        runner.message_hub.pop_info("loop_stage")

    def after_test_epoch(self, runner: RunContext, metrics: dict[str, Any] | None = None) -> None:
        self._metrics(runner, "test", metrics)

    @staticmethod
    def _metrics(runner: RunContext, mode: str, metrics: dict[str, Any] | None) -> None:
        # Metrics are plotted at the number of training iterations done when they were measured.
        for key, value in (metrics or {}).items():
            if _is_scalar(value):
                runner.message_hub.update_scalar(f"{mode}/{key}", value, step=runner.iter)
            else:
                runner.message_hub.update_info(f"{mode}/{key}", value)
