"""``SystemPanel``: what the run costs the machine — the training process's CPU and memory, the
machine's, each GPU's, and the share of time spent waiting for data, each with a sparkline; in a
distributed run, a row per rank first. ``rank_strip_html`` is the one-line rank strip the widget
shows under its progress bar.

The run publishes the samples as ``info["system"]`` (``cockpit.system_monitor``: current figures
and a short history of each); the data-wait share comes from the run's own ``train/data_time``
and ``train/time`` scalars. A run without a monitor shows a line saying so.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from cockpit.viewstate import RankHealth, RunState, short_seconds

#: Sparkline size in pixels.
SPARK_WIDTH, SPARK_HEIGHT = 120, 22


def sparkline(values: Sequence[float], ceiling: float | None = None) -> str:
    """An inline SVG line of ``values`` (scaled to ``ceiling``, or to their own maximum)."""
    points = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(points) < 2:
        return ""
    top = ceiling or max(points) or 1.0
    step = SPARK_WIDTH / (len(points) - 1)
    path = " ".join(f"{i * step:.1f},{SPARK_HEIGHT - 1 - (SPARK_HEIGHT - 2) * min(v / top, 1.0):.1f}"
                    for i, v in enumerate(points))
    return (f"<svg width='{SPARK_WIDTH}' height='{SPARK_HEIGHT}' style='vertical-align:middle'>"
            f"<polyline points='{path}' fill='none' stroke='#0969da' stroke-width='1.5'/></svg>")


def _bytes(count: Any) -> str:
    if not isinstance(count, (int, float)):
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return "?"


def data_wait_history(state: RunState, count: int = 60) -> list[float]:
    """The share (%) of each recent iteration spent waiting for data (``data_time / time``)."""
    data, total = state.scalars.get("train/data_time"), state.scalars.get("train/time")
    if data is None or total is None:
        return []
    # The newest points first (a redraw a quarter second, 8192 points a scalar): the whole series only
    # when their tails do not hold ``count`` iterations with both figures.
    for tail in (4 * count, None):
        start = -tail if tail else None
        spent = dict(zip(total.steps[start:], total.values[start:], strict=True))
        shares = [100 * wait / spent[step] for step, wait in zip(data.steps[start:], data.values[start:], strict=True)
                  if spent.get(step)]
        if len(shares) >= count or tail is None or tail >= max(len(data.steps), len(total.steps)):
            return shares[-count:]
    return []


def _row(label: str, figure: str, history: Sequence[float] = (), ceiling: float | None = None) -> str:
    """Three grid cells: what, how much now, and its sparkline."""
    return (f"<span style='color:#777'>{html.escape(label)}</span>"
            f"<span style='text-align:right;font-variant-numeric:tabular-nums'>{html.escape(figure)}</span>"
            f"<span>{sparkline(history, ceiling)}</span>")


#: A rank's state: the colour of its words (the strip and the rank rows).
RANK_COLORS = {"ok": "#1a7f37", "straggler": "#b35900", "alert": "#c62828", "hung": "#c62828"}
#: A rank's state: the mark before it on the strip.
RANK_MARKS = {"ok": "●", "straggler": "▲", "alert": "⚠", "hung": "✖"}


def rank_strip_html(ranks: Sequence[RankHealth]) -> str:
    """The rank strip (``ranks 0 ● 0.12s · 1 ▲ straggles 2.6x · 2 ✖ hung 63s in ...``), or nothing
    outside a distributed run. The notebook has the width: every rank is named, and a hung rank's place."""
    if not ranks:
        return ""
    items = []
    for rank in ranks:
        color = RANK_COLORS[rank.state]
        flagged = rank.state != "ok"
        words = html.escape(rank.note)
        if rank.state == "hung" and rank.where:
            words += f" <span style='color:#777'>in</span> <code>{html.escape(rank.where)}</code>"
        items.append(f"<span title='rank {rank.rank}'>{rank.rank} <span style='color:{color}'>{RANK_MARKS[rank.state]}"
                     f"</span> <span style='{f'color:{color};font-weight:600' if flagged else ''}'>{words}</span></span>")
    return ("<div class='cockpit-ranks' style='font-size:12px;font-variant-numeric:tabular-nums'>"
            "<span style='color:#777'>ranks</span> " + " <span style='color:#aaa'>·</span> ".join(items) + "</div>")


