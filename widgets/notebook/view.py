"""``CockpitView``: the whole widget, assembled from its parts and redrawn from a ``RunState``.

Every part keeps what it shows in widget traits (HTML values, button states,
the figure's data, the log's outputs), which live in the kernel: a browser tab
opened later asks the kernel and shows the run as it is now.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from cockpit.widgets.notebook.checkpoints import CheckpointList
from cockpit.widgets.notebook.controls import ControlBar
from cockpit.widgets.notebook.grid import ScalarGrid
from cockpit.widgets.notebook.log import RunLog
from cockpit.widgets.notebook.overview import Overview
from cockpit.widgets.notebook.plots import ScalarPlot, loss_keys, lr_keys
from cockpit.widgets.notebook.system import SystemPanel, rank_strip_html
from cockpit.widgets.notebook.tables import HookTable

from cockpit.events import Status
from cockpit.viewstate import RunState

STATUS_COLORS = {
    Status.RUNNING: "#1a7f37", Status.VALIDATING: "#0969da", Status.SAVING: "#0969da", Status.PAUSED: "#b35900",
    Status.FINISHED: "#57606a", Status.STOPPED: "#57606a", Status.FAILED: "#c62828", Status.DIED: "#c62828",
}
PROGRESS_STYLES = {Status.FAILED: "danger", Status.DIED: "danger", Status.FINISHED: "success", Status.PAUSED: "warning"}


def format_duration(seconds: Any) -> str:
    """``1:02:03``, ``2:03`` or ``0:07``; empty when unknown."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def progress(state: RunState) -> tuple[int, int]:
    """``(iteration, max_iters)``, 1-based like MMEngine's log lines (0 before the first iteration)."""
    info = state.info
    total = int(info.get("max_iters") or 0)
    if "iter" not in info or not any(k.startswith("train/") for k in state.scalars):
        return 0, total
    return min(int(info["iter"]) + 1, total or int(info["iter"]) + 1), total


def header_html(state: RunState) -> str:
    """The status line: status, run name, the newest loss and learning rate, and why it stopped or failed."""
    color = STATUS_COLORS.get(state.status, "#57606a")
    name = state.info.get("experiment_name") or state.name
    parts = [f"<span style='background:{color};color:white;border-radius:10px;padding:1px 10px;"
             f"font-weight:600'>{html.escape(state.status or '?')}</span>",
             f"<b>{html.escape(str(name))}</b>"]
    facts = []
    for key in loss_keys(list(state.scalars))[:1]:
        facts.append(f"{key.split('/', 1)[1]} {state.scalars[key].last:.4g}")
    for key in lr_keys(list(state.scalars))[:1]:
        facts.append(f"lr {state.scalars[key].last:.3g}")
    if facts:
        parts.append("<span style='color:#555'>" + " · ".join(facts) + "</span>")
    if state.status_detail:
        parts.append(f"<span style='color:{color}'>{html.escape(state.status_detail)}</span>")
    return f"<div style='font-size:13px;line-height:22px'>{' &nbsp; '.join(parts)}</div>"


def progress_html(state: RunState) -> str:
    """``iter 135 / 450 · epoch 3 / 10 · 30% · ETA 0:05 · 37 it/s``."""
    done, total = progress(state)
    info = state.info
    parts = [f"iter {done} / {total}" if total else f"iter {done}"]
    if info.get("max_epochs"):
        epoch = min(int(info.get("epoch", 0)) + (1 if done else 0), int(info["max_epochs"]))
        parts.append(f"epoch {epoch} / {info['max_epochs']}")
    if total:
        parts.append(f"{100 * done / total:.0f}%")
    if state.status == Status.RUNNING and info.get("eta") is not None and done:
        parts.append(f"ETA {format_duration(info['eta'])}")
    if state.status == Status.RUNNING and info.get("iters_per_sec"):
        parts.append(f"{info['iters_per_sec']:.1f} it/s")
    return ("<span class='cockpit-progress' style='font-size:12px;color:#333;font-variant-numeric:tabular-nums'>"
            + " · ".join(parts) + "</span>")


