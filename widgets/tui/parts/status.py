"""The status line: what the run is doing, where it is, how fast."""

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


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    return str(datetime.timedelta(seconds=int(seconds)))


class StatusLine(Static):
    """One line: name, status, epoch and iteration of their maxima, elapsed, ETA, speed, data time, memory."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    """

    def show(self, state: RunState, now: float | None = None) -> None:
        info = state.info
        now = time.time() if now is None else now
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(state.name or info.get("experiment_name", "cockpit"), style="bold")
        text.append("  ")
        text.append(f"● {state.status}", style=STATUS_STYLES.get(state.status, "bold"))
        epoch, max_epochs = info.get("epoch", 0), info.get("max_epochs")
        done_iters = state.scalars["train/loss"].steps[-1] + 1 if "train/loss" in state.scalars else 0
        max_iters = info.get("max_iters")
        # An iteration-based run is one long epoch: its epoch means nothing.
        by_epoch = info["by_epoch"] if isinstance(info.get("by_epoch"), bool) else bool(max_epochs and max_epochs > 1)
        if by_epoch and max_epochs:
            text.append(f"  epoch {min(epoch + 1, max_epochs)}/{max_epochs}")
        text.append(f"  iter {done_iters}/{max_iters or '?'}")
        started = info.get("started")
        if isinstance(started, (int, float)):
            text.append(f"  elapsed {_duration(now - started)}", style="dim" if state.ended else "")
        if not state.ended:
            text.append(f"  ETA {_duration(info.get('eta'))}")
            speed = info.get("iters_per_sec")
            if isinstance(speed, (int, float)) and speed > 0:
                text.append(f"  {speed:.1f} it/s")
        data_time = state.window_mean("train/data_time")
        if math.isfinite(data_time):
            text.append(f"  data {data_time * 1000:.1f} ms")
        memory = state.scalar("train/memory")
        if math.isfinite(memory):
            text.append(f"  mem {memory:.0f} MiB")
        if state.status_detail and state.status in (Status.FAILED, Status.STOPPED):
            text.append(f"  {state.status_detail}", style=STATUS_STYLES.get(state.status, ""))
        self.update(text)
