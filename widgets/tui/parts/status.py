"""The status line: what the run is doing, where it is, how it learns, how fast.

The line is built from segments, each with a rank: when the terminal is too narrow for all of
them, the least important are left out whole (never cut in the middle), and those shown keep
their order. What matters most comes first in rank: the status, the iteration, the loss, the
last and best validation value, the ETA.

The clock-driven parts tell the truth around a pause and the end: while paused there is no
speed and no ETA (``ETA paused``); once the run has ended, there is neither, and the elapsed
time stops at the moment the view saw the end.
"""

from __future__ import annotations

import datetime
import math
import time

from rich.text import Text
from textual.widgets import Static

from cockpit.events import Status
from cockpit.viewstate import RunState

STATUS_STYLES = {
    Status.RUNNING: "bold green",
    Status.VALIDATING: "bold cyan",
    Status.SAVING: "bold cyan",
    Status.PAUSED: "bold yellow",
    Status.STOPPED: "bold yellow",
    Status.FINISHED: "bold blue",
    Status.FAILED: "bold red",
    Status.DIED: "bold red",
    Status.CONNECTING: "dim",
}
#: Between two segments.
GAP = "  "
#: Segment ranks: a lower rank stays longer as the line narrows.
RANKS = {"status": 0, "iter": 1, "loss": 2, "val": 3, "eta": 4, "speed": 5, "elapsed": 6, "detail": 7,
         "name": 8, "epoch": 9, "data": 10, "memory": 11}


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    return str(datetime.timedelta(seconds=int(seconds)))


def _value(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "-"


def segments(state: RunState, now: float, ended_at: float | None = None) -> list[tuple[str, str, str]]:
    """``(kind, text, style)`` for each part of the status line, in the order shown."""
    info = state.info
    out: list[tuple[str, str, str]] = [("name", state.name or info.get("experiment_name", "cockpit"), "bold"),
                                       ("status", f"● {state.status}", STATUS_STYLES.get(state.status, "bold"))]
    epoch, max_epochs = info.get("epoch", 0), info.get("max_epochs")
    done_iters = state.scalars["train/loss"].steps[-1] + 1 if "train/loss" in state.scalars else 0
    # An iteration-based run is one long epoch: its epoch means nothing.
    by_epoch = info["by_epoch"] if isinstance(info.get("by_epoch"), bool) else bool(max_epochs and max_epochs > 1)
    if by_epoch and max_epochs:
        out.append(("epoch", f"epoch {min(epoch + 1, max_epochs)}/{max_epochs}", ""))
    out.append(("iter", f"iter {done_iters}/{info.get('max_iters') or '?'}", ""))
    loss = state.scalar("train/loss")
    if math.isfinite(loss):
        out.append(("loss", f"loss {_value(loss)}", "bold"))
    metric = state.metric_key
    if metric is not None:
        out.append(("val", f"val {metric.rsplit('/', 1)[-1]} {_value(state.scalar(metric))} "
                           f"best {_value(state.best(metric))}", ""))
    paused = state.status == Status.PAUSED
    if paused and not state.ended:
        out.append(("eta", "ETA paused", "yellow"))
    elif not state.ended:
        out.append(("eta", f"ETA {_duration(info.get('eta'))}", ""))
        speed = info.get("iters_per_sec")
        if isinstance(speed, (int, float)) and speed > 0:
            out.append(("speed", f"{speed:.1f} it/s", ""))
    started = info.get("started")
    if isinstance(started, (int, float)):
        until = ended_at if state.ended and ended_at is not None else now
        out.append(("elapsed", f"elapsed {_duration(until - started)}", "dim" if state.ended else ""))
    data_time = state.window_mean("train/data_time")
    if math.isfinite(data_time) and not paused:
        out.append(("data", f"data {data_time * 1000:.1f} ms", ""))
    memory = state.scalar("train/memory")
    if math.isfinite(memory):
        out.append(("memory", f"mem {memory:.0f} MiB", ""))
    if state.status_detail and state.status in (Status.FAILED, Status.STOPPED):
        out.append(("detail", state.status_detail, STATUS_STYLES.get(state.status, "")))
    return out


def fit(parts: list[tuple[str, str, str]], width: int) -> list[tuple[str, str, str]]:
    """The parts that fit in ``width`` columns, the most important first, in their shown order."""
    kept: set[int] = set()
    used = 0
    for index in sorted(range(len(parts)), key=lambda i: RANKS.get(parts[i][0], len(RANKS))):
        length = len(parts[index][1]) + (len(GAP) if kept else 0)
        if used + length <= width:
            kept.add(index)
            used += length
    return [part for index, part in enumerate(parts) if index in kept]


class StatusLine(Static):
    """One line: status, iteration, loss, validation (last and best), ETA, speed, elapsed, name, epoch,
    data time, memory; as many as fit, in that order of importance."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._ended_at: float | None = None
        self._shown: tuple = ()

    def show(self, state: RunState, now: float | None = None) -> None:
        """Bring the line up to date; repaints only when its text changed (it is asked every frame)."""
        now = time.time() if now is None else now
        if state.ended and self._ended_at is None:
            self._ended_at = now  # the elapsed time stops here
        elif not state.ended:
            self._ended_at = None
        width = self.size.width - 2 if self.size.width else 1 << 16
        parts = tuple(fit(segments(state, now, self._ended_at), width))
        if parts == self._shown:
            return
        self._shown = parts
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, (_, words, style) in enumerate(parts):
            if index:
                text.append(GAP)
            text.append(words, style=style)
        self.update(text, layout=False)  # one line, always: no layout of the screen for a new text
