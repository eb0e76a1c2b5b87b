"""What the run's machine is doing (btop's view of one run): the training process's CPU and memory, the
machine's, each GPU's, and the share of time spent waiting for data, each with its recent history; in a
distributed run, first a row per rank (its ``rank_health`` info: step, own and data time, memory,
heartbeat age, and whether it straggles or hangs).

The figures come from the run's ``system`` runtime info (``cockpit.system_monitor.SystemMonitor``,
one sample a second, with the last samples as history). The data-wait share comes from the run's
own ``train/data_time`` and ``train/time`` scalars (``IterTimerHook``: an iteration's time
includes the wait for its batch), iteration by iteration.

Bars are drawn on a fixed scale (0-100 % for shares, 0 to the peak for resident memory), so a
busy core looks busy and a quiet one flat, unlike a sparkline stretched to its own range.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import Static

from cockpit.viewstate import RankHealth, RunState, short_seconds

#: Eighth blocks, from empty to full.
BLOCKS = " ▁▂▃▄▅▆▇█"
#: Iterations over which the data-wait figure is averaged.
DATA_WINDOW = 20
#: Columns of a figure's label and of its value; the bars take the rest of the line.
LABEL_WIDTH, VALUE_WIDTH = 10, 33


def bars(values: Sequence[float], width: int, top: float, height: int = 1) -> list[str]:
    """The last ``width`` values as a bar chart ``height`` rows high on the scale 0..``top``, newest at the right.

    Returns the rows, top first, each exactly ``width`` characters (padded on the left while the
    history is shorter than the width). A value above zero shows at least the lowest bar, so a
    little load is never drawn as none.
    """
    width, height = max(0, width), max(1, height)
    shown = list(values)[-width:] if width else []
    levels = []
    for value in shown:
        level = round(max(0.0, min(1.0, value / top)) * 8 * height) if top > 0 else 0
        levels.append(max(level, 1) if value > 0 else level)
    rows = []
    for row in range(height - 1, -1, -1):  # top row first
        floor = 8 * row
        line = "".join(BLOCKS[max(0, min(8, level - floor))] for level in levels)
        rows.append(line.rjust(width))
    return rows


def scale_for(values: Sequence[float]) -> float:
    """The smallest of 5, 10, 25, 50 and 100 (%) that holds every value: a small share still shows its changes."""
    peak = max(values, default=0.0)
    return next((top for top in (5.0, 10.0, 25.0, 50.0) if peak <= top), 100.0)


def size(count: float) -> str:
    """Bytes as ``512 MiB`` / ``1.21 GiB``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            value = count / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{int(count)} B"


def data_wait(state: RunState, count: int) -> tuple[float | None, list[float]]:
    """The share (%) of iteration time spent waiting for data over the last ``DATA_WINDOW`` iterations,
    and the per-iteration shares of the last ``count`` iterations (None and [] without the scalars)."""
    waits, times = state.scalars.get("train/data_time"), state.scalars.get("train/time")
    if not waits or not times or not waits.steps or not times.steps:
        return None, []
    # Both are written every iteration; pair them by step, newest last.
    by_step = dict(zip(waits.steps[-count - DATA_WINDOW:], waits.values[-count - DATA_WINDOW:], strict=True))
    pairs = [(by_step[s], t) for s, t in zip(times.steps[-count - DATA_WINDOW:], times.values[-count - DATA_WINDOW:],
                                             strict=True) if s in by_step and t > 0]
    if not pairs:
        return None, []
    shares = [100 * min(wait, total) / total for wait, total in pairs]
    recent = pairs[-DATA_WINDOW:]
    total = sum(t for _, t in recent)
    share = 100 * sum(min(w, t) for w, t in recent) / total if total > 0 else None
    return share, shares[-count:]


#: The rank table's columns: (title, width); the state takes the rest of the line (it fits 80 columns).
RANK_COLUMNS = (("rank", 4), ("iter", 7), ("step", 7), ("own ×median", 13), ("data", 7), ("memory", 9),
                ("heartbeat", 11))
#: A rank's state in the table: its words' style.
RANK_STYLES = {"ok": "green", "straggler": "bold yellow", "alert": "bold red", "hung": "bold red"}


