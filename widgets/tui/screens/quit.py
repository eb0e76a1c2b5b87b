"""Leaving the cockpit: detach (the run goes on) or stop the run (it saves first)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class QuitScreen(ModalScreen[str | None]):
    """Returns ``'detach'``, ``'stop'`` or None (stay)."""

    BINDINGS = [
        Binding("escape", "choose('')", "stay"),
        Binding("d", "choose('detach')", "detach"),
        Binding("s", "choose('stop')", "stop"),
    ]

    DEFAULT_CSS = """
    QuitScreen {
        align: center middle;
    }
    QuitScreen > Vertical {
        width: 64;
        max-width: 95%;
        height: auto;
        border: round $warning;
        background: $surface;
        padding: 1 2;
    }
    QuitScreen Label {
        width: 100%;
        margin-bottom: 1;
    }
    QuitScreen Horizontal {
        height: auto;
        align-horizontal: center;
    }
    QuitScreen Button {
        margin: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Leave the cockpit?", id="question")
            yield Label("Detaching leaves the training running; attach again with `cockpit attach`.")
            with Horizontal():
                yield Button("Detach (the run goes on) · d", id="detach", variant="primary")
                yield Button("Stop the run (save first) · s", id="stop", variant="error")
            with Horizontal():
                yield Button("Stay · esc", id="stay")

    def on_mount(self) -> None:
        self.query_one("#detach", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "stay" else event.button.id)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)