def rank_rows_html(ranks: Sequence[RankHealth], now: float) -> str:
    """A table row per rank: iteration, step, own time (x the median rank's), data time, memory, heartbeat age, state."""
    if not ranks:
        return ""
    head = "".join(f"<th style='text-align:left;padding:0 10px 0 0;color:#777;font-weight:normal'>{title}</th>"
                   for title in ("rank", "iter", "step", "own (× median)", "data", "memory", "heartbeat", "state"))
    rows = []
    for rank in ranks:
        color = RANK_COLORS[rank.state]
        age = rank.age(now)
        state = {"ok": "ok", "straggler": "straggler", "alert": f"alert: {rank.alert}"}.get(rank.state, "")
        if rank.state == "hung":
            state = f"hung {short_seconds(rank.idle)}" if math.isfinite(rank.idle) else "hung"
            state += f" in {rank.where}" if rank.where else ""
        ratio = f" {rank.ratio:.1f}x" if math.isfinite(rank.ratio) else ""
        cells = [str(rank.rank), str(rank.iter), short_seconds(rank.step_time), short_seconds(rank.own_time) + ratio,
                 short_seconds(rank.data_time), _bytes(rank.memory_mb * 1024 * 1024) if math.isfinite(rank.memory_mb)
                 else "-", f"{short_seconds(age)} ago" if math.isfinite(age) else "-", state]
        rows.append("<tr>" + "".join(
            f"<td style='padding:0 10px 0 0{f';color:{color};font-weight:600' if index == 7 and rank.state != 'ok' else ''}"
            f"{f';color:{color}' if index == 7 and rank.state == 'ok' else ''}'>{html.escape(cell)}</td>"
            for index, cell in enumerate(cells)) + "</tr>")
    return ("<table class='cockpit-rank-rows' style='font-size:12px;border-collapse:collapse;margin-bottom:6px;"
            f"font-variant-numeric:tabular-nums'><tr>{head}</tr>{''.join(rows)}</table>")


def system_html(state: RunState, now: float | None = None) -> str:
    """The panel's table, from ``state.info['system']`` and the timing scalars; in a distributed run,
    first a row per rank (``state.rank_health``)."""
    ranks = rank_rows_html(state.rank_health, time.time() if now is None else now)
    system = state.info.get("system")
    rows = []
    if isinstance(system, Mapping):
        history = system.get("history") or {}
        process = system.get("process")
        if isinstance(process, Mapping):
            rows.append(_row("process CPU", f"{process.get('cpu', 0):.0f}% of a core", history.get("process_cpu", ())))
            rows.append(_row("process memory", _bytes(process.get("rss")), history.get("process_rss", ())))
        machine = system.get("machine") or {}
        if machine:
            rows.append(_row(f"machine CPU ({machine.get('cores', '?')} cores)", f"{machine.get('cpu', 0):.0f}%",
                             history.get("machine_cpu", ()), 100.0))
            rows.append(_row("machine memory", f"{machine.get('memory', 0):.0f}% of {_bytes(machine.get('memory_total'))}",
                             history.get("machine_memory", ()), 100.0))
        for gpu in system.get("gpus") or ():
            index = gpu.get("index", 0)
            rows.append(_row(f"GPU {index} {gpu.get('name', '')}", f"{gpu.get('util', 0):.0f}%",
                             history.get(f"gpu{index}_util", ()), 100.0))
            rows.append(_row(f"GPU {index} memory", f"{_bytes(gpu.get('memory_used'))} of "
                             f"{_bytes(gpu.get('memory_total'))}", history.get(f"gpu{index}_memory", ())))
        if system.get("gpu_note"):
            rows.append(_row("GPU", str(system["gpu_note"])))
    waiting = data_wait_history(state)
    if waiting:
        rows.append(_row("waiting for data", f"{waiting[-1]:.0f}% of each iteration", waiting, 100.0))
    if not rows:
        return ranks + "<span style='color:#888;font-size:12px'>The run publishes no system figures.</span>"
    # A CSS grid, not a table: a notebook's table styles would space the rows out.
    return ranks + ("<div style='display:grid;grid-template-columns:repeat(3,auto);gap:2px 16px;font-size:12px;"
                    f"align-items:center;justify-content:start'>{''.join(rows)}</div>")


class SystemPanel(widgets.Accordion):
    """A folding "System" section, redrawn from the state."""

    def __init__(self) -> None:
        self.body = widgets.HTML(system_html(RunState()))
        super().__init__([self.body], titles=("System",), selected_index=None, layout=widgets.Layout(width="100%"))

    def show(self, state: RunState) -> None:
        self.body.value = system_html(state)
