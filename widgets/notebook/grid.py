"""``ScalarGrid``: every scalar the run logs as a grid of small plots, filtered by name.

The main plot shows the losses, the learning rate and the validation metrics; this folding
section shows everything (timings, each loss term, custom scalars), three plots to a row, a page
of ``page_size`` at a time (◀ ▶ turn the page). Typing in the filter keeps the scalars whose name
contains the text and goes back to the first page. Closed, it draws nothing; a change of the
shown keys builds a new figure, a new point only updates the traces.
"""

from __future__ import annotations

import threading

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cockpit.series import downsample
from cockpit.viewstate import RunState

COLUMNS = 3
ROW_HEIGHT = 170
COLOR = "#1f77b4"


class ScalarGrid(widgets.Accordion):
    """A folding "All scalars" section: a filter field and a grid of small plots.

    Args:
        max_points: the most points sent per small plot.
        page_size: the most small plots shown at once (a run with a hundred scalars would otherwise
            make a figure of thousands of pixels, redrawn with every point).
    """

    def __init__(self, max_points: int = 300, page_size: int = 12) -> None:
        self.max_points = max_points
        self.page_size = page_size
        self.page = 0
        self.previous = widgets.Button(description="◀", tooltip="previous page", layout=widgets.Layout(width="36px"))
        self.next = widgets.Button(description="▶", tooltip="next page", layout=widgets.Layout(width="36px"))
        self.previous.on_click(lambda _: self.turn(-1))
        self.next.on_click(lambda _: self.turn(1))
        self.filter = widgets.Text(placeholder="filter: a part of a scalar's name (val/, loss, time...)",
                                   layout=widgets.Layout(width="360px"))
        self.count = widgets.HTML("")
        self.figure = go.FigureWidget()
        self.body = widgets.VBox([widgets.HBox([self.filter, self.previous, self.next, self.count],
                                               layout=widgets.Layout(grid_gap="12px", align_items="center")),
                                  self.figure])
        self._keys: tuple[str, ...] = ()
        self._state: RunState | None = None
        self._lock = threading.Lock()  # the update thread redraws; a typed filter redraws too
        super().__init__([self.body], titles=("All scalars",), selected_index=None,
                         layout=widgets.Layout(width="100%"))
        self.filter.observe(lambda _: self.turn(-self.page), "value")  # a new filter: its first page
        self.observe(lambda _: self._redraw(), "selected_index")

    def shown_keys(self, state: RunState) -> tuple[str, ...]:
        """The scalars that match the filter, in name order."""
        text = self.filter.value.strip().lower()
        return tuple(key for key in sorted(state.scalars) if text in key.lower() and len(state.scalars[key]))

    def pages(self, count: int) -> int:
        return max(1, -(-count // self.page_size))

    def turn(self, step: int) -> None:
        """Go ``step`` pages on (back when negative), within the pages there are; redraw."""
        count = len(self.shown_keys(self._state)) if self._state is not None else 0
        self.page = max(0, min(self.pages(count) - 1, self.page + step))
        self._redraw()

    def show(self, state: RunState) -> None:
        """Redraw from ``state`` when the section is open."""
        self._state = state
        self._redraw()

    def _redraw(self) -> None:
        state = self._state
        if state is None or self.selected_index is None:
            return
        with self._lock:
            matching = self.shown_keys(state)
            pages = self.pages(len(matching))
            self.page = min(self.page, pages - 1)
            keys = matching[self.page * self.page_size:(self.page + 1) * self.page_size]
            if keys != self._keys:
                self._build(keys)
            with self.figure.batch_update():
                for trace, key in zip(self.figure.data, keys, strict=True):
                    series = state.scalars[key]
                    trace.x, trace.y = downsample(series.steps, series.values, max_points=self.max_points)
            page = f" · page {self.page + 1} of {pages}" if pages > 1 else ""
            self.count.value = (f"<span style='font-size:12px;color:#777'>{len(matching)} of "
                                f"{len(state.scalars)} scalars{page}</span>")
            self.previous.disabled, self.next.disabled = self.page == 0, self.page >= pages - 1
            self.previous.layout.display = self.next.layout.display = None if pages > 1 else "none"

    def _build(self, keys: tuple[str, ...]) -> None:
        """A new figure with one small plot per key (a figure's subplot grid cannot be changed in place)."""
        self._keys = keys
        rows = max(1, -(-len(keys) // COLUMNS))
        layout = make_subplots(rows=rows, cols=COLUMNS, subplot_titles=keys or ("no scalar matches",),
                               vertical_spacing=min(0.3 / rows, 0.12), horizontal_spacing=0.06)
        for number, key in enumerate(keys):
            layout.add_scatter(name=key, mode="lines", line={"color": COLOR, "width": 1.5}, showlegend=False,
                               hovertemplate="iter %{x}<br>%{y:.4g}<extra>" + key + "</extra>",
                               row=number // COLUMNS + 1, col=number % COLUMNS + 1)
        layout.update_layout(height=ROW_HEIGHT * rows + 40, margin={"l": 40, "r": 10, "t": 30, "b": 20},
                             template="plotly_white", font={"size": 10})
        layout.update_annotations(font={"size": 11})
        old, self.figure = self.figure, go.FigureWidget(layout)
        self.body.children = [self.body.children[0], self.figure]
        old.close()
