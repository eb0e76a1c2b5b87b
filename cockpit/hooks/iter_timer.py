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

    Time the run spent held at a safe point (paused, applying a command, saving on request:
    ``runner.steering.held_seconds``) is no part of any iteration: it counts neither as data
    time nor as iteration time, so the speed and the ETA do not jump after a pause.
    """

    priority = Priority.NORMAL
    reads_every_iteration = False

    def __init__(self) -> None:
        self._last = 0.0
        self._started_iter = 0
        self._time_sum = 0.0
        self._count = 0
        self._info_at = -1.0
        self._held = 0.0  # the steering's held seconds at the last stamp

    def _start(self, runner: RunContext) -> None:
        self._last = time.perf_counter()
        self._held = _held_seconds(runner)

    def _since_last(self, runner: RunContext, now: float) -> float:
        """Seconds since the last stamp, less the time held at safe points meanwhile."""
        held = _held_seconds(runner)
        if held != self._held:
            self._last += held - self._held
            self._held = held
        return now - self._last

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
        runner.message_hub.update_scalar(f"{mode}/data_time", self._since_last(runner, time.perf_counter()))

    def _after_iter(self, runner: RunContext, mode: str) -> float:
        now = time.perf_counter()
        elapsed = self._since_last(runner, now)
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


def _held_seconds(runner: RunContext) -> float:
    """The run's seconds held at safe points so far (0 for a runner without such steering)."""
    return getattr(getattr(runner, "steering", None), "held_seconds", 0.0)
