"""One-line input: a command's argument (the learning rate, or what a hook's command asks for)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class PromptScreen(ModalScreen[str | None]):
    """Asks for a line of text; returns it, or None on escape.

    The question and the hint are labels that wrap (an input's placeholder is cut at its width);
    the placeholder repeats the hint while the field is empty.
    """

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    DEFAULT_CSS = """
    PromptScreen {
        align: center middle;
    }
    PromptScreen > Vertical {
        width: 76;
        max-width: 95%;
        height: auto;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    PromptScreen Label {
        width: 100%;
    }
    PromptScreen #hint {
        color: $text-muted;
    }
    """

    def __init__(self, question: str, placeholder: str = "", value: str = "") -> None:
        super().__init__()
        self.question = question
        self.placeholder = placeholder
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, id="question")
            yield Input(value=self.value, placeholder=self.placeholder)
            if self.placeholder:
                yield Label(f"{self.placeholder} · enter sends, esc cancels", id="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
