"""``RunLog``: the run's log lines in an ``Output`` widget, written from the update thread.

Lines go in through ``append_stdout`` (never ``with output:``, which captures
whatever the kernel's main thread prints at the time). Each append re-sends the
widget's whole output list, so lines are appended in batches, and the oldest
are dropped past ``max_lines``.
"""

from __future__ import annotations

import time

import ipywidgets as widgets


def format_record(when: float, level: str, message: str) -> str:
    """``02:04:11 WARNING message`` (INFO is the usual case and goes unsaid)."""
    clock = time.strftime("%H:%M:%S", time.localtime(when))
    return f"{clock} {level} {message}" if level not in ("INFO", "") else f"{clock} {message}"


class RunLog(widgets.VBox):
    """The log pane.

    Args:
        height: the pane's height.
        max_lines: how many of the newest lines are kept.
    """

    def __init__(self, height: str = "170px", max_lines: int = 500) -> None:
        self.max_lines = max_lines
        self.title = widgets.HTML("<b>Log</b>")
        self.output = widgets.Output(layout=widgets.Layout(flex="0 0 auto"))
        # A reversed column keeps the pane scrolled to its newest line as lines arrive.
        self.scroller = widgets.Box([self.output], layout=widgets.Layout(
            height=height, overflow="auto", display="flex", flex_flow="column-reverse",
            border="1px solid #e5e5e5", padding="2px 6px"))
        self._lines: list[str] = []
        super().__init__([self.title, self.scroller], layout=widgets.Layout(width="100%"))

    @property
    def text(self) -> str:
        """Everything shown, as one string."""
        return "".join(o.get("text", "") for o in self.output.outputs)

    def add(self, records: list[tuple[float, str, str]]) -> None:
        """Append log records ``(time, level, message)``."""
        if not records:
            return
        lines = [format_record(*record) + "\n" for record in records]
        self._lines += lines
        if len(self._lines) > self.max_lines or len(self.output.outputs) >= 50:
            # Start over with one block of the newest lines, so the list stays short.
            self._lines = self._lines[-self.max_lines:]
            self.output.outputs = ({"output_type": "stream", "name": "stdout", "text": "".join(self._lines)},)
        else:
            self.output.append_stdout("".join(lines))
