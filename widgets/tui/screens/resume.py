"""The resume picker: the run's checkpoints; enter picks one."""

from __future__ import annotations

import threading

from cockpit.widgets.tui.parts.checkpoints import CheckpointTable
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from cockpit.viewstate import RunState


class ResumeScreen(ModalScreen[str | None]):
    """Returns the chosen checkpoint's path, or None."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    DEFAULT_CSS = """
    ResumeScreen {
        align: center middle;
    }
    ResumeScreen > Vertical {
        width: 90;
        max-width: 95%;
        height: 70%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, state: RunState, lock: threading.Lock) -> None:
        super().__init__()
        self.state = state
        self.lock = lock

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Resume from which checkpoint? (enter picks, esc cancels)")
            yield CheckpointTable(id="picker")

    def on_mount(self) -> None:
        table = self.query_one(CheckpointTable)
        with self.lock:
            table.show(self.state)
        table.focus()
        if not table.row_count:
            self.app.notify("no checkpoints yet: press s to save one", severity="warning")
            self.dismiss(None)

    def on_checkpoint_table_resume_requested(self, message: CheckpointTable.ResumeRequested) -> None:
        message.stop()
        self.dismiss(message.path)

    def action_cancel(self) -> None:
        self.dismiss(None)