class CockpitView(widgets.VBox):
    """The cockpit widget: status line, progress, controls, plot, hook table, checkpoints and log.

    Args:
        send: ``send(name, *args)`` submits a command to the run.
        on_close: called once when the widget is closed (stops the updates).
        max_points: the most points sent per plotted series.
        route: called once with each button and text field, as it appears (``ClickLane.route``
            has their clicks handled while another cell runs).
        facts: the run's key settings for the overview (``overview.config_facts``).
    """

    def __init__(self, send: Callable[..., None], on_close: Callable[[], None] | None = None,
                 max_points: int = 1200, route: Callable[[widgets.Widget], None] | None = None,
                 facts: list[tuple[str, str]] | None = None) -> None:
        self.on_close = on_close
        self.route = route
        self._routed: set[str] = set()
        self.closed = False
        self.connected = False
        self._published = False
        self._ranks_shown: Any = None
        self.header = widgets.HTML(header_html(RunState()))
        self.progress_bar = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="45%"))
        self.progress_text = widgets.HTML(progress_html(RunState()))
        self.ranks = widgets.HTML("", layout=widgets.Layout(display="none"))  # a distributed run's rank strip
        self.guard = widgets.HTML("", layout=widgets.Layout(display="none"))
        self.controls = ControlBar(send)
        self.plot = ScalarPlot(max_points=max_points)
        self.hooks = HookTable()
        self.checkpoints = CheckpointList(send)
        self.run_log = RunLog()
        self.overview = Overview(facts)
        self.system = SystemPanel()
        self.grid = ScalarGrid()
        progress_row = widgets.HBox([self.progress_bar, self.progress_text],
                                    layout=widgets.Layout(align_items="center", grid_gap="12px"))
        side = widgets.VBox([self.checkpoints, self.run_log], layout=widgets.Layout(width="46%", grid_gap="8px"))
        bottom = widgets.HBox([widgets.Box([self.hooks], layout=widgets.Layout(width="54%")), side],
                              layout=widgets.Layout(width="100%", grid_gap="16px"))
        super().__init__([self.header, progress_row, self.ranks, self.guard, self.controls, self.plot.figure, bottom,
                          self.overview, self.system, self.grid],
                         layout=widgets.Layout(width="100%", max_width="1400px", border="1px solid #e1e4e8",
                                               padding="8px 12px", grid_gap="6px"))

    @property
    def figure(self) -> Any:
        """The plotly ``FigureWidget``."""
        return self.plot.figure

    def refresh(self, state: RunState) -> None:
        """Redraw the parts of the widget that ``state`` changed (one thread at a time)."""
        if self.closed:
            return
        changes = state.take_changes()
        if changes & {"status", "info", "scalars"}:
            self.header.value = header_html(state)
            done, total = progress(state)
            self.progress_bar.max = max(total, 1)
            self.progress_bar.value = min(done, max(total, 1))
            self.progress_bar.bar_style = PROGRESS_STYLES.get(state.status, "")
            self.progress_text.value = progress_html(state)
            ranks = state.rank_health
            self.ranks.value = rank_strip_html(ranks)
            self.ranks.layout.display = "" if ranks else "none"
            self.guard.value = guard_html(state.guard_alert)
            self.guard.layout.display = "none" if state.guard_alert is None else ""
        if changes & {"scalars", "markers"}:
            self.plot.show(state)
        if changes & {"scalars", "info"}:
            self.overview.show(state)
        ranks = state.info.get("rank_health")  # a new list with each all-reduce: the rank rows redrawn
        if changes & {"scalars", "system"} or ranks is not self._ranks_shown:
            self._ranks_shown = ranks
            self.system.show(state)
        if "scalars" in changes:
            self.grid.show(state)
        if state.ended and not self._published:
            self._published = True
            self.plot.publish()
        if changes & {"hooks", "timings", "stage"}:
            self.hooks.show(state)
        live = self.connected and not state.ended
        self.checkpoints.show(state, enabled=live)
        self.run_log.add(state.take_logs())
        self.controls.show(state, connected=self.connected, changes=changes)
        self._route_inputs()

    def _route_inputs(self) -> None:
        """Hand each new button and text field to ``route`` (rows and buttons come and go)."""
        if self.route is None:
            return
        for widget in _descendants(self):
            if isinstance(widget, (widgets.Button, widgets.Text)) and widget.model_id not in self._routed:
                self._routed.add(widget.model_id)
                self.route(widget)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.on_close is not None:
            self.on_close()
        for child in _descendants(self):
            child.close()
        super().close()


def guard_html(alert: dict[str, Any] | None) -> str:
    """The health guard's banner: what tripped and the choices (the Guard buttons below), or nothing."""
    if alert is None:
        return ""
    message = html.escape(str(alert.get("message") or alert.get("kind") or "the run needs a look"))
    step = alert.get("step")
    where = f" (iter {step})" if isinstance(step, int) else ""
    fallback = alert.get("fallback")
    after = (f" Without an answer: <b>{html.escape(str(fallback))}</b>." if fallback else "")
    return ("<div style='background:#fff1f0;border:1px solid #c62828;border-radius:4px;padding:6px 10px'>"
            f"<b style='color:#c62828'>⚠ Health guard</b>: {message}{where}. The run is paused: choose "
            f"<i>Guard: continue</i>, <i>roll back</i> or <i>stop</i> below.{after}</div>")


def _descendants(widget: widgets.Widget) -> list[widgets.Widget]:
    out = []
    for child in getattr(widget, "children", ()):
        out += _descendants(child)
        out.append(child)
    return out