def rank_cells(rank: RankHealth, now: float) -> list[str]:
    """A rank's row, one text per ``RANK_COLUMNS`` column, then its state."""
    own = short_seconds(rank.own_time) + (f" {rank.ratio:.1f}x" if math.isfinite(rank.ratio) else "")
    memory = size(rank.memory_mb * (1 << 20)) if math.isfinite(rank.memory_mb) else "-"
    age = rank.age(now)
    state = {"ok": "ok", "straggler": "straggler", "alert": f"alert: {rank.alert}"}.get(rank.state, "")
    if rank.state == "hung":
        state = f"hung {short_seconds(rank.idle)}" if math.isfinite(rank.idle) else "hung"
    return [str(rank.rank), str(rank.iter), short_seconds(rank.step_time), own, short_seconds(rank.data_time),
            memory, f"{short_seconds(age)} ago" if math.isfinite(age) else "-", state]


def system_rows(state: RunState) -> list[tuple[str, str, str, list[float], float]]:
    """``(group, label, value text, history, scale top)`` for each figure the run has, in display order."""
    system = state.info.get("system") if isinstance(state.info.get("system"), dict) else {}
    history = system.get("history", {})
    rows: list[tuple[str, str, str, list[float], float]] = []
    process = system.get("process")
    if process:
        cpu = process["cpu"]
        rows.append((f"training process (pid {process['pid']})", "CPU", f"{cpu:.0f}% of a core",
                     history.get("process_cpu", []), max([100.0, *history.get("process_cpu", [])])))
        rss = history.get("process_rss", [])
        rows.append(("", "memory", f"{size(process['rss'])} · {process['threads']} threads", rss,
                     float(max(rss, default=0)) or 1.0))
    elif system:
        rows.append(("training process", "", "ended", [], 1.0))
    machine = system.get("machine")
    if machine:
        rows.append((f"machine ({machine['cores']} cores)", "CPU", f"{machine['cpu']:.0f}%",
                     history.get("machine_cpu", []), 100.0))
        rows.append(("", "memory", f"{size(machine['memory_used'])} of {size(machine['memory_total'])} "
                                   f"({machine['memory']:.0f}%)", history.get("machine_memory", []), 100.0))
    for gpu in system.get("gpus", ()):
        index = gpu["index"]
        share = 100 * gpu["memory_used"] / max(1, gpu["memory_total"])
        rows.append((f"GPU {index} · {gpu['name']}", "util", f"{gpu['util']:.0f}%",
                     history.get(f"gpu{index}_util", []), 100.0))
        rows.append(("", "memory", f"{size(gpu['memory_used'])} of {size(gpu['memory_total'])} ({share:.0f}%)",
                     history.get(f"gpu{index}_memory", []), 100.0))
    return rows


