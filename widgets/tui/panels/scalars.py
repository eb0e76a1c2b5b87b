"""Every scalar the run logs, as a grid of small plots (W&B's workspace): filter them, page through them,
open any one large.

Keys: the arrows move the highlight, PageUp/PageDown or ``[``/``]`` turn the page, ``/`` filters
(every word must appear in the key; Enter applies, Esc clears), Enter opens the highlighted plot
large and Enter or Esc closes it. The grid fits the panel: as many columns of about
``CELL_WIDTH`` and rows of about ``CELL_HEIGHT`` as there is room for.

The cells are ``ScalarPlot``s (``parts/plots.py``), the same charts as the main screen's. A cell
redraws only when its scalar got a point, it shows another scalar, or it changed size, and
nothing is drawn while the panel is hidden.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from cockpit.widgets.tui.panels.overview import best_point, number
from cockpit.widgets.tui.parts.plots import ScalarPlot
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Input, Static

from cockpit.viewstate import RunState

#: A cell's size the grid aims for (columns, rows), border included.
CELL_WIDTH, CELL_HEIGHT = 38, 9


def matches(key: str, query: str) -> bool:
    """Whether every word of ``query`` appears in ``key`` (case ignored); an empty query matches all."""
    key = key.lower()
    return all(word in key for word in query.lower().split())


def grid_shape(width: int, height: int) -> tuple[int, int]:
    """``(columns, rows)`` of cells that fit ``width`` x ``height`` (at least one of each)."""
    return max(1, width // CELL_WIDTH), max(1, height // CELL_HEIGHT)


class ScalarGrid(Vertical, can_focus=True):
    """A page of small plots of the scalars that match the filter; one highlighted, any one opened large.

    Args:
        lock: the lock that guards the ``RunState`` given to ``show`` (the app's). With it, paging
            and opening draw at once from the state last shown; without it, at the next ``show``.
    """

    BINDINGS = [
        Binding("left", "move(-1, 0)", "previous", show=False),
        Binding("right", "move(1, 0)", "next", show=False),
        Binding("up", "move(0, -1)", "up", show=False),
        Binding("down", "move(0, 1)", "down", show=False),
        # The header names these keys; the footer keeps its room for the run's commands.
        Binding("pageup,left_square_bracket", "page(-1)", "page back", show=False),
        Binding("pagedown,right_square_bracket", "page(1)", "page on", show=False),
        Binding("slash", "filter", "filter", key_display="/"),
        Binding("enter", "open", "open", show=False),
        Binding("escape", "back", "back", show=False),
    ]

    DEFAULT_CSS = """
    ScalarGrid {
        height: 1fr;
    }
    ScalarGrid > #scalars-header {
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    ScalarGrid #scalars-info {
        width: 1fr;
    }
    ScalarGrid #scalars-keys {
        width: auto;
        color: $text-muted;
    }
    ScalarGrid > #scalars-filter {
        height: 1;
        border: none;
        padding: 0 1;
        display: none;
    }
    ScalarGrid.-filtering > #scalars-filter {
        display: block;
    }
    ScalarGrid > #scalars-grid {
        height: 1fr;
        grid-gutter: 0;
    }
    ScalarGrid > #scalars-grid > ScalarPlot {
        height: 1fr;
        min-height: 5;
        border: round $primary 40%;
    }
    /* An outline, drawn over the border: an app's own ScalarPlot border (app.tcss) cannot hide it. */
    ScalarGrid > #scalars-grid > ScalarPlot.-highlight {
        outline: round $accent;
    }
    ScalarGrid:focus-within > #scalars-grid > ScalarPlot.-highlight {
        outline: heavy $accent;
    }
    ScalarGrid > #scalars-large {
        height: 1fr;
        outline: round $accent;
        display: none;
    }
    ScalarGrid.-opened > #scalars-grid {
        display: none;
    }
    ScalarGrid.-opened > #scalars-large {
        display: block;
    }
    """

    def __init__(self, lock: threading.Lock | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lock = lock
        self.keys: list[str] = []  # every scalar the run has, sorted
        self.query_text = ""  # the filter
        self.page = 0
        self.highlight = 0  # index into the matching keys
        self.opened: str | None = None  # the key shown large
        self._state: RunState | None = None
        self._drawn: dict[int, tuple] = {}  # id(plot) -> what it shows now
        self._info: Static | None = None  # the header's text, once composed

    def on_mount(self) -> None:
        self._info = self.query_one("#scalars-info", Static)

    @property
    def _drawable(self) -> bool:
        """Whether its parts exist and show: a frame can come before they are mounted, and while the
        app closes, after they are removed (children go before their parent)."""
        return self._info is not None and self._info.is_attached and self.is_on_screen

    def compose(self) -> ComposeResult:
        with Horizontal(id="scalars-header"):
            yield Static(id="scalars-info")
            yield Static(id="scalars-keys")
        yield Input(placeholder="filter: words that must appear in the key (Enter applies, Esc clears)",
                    id="scalars-filter")
        yield Grid(id="scalars-grid")
        yield ScalarPlot([], "", id="scalars-large")

    # --- what is shown ----------------------------------------------------------------------------
    @property
    def matching(self) -> list[str]:
        """The scalars that match the filter, in order."""
        return [key for key in self.keys if matches(key, self.query_text)]

    @property
    def shape(self) -> tuple[int, int]:
        """``(columns, rows)`` of the grid at the panel's size (the header line above it)."""
        return grid_shape(self.size.width, self.size.height - 1)

    @property
    def page_size(self) -> int:
        columns, rows = self.shape
        return columns * rows

    @property
    def pages(self) -> int:
        return max(1, math.ceil(len(self.matching) / self.page_size))

    @property
    def highlighted(self) -> str | None:
        """The key under the highlight (None when nothing matches)."""
        matching = self.matching
        return matching[self.highlight] if 0 <= self.highlight < len(matching) else None

    def page_keys(self) -> list[str]:
        start = self.page * self.page_size
        return self.matching[start:start + self.page_size]

    # --- drawing ----------------------------------------------------------------------------------
    def show(self, state: RunState) -> None:
        """Follow ``state``: new scalars join the grid; cells redraw where their scalar changed."""
        self._state = state
        self.keys = sorted(state.scalars)
        self._clamp()
        if self._drawable:
            self._draw(state)

    def on_resize(self, event: events.Resize) -> None:
        self._drawn.clear()
        self.call_after_refresh(self._relayout)

    def _relayout(self) -> None:
        """Fit the number of cells to the panel's size, keeping the highlighted scalar in sight."""
        if not self.is_attached:
            return  # removed (the app is closing) before the layout came round
        columns, rows = self.shape
        grid = self.query_one("#scalars-grid", Grid)
        grid.styles.grid_size_columns = columns
        cells = list(grid.query(ScalarPlot))
        wanted = columns * rows
        if len(cells) > wanted:
            for cell in cells[wanted:]:
                cell.remove()
        elif len(cells) < wanted:
            grid.mount_all([ScalarPlot([], "") for _ in range(wanted - len(cells))])
        self._clamp()
        self._redraw_now()

    def _clamp(self) -> None:
        """Keep the highlight on a matching key and the page on the highlight."""
        count = len(self.matching)
        self.highlight = max(0, min(self.highlight, count - 1))
        self.page = self.highlight // self.page_size if count else 0

    def _redraw_now(self) -> None:
        """Draw from the state last shown, now (under the app's lock), or leave it to the next ``show``."""
        if self._state is None or not self._drawable:
            return
        if self.lock is None:
            return
        with self.lock:
            self._draw(self._state)

    def _draw(self, state: RunState) -> None:
        self._header(state)
        if self.opened is not None:
            self._draw_plot(self.query_one("#scalars-large", ScalarPlot), self.opened, state)
            return
        keys = self.page_keys()
        columns, rows = self.shape
        if self.pages == 1:  # everything fits: the plots share the whole height
            rows = max(1, min(rows, math.ceil(len(keys) / columns)))
        self.query_one("#scalars-grid", Grid).styles.grid_size_rows = rows
        highlighted = self.highlighted
        for index, cell in enumerate(self.query_one("#scalars-grid", Grid).query(ScalarPlot)):
            key = keys[index] if index < len(keys) else None
            cell.set_class(key is not None and key == highlighted, "-highlight")
            self._draw_plot(cell, key, state)

    def _draw_plot(self, plot: ScalarPlot, key: str | None, state: RunState) -> None:
        series = state.scalars.get(key) if key else None
        shown = (key, len(series) if series else 0, series.steps[-1] if series and series.steps else None,
                 series.last if series else None, len(state.markers), plot.size)
        if self._drawn.get(id(plot)) == shown:
            return
        self._drawn[id(plot)] = shown
        plot.display = key is not None  # the last page's empty cells stay blank
        if key is not None:
            plot.keys = [key]
            plot.title = key
            plot.draw(state)

    def _header(self, state: RunState) -> None:
        """The count and page, the highlighted (or opened) scalar's last and best value; the keys at the right."""
        matching = self.matching
        text = Text(no_wrap=True, overflow="ellipsis")
        key = self.opened or self.highlighted
        if self.opened is None:
            text.append(f"{len(matching)} scalars" if not self.query_text else
                        f"{len(matching)} of {len(self.keys)} match ", style="bold")
            if self.query_text:
                text.append(f"“{self.query_text}”", style="bold yellow")
            text.append(f" · page {self.page + 1}/{self.pages} · ")
        series = state.scalars.get(key) if key else None
        if series is not None:
            text.append(key, style="bold")
            text.append(f" {number(series.last)}")
            best = best_point(key, series)
            if best is not None:
                text.append(f"  best {number(best[0])} @{best[1]}", style="green")
        self._info.update(text)
        keys = "⏎/esc back" if self.opened is not None else "⏎ open  [ ] page  / filter"
        self.query_one("#scalars-keys", Static).update(keys)

    # --- keys ---------------------------------------------------------------------------------------
    def action_move(self, columns: int, rows: int) -> None:
        if self.opened is not None or not self.matching:
            return
        width, _ = self.shape
        self.highlight = max(0, min(len(self.matching) - 1, self.highlight + columns + rows * width))
        self._clamp()
        self._redraw_now()

    def action_page(self, step: int) -> None:
        if self.opened is not None:
            return
        page = max(0, min(self.pages - 1, self.page + step))
        if page != self.page:
            self.highlight = page * self.page_size
            self._clamp()
            self._redraw_now()

    def action_open(self) -> None:
        self.opened = None if self.opened is not None else self.highlighted
        self.set_class(self.opened is not None, "-opened")
        self._drawn.pop(id(self.query_one("#scalars-large", ScalarPlot)), None)
        self._redraw_now()

    def action_back(self) -> None:
        if self.opened is not None:
            self.action_open()
        elif self.query_text or self.has_class("-filtering"):
            self._apply_filter("")

    def action_filter(self) -> None:
        self.add_class("-filtering")
        field = self.query_one("#scalars-filter", Input)
        field.value = self.query_text
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._apply_filter(event.value, keep_field=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._apply_filter(event.value)

    def _apply_filter(self, text: str, keep_field: bool = False) -> None:
        """Filter by ``text``: the highlight goes to the first match; the field closes unless ``keep_field``."""
        self.query_text = text.strip()
        self.highlight = 0
        self._clamp()
        if not keep_field:
            self.remove_class("-filtering")
            self.focus()
        self._redraw_now()

    def on_click(self, event: events.Click) -> None:
        """A click on a cell highlights it; a second click opens it."""
        cells = list(self.query_one("#scalars-grid", Grid).query(ScalarPlot))
        if event.widget not in cells or self.opened is not None:
            return
        index = self.page * self.page_size + cells.index(event.widget)
        if index >= len(self.matching):
            return
        if index == self.highlight:
            self.action_open()
        else:
            self.highlight = index
            self._redraw_now()
