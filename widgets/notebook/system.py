"""``SystemPanel``: what the run costs the machine — the training process's CPU and memory, the
machine's, each GPU's, and the share of time spent waiting for data, each with a sparkline.

The run publishes the samples as ``info["system"]`` (``cockpit.system_monitor``: current figures
and a short history of each); the data-wait share comes from the run's own ``train/data_time``
and ``train/time`` scalars. A run without a monitor shows a line saying so.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from cockpit.viewstate import RunState

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
    spent = dict(zip(total.steps, total.values, strict=True))
    shares = [100 * wait / spent[step] for step, wait in zip(data.steps, data.values, strict=True)
              if spent.get(step)]
    return shares[-count:]


def _row(label: str, figure: str, history: Sequence[float] = (), ceiling: float | None = None) -> str:
    """Three grid cells: what, how much now, and its sparkline."""
    return (f"<span style='color:#777'>{html.escape(label)}</span>"
            f"<span style='text-align:right;font-variant-numeric:tabular-nums'>{html.escape(figure)}</span>"
            f"<span>{sparkline(history, ceiling)}</span>")


def system_html(state: RunState) -> str:
    """The panel's table, from ``state.info['system']`` and the timing scalars."""
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
        return "<span style='color:#888;font-size:12px'>The run publishes no system figures.</span>"
    # A CSS grid, not a table: a notebook's table styles would space the rows out.
    return ("<div style='display:grid;grid-template-columns:repeat(3,auto);gap:2px 16px;font-size:12px;"
            f"align-items:center;justify-content:start'>{''.join(rows)}</div>")


class SystemPanel(widgets.Accordion):
    """A folding "System" section, redrawn from the state."""

    def __init__(self) -> None:
        self.body = widgets.HTML(system_html(RunState()))
        super().__init__([self.body], titles=("System",), selected_index=None, layout=widgets.Layout(width="100%"))

    def show(self, state: RunState) -> None:
        self.body.value = system_html(state)
