"""``LoggerHook``: the text progress lines, and scalars to JSON lines and TensorBoard."""

from __future__ import annotations

import datetime
import math
from typing import TYPE_CHECKING, Any

import torch

from cockpit.hooks.base import DataBatch, Hook
from cockpit.priority import Priority
from cockpit.writers import JsonLinesWriter, TensorboardWriter

if TYPE_CHECKING:
    from cockpit.interface import RunContext

_SMOOTHED = ("time", "data_time")


def _format_value(key: str, value: float) -> str:
    if key.endswith("lr"):
        return f"{value:.4e}"
    return f"{value:.4f}"


class LoggerHook(Hook):
    """Logs progress every ``interval`` iterations and after each validation.

    A train line reads ``Epoch(train) [2][ 40/113]  lr: 1.0000e-01  eta: 0:00:12
    time: 0.0101  data_time: 0.0012  loss: 0.4123``: times and losses averaged over
    the log window, the learning rate as it is now. Scalars go to
    ``<log_dir>/vis_data/scalars.json`` (JSON lines) and a tensorboardX event file
    in ``<log_dir>/vis_data``.

    Args:
        interval: log every this many train iterations.
        ignore_last: skip the last, shorter stretch of an epoch (MMEngine's default) when False
            logs it too.
        backends: any of ``'json'`` and ``'tensorboard'``.
    """

    priority = Priority.BELOW_NORMAL

    def __init__(self, interval: int = 10, ignore_last: bool = True,
                 backends: tuple[str, ...] | list[str] = ("json", "tensorboard")) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f"LoggerHook interval must be a positive int, got {interval!r}")
        unknown = set(backends) - {"json", "tensorboard"}
        if unknown:
            raise ValueError(f"unknown LoggerHook backends {sorted(unknown)}; use 'json' and/or 'tensorboard'")
        self.interval = interval
        self.ignore_last = ignore_last
        self.backends = tuple(backends)
        self.writers: list[Any] = []

    def before_run(self, runner: RunContext) -> None:
        if not runner.is_main_process:
            return
        vis_dir = runner.log_dir / "vis_data"
        if "json" in self.backends:
            self.writers.append(JsonLinesWriter(vis_dir / "scalars.json"))
        if "tensorboard" in self.backends:
            self.writers.append(TensorboardWriter(vis_dir))

    def after_run(self, runner: RunContext) -> None:
        for writer in self.writers:
            writer.close()
        self.writers = []

    def _write(self, values: dict[str, float], step: int, **extra: Any) -> None:
        for writer in self.writers:
            writer.add_scalars(values, step, **extra)

    def after_train_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None,
                         outputs: dict | None = None) -> None:
        loop = runner.train_loop
        epoch_length = getattr(loop, "epoch_length", None)
        end_of_epoch = runner.is_epoch_based and epoch_length is not None and batch_idx + 1 == epoch_length
        if not (self.every_n(runner.iter + 1, self.interval) or (end_of_epoch and not self.ignore_last)):
            return
        hub = runner.message_hub
        window = self.interval
        values: dict[str, float] = {}
        for name in runner.optim_wrapper.get_lr():
            values[f"train/{name}"] = hub.get_scalar(f"train/{name}").current()
        for key in _SMOOTHED:
            if f"train/{key}" in hub.log_scalars:
                values[f"train/{key}"] = hub.get_scalar(f"train/{key}").mean(window)
        for key in outputs or {}:
            values[f"train/{key}"] = hub.get_scalar(f"train/{key}").mean(window)
        if "train/grad_norm" in hub.log_scalars:
            values["train/grad_norm"] = hub.get_scalar("train/grad_norm").mean(window)
        memory = _memory_mb()
        parts = []
        if runner.is_epoch_based:
            width = len(str(epoch_length))
            parts.append(f"Epoch(train) [{runner.epoch + 1}][{batch_idx + 1:>{width}}/{epoch_length}]")
        else:
            width = len(str(runner.max_iters))
            parts.append(f"Iter(train) [{runner.iter + 1:>{width}}/{runner.max_iters}]")
        eta = hub.get_info("eta")
        for key, value in values.items():
            short = key.removeprefix("train/")
            if short == "time" and eta is not None:
                parts.append(f"eta: {datetime.timedelta(seconds=int(eta))}")
            parts.append(f"{short}: {_format_value(short, value)}")
        if memory is not None:
            parts.append(f"memory: {memory:.0f}")
        runner.logger.info("  ".join(parts))
        if memory is not None:
            values["train/memory"] = memory
        self._write(values, runner.iter + 1, epoch=runner.epoch + 1, iter=runner.iter + 1)

    def _after_eval(self, runner: RunContext, mode: str, metrics: dict[str, Any] | None) -> None:
        hub = runner.message_hub
        values = {f"{mode}/{k}": float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
        for key in _SMOOTHED:
            if f"{mode}/{key}" in hub.log_scalars:
                values[f"{mode}/{key}"] = hub.get_scalar(f"{mode}/{key}").mean()
        shown = "  ".join(f"{k.removeprefix(mode + '/')}: {_format_value(k, v)}" for k, v in values.items()
                          if math.isfinite(v))
        where = f"[{runner.epoch}]" if runner.is_epoch_based and mode == "val" else f"[{runner.iter}]"
        label = "Epoch" if runner.is_epoch_based else "Iter"
        runner.logger.info(f"{label}({mode}) {where}  {shown}")
        self._write(values, runner.iter, epoch=runner.epoch, iter=runner.iter)

    def after_val_epoch(self, runner: RunContext, metrics: dict[str, Any] | None = None) -> None:
        self._after_eval(runner, "val", metrics)

    def after_test_epoch(self, runner: RunContext, metrics: dict[str, Any] | None = None) -> None:
        self._after_eval(runner, "test", metrics)


def _memory_mb() -> float | None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return None
