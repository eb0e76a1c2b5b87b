"""``IterTimerHook``: iteration time, data time and the ETA."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from cockpit.hooks.base import DataBatch, Hook
from cockpit.priority import Priority

if TYPE_CHECKING:
    from cockpit.interface import RunContext


class IterTimerHook(Hook):
    """Records ``{mode}/time`` (whole iteration) and ``{mode}/data_time`` (waiting for the batch).

    It also keeps the info ``eta`` (seconds left, from the mean iteration time since
    the run or resume started) and ``iters_per_sec`` current, at most four times a second.
    """

    priority = Priority.NORMAL

    def __init__(self) -> None:
        self._last = 0.0
        self._started_iter = 0
        self._time_sum = 0.0
        self._count = 0
        self._info_at = -1.0

    def _start(self, runner: RunContext) -> None:
        self._last = time.perf_counter()

    def before_train(self, runner: RunContext) -> None:
        self._started_iter = runner.iter
        self._time_sum = 0.0
        self._count = 0
        self._start(runner)

    def before_train_epoch(self, runner: RunContext) -> None:
        self._start(runner)

    def before_val_epoch(self, runner: RunContext) -> None:
        self._start(runner)

    def before_test_epoch(self, runner: RunContext) -> None:
        self._start(runner)

    def after_val(self, runner: RunContext) -> None:
        # Validation time must not count as the next train iteration's data time.
        self._start(runner)

    def _before_iter(self, runner: RunContext, mode: str) -> None:
        now = time.perf_counter()
        runner.message_hub.update_scalar(f"{mode}/data_time", now - self._last)

    def _after_iter(self, runner: RunContext, mode: str) -> float:
        now = time.perf_counter()
        elapsed = now - self._last
        self._last = now
        runner.message_hub.update_scalar(f"{mode}/time", elapsed)
        return elapsed

    def before_train_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None) -> None:
        self._before_iter(runner, "train")

    def before_val_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None) -> None:
        self._before_iter(runner, "val")

    def before_test_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None) -> None:
        self._before_iter(runner, "test")

    def after_train_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None,
                         outputs: dict | None = None) -> None:
        self._time_sum += self._after_iter(runner, "train")
        self._count += 1
        now = self._last
        last_iter = runner.iter + 1 >= runner.max_iters
        if now - self._info_at < 0.25 and not last_iter:
            return  # views redraw a few times a second; the per-iteration times are scalars
        self._info_at = now
        mean = self._time_sum / self._count
        hub = runner.message_hub
        hub.update_info("eta", mean * max(0, runner.max_iters - runner.iter - 1))
        hub.update_info("iters_per_sec", 1.0 / mean if mean > 0 else 0.0)

    def after_val_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None, outputs=None) -> None:
        self._after_iter(runner, "val")

    def after_test_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None, outputs=None) -> None:
        self._after_iter(runner, "test")
