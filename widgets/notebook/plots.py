"""``ScalarPlot``: the run's scalars in one plotly ``FigureWidget``.

Top panel: each training loss raw (thin, pale) and smoothed, validation losses
as markers, the learning rate on its own right-hand axis (``y2``). Bottom
panel, once a run has validated: the other validation metrics as markers.
Markers on the timeline (a live resume, a learning-rate change) are dotted
vertical lines; the branches a live resume abandoned are dotted grey lines.

Every series is downsampled before it is sent (min/max per bucket, so spikes
survive). Updates are sent inside ``batch_update()`` as one
message; the figure's synced state is then brought up to date without sending
it again, so a browser tab opened later draws the current figure.
"""

from __future__ import annotations

import copy
from typing import Any

import plotly.graph_objects as go

from cockpit.series import RunningSmooth, downsample
from cockpit.viewstate import RunState

LOSS_COLORS = ("#1f77b4", "#9467bd", "#8c564b", "#17becf")
METRIC_COLORS = ("#2ca02c", "#d62728", "#e377c2", "#bcbd22", "#7f7f7f")
LR_COLOR = "#ff7f0e"
#: Abandoned branches (what a run did before a live resume took it back) are drawn in grey.
BRANCH_COLOR = "#8c959f"
TIMING_KEYS = ("time", "data_time")

_TOP_ONLY = {"yaxis": {"domain": [0.0, 1.0]}, "xaxis": {"showticklabels": True, "title": {"text": "iteration"}},
             "xaxis2": {"visible": False}, "yaxis3": {"visible": False}}
_TWO_PANELS = {"yaxis": {"domain": [0.34, 1.0]}, "xaxis": {"showticklabels": False, "title": {"text": ""}},
               "xaxis2": {"visible": True}, "yaxis3": {"visible": True, "domain": [0.0, 0.25]}}


def loss_keys(keys: list[str]) -> list[str]:
    return sorted(k for k in keys if k.startswith("train/") and "loss" in k.split("/", 1)[1])


def lr_keys(keys: list[str]) -> list[str]:
    return sorted(k for k in keys if k.startswith("train/") and k.rsplit("/", 1)[1].endswith("lr"))


def metric_keys(keys: list[str]) -> list[str]:
    """Validation and test metrics (not their iteration timings)."""
    return sorted(k for k in keys if k.split("/", 1)[0] in ("val", "test") and k.split("/", 1)[1] not in TIMING_KEYS)


