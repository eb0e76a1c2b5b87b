"""The run's log lines, scrollable, with warnings and errors coloured.

A line longer than the pane wraps (under its time stamp's indent) rather than being cut: a
train line ends with the loss, which a narrow terminal would otherwise never show.
"""

from __future__ import annotations

import time

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

    def add(self, records: list[tuple[float, str, str]]) -> None:
        for when, level, message in records:
            style = LEVEL_STYLES.get(level, "")
            stamp = time.strftime("%H:%M:%S", time.localtime(when))
            for index, line in enumerate(message.splitlines() or [""]):
                row = Table.grid()
                row.add_column(width=9, no_wrap=True)
                row.add_column(ratio=1, overflow="fold")
                row.add_row(Text(stamp if index == 0 else "", style="dim"), Text(line, style=style))
                self.write(row)
