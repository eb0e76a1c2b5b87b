"""The checkpoint picker: the run's checkpoints, for a command that takes one; enter picks."""

from __future__ import annotations

import threading

from cockpit.widgets.tui.parts.checkpoints import CheckpointTable
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from cockpit.viewstate import RunState


class CheckpointPicker(ModalScreen[str | None]):
    """Returns the chosen checkpoint's path, or None.

    Args:
        state: the run's state (read under ``lock``).
        lock: the lock the app's feed thread holds while it changes ``state``.
        question: what is asked (``Resume: which checkpoint?``).
    """

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    DEFAULT_CSS = """
    CheckpointPicker {
        align: center middle;
    }
    CheckpointPicker > Vertical {
        width: 90;
        max-width: 95%;
        height: 70%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, state: RunState, lock: threading.Lock, question: str = "Which checkpoint?") -> None:
        super().__init__()
        self.state = state
        self.lock = lock
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.question} (enter picks, esc cancels)")
            yield CheckpointTable(id="picker")

    def on_mount(self) -> None:
        table = self.query_one(CheckpointTable)
        with self.lock:
            table.show(self.state)
        table.focus()
        if not table.row_count:
            self.app.notify("no checkpoints yet: save one first", severity="warning")
            self.dismiss(None)

    def on_checkpoint_table_chosen(self, message: CheckpointTable.Chosen) -> None:
        message.stop()
        self.dismiss(message.path)

    def action_cancel(self) -> None:
        self.dismiss(None)
