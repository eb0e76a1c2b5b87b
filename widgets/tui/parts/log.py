"""The run's log lines, scrollable, with warnings and errors coloured.

A line longer than the pane wraps (under its time stamp's indent) rather than being cut: a
train line ends with the loss, which a narrow terminal would otherwise never show.

New lines do not lay the screen out again once the log fills its pane: a layout of the screen
repaints every scrolling pane (the hook table, its scroll bar) and was most of what a view
watching a live run spent (benchmarks/tui.py).
"""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import RichLog

LEVEL_STYLES = {"WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}


class LogPane(RichLog):
    """Appends log records as they arrive; keeps the last few thousand lines."""

    DEFAULT_CSS = """
    LogPane {
        height: 1fr;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=5000, wrap=True, min_width=20, highlight=False, markup=False, **kwargs)
        self._settled = False  # adding lines to a log that overflows its pane already

    def add(self, records: list[tuple[float, str, str]]) -> None:
        # Once the lines overflow the pane (its scroll bar shows), more lines change nothing a layout
        # decides (no scroll bar comes or goes, lines are never wider than the pane): the pane and
        # its scroll bar repaint, and it scrolls to the end, without a layout of the screen.
        self._settled = self.show_vertical_scrollbar
        try:
            for when, level, message in records:
                style = LEVEL_STYLES.get(level, "")
                stamp = time.strftime("%H:%M:%S", time.localtime(when))
                for index, line in enumerate(message.splitlines() or [""]):
                    row = Table.grid()
                    row.add_column(width=9, no_wrap=True)
                    row.add_column(ratio=1, overflow="fold")
                    row.add_row(Text(stamp if index == 0 else "", style="dim"), Text(line, style=style))
                    self.write(row)
            if self._settled:
                self._scroll_update(self.virtual_size)  # the scroll bar's new length
        finally:
            self._settled = False

    def refresh(self, *regions: Any, repaint: bool = True, layout: bool = False, recompose: bool = False) -> Any:
        """A repaint; a layout only while the log does not yet overflow its pane (see ``add``)."""
        return super().refresh(*regions, repaint=repaint, layout=layout and not self._settled, recompose=recompose)