class SystemPanel(Static):
    """One row per figure: its value now and a bar chart of its recent history (the newest at the right).

    ``show(state)`` redraws only when a new sample or iteration arrived, or the panel was resized.
    """

    DEFAULT_CSS = """
    SystemPanel {
        height: 1fr;
        border: round $primary 50%;
        border-title-color: $text;
        padding: 0 1;
    }
    """

    def __init__(self, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self._shown: tuple | None = None

    def on_mount(self) -> None:
        self.border_title = "system"

    def show(self, state: RunState) -> None:
        """Bring the panel up to date with ``state`` (nothing while hidden)."""
        if not self.is_on_screen:
            return
        system = state.info.get("system") if isinstance(state.info.get("system"), dict) else {}
        times = state.scalars.get("train/time")
        ranks = state.rank_health
        now = self.clock()
        # The heartbeat ages tick with the clock: a rank that stopped reporting shows it.
        shown = (system.get("samples"), system.get("time"), len(times) if times else 0,
                 times.steps[-1] if times and times.steps else None, self.size, state.ended, ranks,
                 int(now) if ranks else None)
        if shown == self._shown:
            return
        self._shown = shown
        self.update(self._render_rows(state, system, ranks, now))

    def _render_rows(self, state: RunState, system: dict[str, Any], ranks: Sequence[RankHealth] = (),
                     now: float = 0.0) -> Text:
        rows = system_rows(state)
        spark_width = max(8, self.content_size.width - LABEL_WIDTH - VALUE_WIDTH)
        share, shares = data_wait(state, spark_width)
        groups = len([row for row in rows if row[0]]) + 2  # the GPU or no-samples note, and data loading
        figures = len(rows) + 1
        # Taller bars, and a blank line between groups, when the panel has the room (the rank table's
        # lines, a title and a header first).
        rank_lines = len(ranks) + sum(1 for r in ranks if r.where and r.state == "hung") + 2 if ranks else 0  # at most
        spare = self.content_size.height - groups - rank_lines
        height = max(1, min(4, (spare - groups) // figures))
        gap = spare - height * figures >= groups
        out = Text(no_wrap=True, overflow="ellipsis")
        style = "dim" if state.ended else "cyan"
        if ranks:
            self._rank_table(out, ranks, now, self.content_size.width)

        def group(title: str) -> None:
            if gap and out.plain:
                out.append("\n")
            out.append(title + "\n", style="bold")

        def row(label: str, value: Text | str, history: Sequence[float] = (), top: float = 100.0) -> None:
            chart = bars(history, spark_width, top, height) if history else [""]
            for index, line in enumerate(chart):
                out.append(f"  {label if index == 0 else '':<{LABEL_WIDTH - 2}}", style="dim")
                text = (Text(value) if isinstance(value, str) else value.copy()) if index == 0 else Text()
                if history:  # a note without bars may take the whole line
                    text.truncate(VALUE_WIDTH - 1, overflow="ellipsis", pad=True)
                out.append_text(text)
                out.append(" ")
                out.append(line, style=style)
                out.append("\n")

        for title, label, value, history, top in rows:
            if title:
                group(title)
            row(label, value, history, top)
        if not system:
            group("system")
            row("", Text("no samples: the run publishes none", style="dim"))
        elif not system.get("gpus"):
            group("GPU")
            row("", Text(f"none: {system.get('gpu_note') or 'no NVIDIA GPU'}", style="dim"))
        group(f"data loading (last {DATA_WINDOW} iterations)")
        if share is None:
            row("wait", Text("no train/data_time and train/time yet", style="dim"))
        else:
            top = scale_for(shares)
            value = Text(f"{share:.1f}% of iter time", style="bold red" if share >= 20 else "")
            value.append(f" · scale {top:.0f}%", style="dim")
            row("wait", value, shares, top)
        out.rstrip()
        return out

    @staticmethod
    def _rank_table(out: Text, ranks: Sequence[RankHealth], now: float, width: int) -> None:
        """A row per rank: iteration, step time, own time (and its multiple of the median rank's), data
        time, peak memory, heartbeat age and state; stragglers in yellow, hung ranks in red, each with
        where its training thread is on a line of its own."""
        flagged = sum(1 for rank in ranks if rank.state != "ok")
        out.append(f"ranks ({len(ranks)} processes", style="bold")
        out.append(f" · {flagged} flagged" if flagged else " · all healthy", style="bold red" if flagged else "dim")
        out.append(")\n", style="bold")

        def cell(title: str, text: str, size: int) -> str:
            return f"{text:>{size}}  " if title == "rank" else f"{text:<{size}}"

        out.append("".join(cell(title, title, size) for title, size in RANK_COLUMNS) + "state\n", style="dim")
        indent = RANK_COLUMNS[0][1] + 2
        for rank in ranks:
            cells = rank_cells(rank, now)
            style = RANK_STYLES[rank.state]
            for (title, size), text in zip(RANK_COLUMNS, cells, strict=False):
                flagged_figure = (title.startswith("own") and rank.state == "straggler") or \
                                 (title == "heartbeat" and rank.state == "hung")
                out.append(cell(title, text, size), style=style if flagged_figure else "")
            where = f"in {rank.where}" if rank.where and rank.state == "hung" else ""
            if where and len(cells[-1]) + 1 + len(where) <= width - sum(size for _, size in RANK_COLUMNS) - 2:
                cells[-1], where = f"{cells[-1]} {where}", ""  # room on the row itself
            out.append(cells[-1] + "\n", style=style)
            if where:
                room = max(8, width - indent)
                out.append(" " * indent + (where if len(where) <= room else where[:room - 1] + "…") + "\n",
                           style="red")
