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
        self._shown: tuple = ()
        self._by_epoch: bool | None = None
        self._columns(by_epoch=True)

    def _columns(self, by_epoch: bool) -> None:
        """An epoch column only for a run that counts epochs: an iteration-based run is one long epoch."""
        if by_epoch == self._by_epoch:
            return
        self._by_epoch = by_epoch
        self.clear(columns=True)
        self.add_column("checkpoint", key="name")
        if by_epoch:
            self.add_column("epoch", key="epoch")
        self.add_column("iter", key="iter")
        self.add_column("metric", key="metric")
        self._shown = ()

    def show(self, state: RunState) -> None:
        info = state.info
        by_epoch = info["by_epoch"] if isinstance(info.get("by_epoch"), bool) else (info.get("max_epochs") or 0) > 1
        self._columns(by_epoch)
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
            cells = (name, str(row["epoch"]), str(row["iter"])) if by_epoch else (name, str(row["iter"]))
            self.add_row(*cells, Text(metric, justify="right"), key=row["path"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.post_message(self.Chosen(event.row_key.value))

    @property
    def selected_path(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
