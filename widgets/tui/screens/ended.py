"""The run ended: say how, and offer to leave the cockpit (or stay and look)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class EndedScreen(ModalScreen[bool]):
    """``message``, then Leave (True) or Stay (False)."""

    BINDINGS = [
        Binding("escape", "choose(False)", "stay"),
        Binding("enter,q,l", "choose(True)", "leave"),
    ]

    DEFAULT_CSS = """
    EndedScreen {
        align: center middle;
    }
    EndedScreen > Vertical {
        width: 70;
        max-width: 95%;
        height: auto;
        border: round $primary;
        background: $surface;
        padding: 1 2;
    }
    EndedScreen Label {
        width: 100%;
        margin-bottom: 1;
    }
    EndedScreen Horizontal {
        height: auto;
        align-horizontal: center;
    }
    EndedScreen Button {
        margin: 0 1;
    }
    """

    def __init__(self, message: str, failed: bool = False) -> None:
        super().__init__()
        self.message = message
        self.failed = failed

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.message, id="ended-message")
            with Horizontal():
                yield Button("Leave · enter", id="leave", variant="error" if self.failed else "primary")
                yield Button("Stay and look · esc", id="stay")

    def on_mount(self) -> None:
        self.query_one("#leave", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "leave")

    def action_choose(self, leave: bool) -> None:
        self.dismiss(leave)
