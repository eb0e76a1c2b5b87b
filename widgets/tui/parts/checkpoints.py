"""The checkpoints a run saved and still has: which is the best and which the latest; pick one (enter)."""

from __future__ import annotations

import math

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from cockpit.viewstate import RunState


class CheckpointTable(DataTable):
    """Saved checkpoints, newest first. Enter on a row chooses it (the app offers it to a command)."""

    DEFAULT_CSS = """
    CheckpointTable {
        height: 1fr;
    }
    """

    class Chosen(Message):
        """The user picked a checkpoint."""

        def __init__(self, path: str) -> None:
            self.path = path
            super().__init__()

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_column("checkpoint", key="name")
        self.add_column("epoch", key="epoch")
        self.add_column("iter", key="iter")
        self.add_column("metric", key="metric")
        self._shown: tuple = ()

    def show(self, state: RunState) -> None:
        # The run reports each checkpoint it deletes (rotation, a new best): every row can be used.
        rows = state.checkpoint_rows()
        shown = tuple((r["path"], r["best"], r["latest"], r["metric"]) for r in rows)
        if shown == self._shown:
            return
        self._shown = shown
        self.clear()
        for row in rows:
            name = Text()
            name.append("★ " if row["best"] else "● " if row["latest"] else "  ",
                        style="bold yellow" if row["best"] else "bold green")
            name.append(row["name"])
            metric = f"{row['metric']:.4f}" if math.isfinite(row["metric"]) else ""
            self.add_row(name, str(row["epoch"]), str(row["iter"]), Text(metric, justify="right"), key=row["path"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.post_message(self.Chosen(event.row_key.value))

    @property
    def selected_path(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
