"""The hook execution order as a live table, in ``hooks_info``'s shape.

A row per hook, in the order they run, grouped by stage: the stage is named on its first hook's
row (the one running now marked ``▶``), so the default hooks fit a 45-line terminal without
scrolling. Each row has the hook's priority, mean time per call and share of the training time.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.widgets import DataTable

from cockpit.viewstate import RunState

#: The table's column keys, in order.
COLUMNS = ("stage", "name", "priority", "mean", "share")


def _ms(value: float) -> str:
    if not math.isfinite(value):
        return ""
    return f"{value:.3f}" if value < 1 else f"{value:.1f}"


class HookTable(DataTable):
    """Per stage, the hooks in execution order; the running stage is marked and slow hooks stand out."""

    DEFAULT_CSS = """
    HookTable {
        height: 1fr;
    }
    """

    def on_mount(self) -> None:
        self.cursor_type = "none"
        for column, title in zip(COLUMNS, ("stage", "hook", "priority", "ms/call", "share"), strict=True):
            self.add_column(title, key=column)
        self._shape: tuple = ()
        self._cells: dict[str, tuple] = {}

    def show(self, state: RunState) -> None:
        lines: list[tuple[str, tuple]] = []
        previous = None
        for row in state.hook_rows():
            stage = Text()
            if row["stage"] != previous:
                previous = row["stage"]
                stage = Text(("▶ " if row["running"] else "  ") + row["stage"],
                             style="bold reverse" if row["running"] else "bold")
            share = row["share"]
            slow = math.isfinite(share) and share >= 10
            lines.append((f"{row['stage']}/{row['hook']}", (
                stage,
                Text(row["hook"], style="bold" if row["running"] else ""),
                Text(row["priority"], style="dim"),
                Text(_ms(row["mean_ms"]), justify="right"),
                Text(f"{share:.1f}%" if math.isfinite(share) else "", justify="right",
                     style="bold red" if slow else ""),
            )))
        shape = tuple(key for key, _ in lines)
        if shape != self._shape:
            self.clear()
            for key, cells in lines:
                self.add_row(*cells, key=key)
            self._shape = shape
            self._cells = dict(lines)
            return
        # Only the cells that changed: a live run changes a few timings a frame, not the table.
        for key, cells in lines:
            before = self._cells.get(key, ())
            for index, (column, cell) in enumerate(zip(COLUMNS, cells, strict=True)):
                if index >= len(before) or cell != before[index]:
                    self.update_cell(key, column, cell)
            self._cells[key] = cells