class ScalarPlot:
    """The figure and how the run's scalars map onto it.

    Args:
        max_points: the most points sent for one series.
        height: the figure's height in pixels.
    """

    def __init__(self, max_points: int = 1200, height: int = 420) -> None:
        self.max_points = max_points
        self.figure = go.FigureWidget(layout=_base_layout(height))
        self._indexes: dict[str, int] = {}
        self._two_panels = False
        self._markers_shown: list[dict[str, Any]] = []
        self._smoothers: dict[str, RunningSmooth] = {}

    def trace(self, name: str) -> Any:
        """The trace called ``name`` (``train/loss``, ``train/loss (smoothed)``, ``train/lr``...), or None."""
        index = self._indexes.get(name)
        data = self.figure.data  # the update thread may have named a trace it has not added yet
        return data[index] if index is not None and index < len(data) else None

    def show(self, state: RunState) -> None:
        """Redraw from ``state`` (call from one thread at a time)."""
        series = self._series(state)
        figure = self.figure
        with figure.batch_update():
            for name, (style, xs, ys) in series.items():
                if name not in self._indexes:
                    self._indexes[name] = len(figure.data)
                    figure.add_scatter(name=name, **style)
                trace = figure.data[self._indexes[name]]
                trace.x, trace.y = xs, ys
            wants_two = any(k in state.scalars for k in metric_keys(list(state.scalars)) if "loss" not in k)
            if wants_two != self._two_panels:
                self._two_panels = wants_two
                figure.layout.update(_TWO_PANELS if wants_two else _TOP_ONLY)
            if state.markers != self._markers_shown:
                self._markers_shown = [dict(m) for m in state.markers]
                figure.layout.shapes = [_marker_line(m) for m in state.markers]
        self._remember_state()

    def _series(self, state: RunState) -> dict[str, tuple[dict[str, Any], list, list]]:
        """Each trace's creation style and its downsampled points, by trace name."""
        out: dict[str, tuple[dict[str, Any], list, list]] = {}
        keys = list(state.scalars)
        for number, key in enumerate(loss_keys(keys)):
            series = state.scalars[key]
            color = LOSS_COLORS[number % len(LOSS_COLORS)]
            raw = {"mode": "lines", "line": {"color": color, "width": 1}, "opacity": 0.35,
                   "legendrank": 100 + 2 * number,
                   "hovertemplate": "iter %{x}<br>%{y:.4g}<extra>" + key + "</extra>"}
            out[key] = (raw, *downsample(series.steps, series.mins, series.maxs, self.max_points))
            smoothed = {"mode": "lines", "line": {"color": color, "width": 2},
                        "legendrank": 101 + 2 * number,
                        "hovertemplate": "iter %{x}<br>%{y:.4g}<extra>smoothed</extra>"}
            smoother = self._smoothers.setdefault(key, RunningSmooth())  # only the new points, each redraw
            out[f"{key} (smoothed)"] = (smoothed, *downsample(series.steps, smoother(series.values, 0.9),
                                                             max_points=self.max_points))
        for key in lr_keys(keys):
            series = state.scalars[key]
            style = {"mode": "lines", "yaxis": "y2", "line": {"color": LR_COLOR, "width": 1.5, "dash": "dot"},
                     "legendrank": 300,
                     "hovertemplate": "iter %{x}<br>%{y:.3g}<extra>" + key + "</extra>"}
            out[key] = (style, *downsample(series.steps, series.values, max_points=self.max_points))
        for number, key in enumerate(metric_keys(keys)):
            series = state.scalars[key]
            on_loss_axis = "loss" in key
            color = METRIC_COLORS[number % len(METRIC_COLORS)]
            style = {"mode": "lines+markers", "line": {"width": 1, "dash": "dot", "color": color}, "legendrank": 200 + number,
                     "marker": {"size": 7, "color": color, "symbol": "diamond" if on_loss_axis else "circle"},
                     "hovertemplate": "iter %{x}<br>%{y:.4g}<extra>" + key + "</extra>"}
            if not on_loss_axis:
                style.update(xaxis="x2", yaxis="y3")
            out[key] = (style, *downsample(series.steps, series.values, max_points=self.max_points))
        out.update(self._branches(state, loss_keys(keys), metric_keys(keys)))
        return out

    def _branches(self, state: RunState, losses: list[str], metrics: list[str]) -> dict[str, tuple[dict[str, Any], list, list]]:
        """The abandoned branches' losses and metrics (``info['branches']``, left by live resumes), dimmed."""
        out: dict[str, tuple[dict[str, Any], list, list]] = {}
        for branch in state.info.get("branches") or ():
            at = branch.get("at")
            for key, data in (branch.get("scalars") or {}).items():
                if key not in losses and key not in metrics:
                    continue
                style = {"mode": "lines", "line": {"color": BRANCH_COLOR, "width": 1, "dash": "dot"},
                         "opacity": 0.6, "showlegend": False,
                         "hovertemplate": f"iter %{{x}}<br>%{{y:.4g}}<extra>{key}, abandoned at iter {at}</extra>"}
                if key in metrics and "loss" not in key:
                    style.update(xaxis="x2", yaxis="y3")
                out[f"{key} (branch at {at})"] = (style, *downsample(data.get("steps", []), data.get("values", []),
                                                                     max_points=self.max_points))
        return out

    def publish(self) -> None:
        """Send the whole figure as the widget's synced state (once, at the end of a run).

        Open views ignore it (they drew it already); it is what a saved notebook's widget
        state holds, so the notebook file shows the run's final plot.
        """
        self._remember_state()
        self.figure.send_state(["_widget_data", "_widget_layout"])

    def _remember_state(self) -> None:
        # batch_update sent the changes as a message that open views apply, but the synced
        # traits still hold the figure as it was built. Store the current figure in them
        # without sending it (the views have it already): a browser tab opened later asks the
        # kernel for the widget's state and then draws the current figure.
        figure = self.figure
        figure._trait_values["_widget_data"] = copy.deepcopy(figure._data)
        figure._trait_values["_widget_layout"] = copy.deepcopy(figure._layout_obj._props)


def _marker_line(marker: dict[str, Any]) -> dict[str, Any]:
    color = {"resume": "#7f7f7f", "lr": LR_COLOR}.get(marker.get("kind", ""), "#7f7f7f")
    return {"type": "line", "xref": "x", "yref": "paper", "x0": marker["step"], "x1": marker["step"],
            "y0": 0, "y1": 1, "line": {"color": color, "width": 1, "dash": "dot"}}


def _base_layout(height: int) -> dict[str, Any]:
    axis = {"gridcolor": "#eeeeee", "zeroline": False, "linecolor": "#cccccc", "showline": True}
    return {
        "template": "none",  # the colors and grid below are the whole style
        "height": height,
        "autosize": True,
        "margin": {"l": 64, "r": 72, "t": 8, "b": 44},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"size": 12},
        "hovermode": "x unified",
        "uirevision": "cockpit",  # keep the user's zoom across updates
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom", "font": {"size": 11}},
        "xaxis": {**axis, "anchor": "y", "showticklabels": True, "title": {"text": "iteration"}},
        "yaxis": {**axis, "domain": [0.0, 1.0], "title": {"text": "loss"}},
        "yaxis2": {**axis, "overlaying": "y", "side": "right", "showgrid": False, "title": {"text": "learning rate"},
                   "tickformat": ".1e", "rangemode": "tozero"},
        "xaxis2": {**axis, "anchor": "y3", "matches": "x", "visible": False, "title": {"text": "iteration"}},
        "yaxis3": {**axis, "domain": [0.0, 0.25], "visible": False, "title": {"text": "validation"}},
    }
