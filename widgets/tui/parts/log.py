"""The run's log lines, scrollable, with warnings and errors coloured."""

from __future__ import annotations

import time

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
        super().__init__(max_lines=5000, wrap=False, highlight=False, markup=False, **kwargs)

    def add(self, records: list[tuple[float, str, str]]) -> None:
        for when, level, message in records:
            style = LEVEL_STYLES.get(level, "")
            stamp = time.strftime("%H:%M:%S", time.localtime(when))
            for index, line in enumerate(message.splitlines() or [""]):
                text = Text(f"{stamp} " if index == 0 else "         ", style="dim")
                text.append(line, style=style)
                self.write(text)
