"""``cockpit ls -i``: every run under a folder, live and finished, refreshed as they go.

The first frame comes from the runs' ``run.json`` files alone; a worker thread then reads each
run's scalar file for its best metric (only the lines added since the last read) and the
table is redrawn every second. Enter attaches to a live run with the same cockpit as
``cockpit attach`` (in a process of its own while this app is suspended; leaving it comes back
here). Space selects runs and ``c`` overlays their scalars: the selection, or with none (or
one), the run under the cursor with its parent if it is a fork, or with its forks.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from cockpit.widgets.tui.dashboard.model import COLUMNS, RunRow, RunsModel, fit_names
from textual import work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from cockpit.views import not_live_message


def attach_in_terminal(folder: Path) -> int:
    """``cockpit attach FOLDER`` in this terminal, until the person leaves it."""
    return subprocess.run([sys.executable, "-P", "-m", "cockpit.cli", "attach", str(folder)], check=False).returncode


class DashboardApp(App[None]):
    """The runs under ``root``: status, progress, best metric, last checkpoint, lineage.

    Args:
        root: the folder of runs.
        refresh_seconds: how often the table is read again.
        attach: runs the cockpit on a live run folder (a test passes its own).
    """

    TITLE = "cockpit · runs"
    BINDINGS = [
        Binding("enter", "attach", "attach"),
        Binding("space", "select", "select"),
        Binding("c", "compare", "compare"),
        Binding("r", "reload", "refresh"),
        Binding("q", "quit", "quit"),
    ]
    DEFAULT_CSS = """
    DashboardApp #dashboard-heading {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    DashboardApp DataTable {
        height: 1fr;
    }
    """

    def __init__(self, root: Path, refresh_seconds: float = 1.0,
                 attach: Callable[[Path], object] = attach_in_terminal) -> None:
        super().__init__()
        self.model = RunsModel(Path(root).resolve())
        self.refresh_seconds = refresh_seconds
        self.attach = attach
        self.selected: set[Path] = set()
        self.shown: dict[str, tuple[str, ...]] = {}  # the cells in the table, by row key
        self.column_keys: list = []

    def compose(self) -> ComposeResult:
        yield Static(id="dashboard-heading")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="runs")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        self.column_keys = [table.add_column(column, key=column or "mark") for column in COLUMNS]
        self.model.scan()
        self.show_rows()
        # The best metrics need the scalar files: read after the first frame, then on each refresh.
        self.call_after_refresh(self.read_files)
        self.set_interval(self.refresh_seconds, self.read_files)

    # --- data ------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="read")
    def read_files(self) -> None:
        """Read run.json, lineage and the new lines of the scalar files, off the UI thread."""
        self.model.scan()
        self.model.read_metrics()
        self.call_from_thread(self.show_rows)

    def show_rows(self) -> None:
        """Bring the table up to the model: only changed cells are written (the rest keep their render)."""
        table = self.query_one(DataTable)
        rows = list(self.model.rows)
        raw = [row.cells(row.folder in self.selected, self.model.root) for row in rows]
        # Long run names are cut in the middle so the checkpoint and parent columns stay in sight.
        cells = {str(row.folder): values for row, values in zip(rows, fit_names(raw, self.size.width), strict=True)}
        if list(cells) != list(self.shown):
            current = self.current_row()
            table.clear()
            for key, values in cells.items():
                table.add_row(*values, key=key)
            if current is not None and str(current.folder) in cells:
                table.move_cursor(row=table.get_row_index(str(current.folder)), animate=False)
        else:
            for key, values in cells.items():
                for column, value, before in zip(self.column_keys, values, self.shown[key], strict=True):
                    if value != before:
                        table.update_cell(key, column, value, update_width=True)
        self.shown = cells
        live = sum(row.record.live for row in rows)
        heading = f"{self.model.root} · {len(rows)} runs, {live} live"
        if self.selected:
            heading += f" · {len(self.selected)} selected"
        self.query_one("#dashboard-heading", Static).update(
            heading if rows else f"no runs under {self.model.root}; start one with: cockpit run CONFIG")

    def on_resize(self) -> None:
        self.show_rows()  # the names get the room the new width leaves

    def current_row(self) -> RunRow | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.model.row(Path(key)) if key is not None else None

    # --- actions ---------------------------------------------------------------------------------
    def action_select(self) -> None:
        row = self.current_row()
        if row is None:
            return
        self.selected ^= {row.folder}
        self.show_rows()

    def action_compare(self) -> None:
        # Imported here: the plots (plotext, numpy) are not needed for the first frame.
        from cockpit.widgets.tui.dashboard.overlay import OverlayScreen

        row = self.current_row()
        if row is None:
            return
        chosen = sorted(self.selected) if len(self.selected) > 1 else \
            self.model.family(next(iter(self.selected)) if self.selected else row.folder)
        labels = [(self.model.row(folder) or RunRow(row.record)).label for folder in chosen]
        self.push_screen(OverlayScreen(chosen, labels, self.model.scalars, self.refresh_seconds))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row (the table takes the key first)."""
        event.stop()
        self.action_attach()

    def action_attach(self) -> None:
        row = self.current_row()
        if row is None:
            return
        if not row.record.live:
            self.notify(not_live_message(row.record), title="not live", severity="warning", timeout=10)
            return
        try:
            with self.suspend():
                self.attach(row.folder)
        except SuspendNotSupported:  # no terminal to hand over (a headless test, a browser): attach as is
            self.attach(row.folder)
        self.read_files()

    def action_reload(self) -> None:
        self.read_files()
