"""Leaving the cockpit: detach (the run goes on) or stop the run (it saves first).

Its keys are not the main screen's: ``s`` saves there, so stopping here is ``x`` (a save key
pressed once too often must not end the run).
"""

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
        Binding("x", "choose('stop')", "stop"),
    ]

    DEFAULT_CSS = """
    QuitScreen {
        align: center middle;
    }
    QuitScreen > Vertical {
        width: 76;
        max-width: 95%;
        height: auto;
        border: round $warning;
        background: $surface;
        padding: 0 1;
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
        width: auto;
    }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Leave the cockpit?", id="question")
            yield Label("Detach: the training goes on; attach again with `cockpit attach`.\n"
                        "Stop: the run finishes this iteration and saves a checkpoint first.")
            with Horizontal():
                yield Button("Detach · d", id="detach", variant="primary")
                yield Button("Stop the run · x", id="stop", variant="error")
                yield Button("Stay · esc", id="stay")

    def on_mount(self) -> None:
        self.query_one("#detach", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "stay" else event.button.id)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)
