"""The hook execution order as a live table, in ``hooks_info``'s shape.

A row per stage (the one running now marked ``▶``), then its hooks in the order
they run, with priority, mean time per call and share of the training time.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.widgets import DataTable

from cockpit.viewstate import RunState


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
        self.add_column("stage / hook", key="name")
        self.add_column("priority", key="priority")
        self.add_column("ms/call", key="mean")
        self.add_column("share", key="share")
        self._shape: tuple = ()

    def show(self, state: RunState) -> None:
        rows = state.hook_rows()
        lines: list[tuple[str, tuple]] = []
        previous = None
        for row in rows:
            if row["stage"] != previous:
                previous = row["stage"]
                marker = "▶ " if row["running"] else "  "
                style = "bold reverse" if row["running"] else "bold"
                lines.append((f"stage:{row['stage']}", (Text(marker + row["stage"], style=style), "", "", "")))
            share = row["share"]
            slow = math.isfinite(share) and share >= 10
            lines.append((f"{row['stage']}/{row['hook']}", (
                Text("    " + row["hook"], style="bold" if row["running"] else ""),
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
            return
        for key, cells in lines:
            for column, cell in zip(("name", "priority", "mean", "share"), cells, strict=True):
                self.update_cell(key, column, cell)
