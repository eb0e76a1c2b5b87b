"""``ConfirmRow``: a small "Really? Yes / No" row, for a command that asks before it is sent."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import ipywidgets as widgets

from cockpit.viewstate import CommandInfo


class ConfirmRow(widgets.HBox):
    """Hidden until ``ask``: then the question, Yes and No; either answer hides it again.

    Args:
        send: ``send(name, *args)`` submits a command to the run.
    """

    def __init__(self, send: Callable[..., None]) -> None:
        self.send_command = send
        self.question = widgets.HTML("", layout=widgets.Layout(flex="1 1 240px"))
        self.yes = widgets.Button(description="Yes", button_style="warning", layout=widgets.Layout(width="64px"))
        self.no = widgets.Button(description="No", layout=widgets.Layout(width="64px"))
        self._on_yes: Callable[[], None] | None = None
        self.yes.on_click(lambda _: self._answer(True))
        self.no.on_click(lambda _: self._answer(False))
        super().__init__([self.question, self.yes, self.no],
                         layout=widgets.Layout(display="none", align_items="center", grid_gap="8px",
                                               flex_flow="row wrap"))

    @property
    def asking(self) -> bool:
        """Whether a question is shown."""
        return self.layout.display != "none"

    def request(self, command: CommandInfo, args: Sequence[str] = ()) -> None:
        """Send ``command`` with ``args``, asking first when the command wants that."""
        question = command.question(args)
        if question is None:
            self.send_command(command.name, *args)
        else:
            self.ask(question, lambda: self.send_command(command.name, *args))

    def ask(self, question: str, on_yes: Callable[[], None]) -> None:
        """Show ``question``; Yes calls ``on_yes``."""
        self.question.value = f"<span style='font-size:12px'>{html.escape(question)}</span>"
        self._on_yes = on_yes
        self.layout.display = "flex"

    def cancel(self) -> None:
        """Hide the question unanswered (the run ended meanwhile, say)."""
        self._on_yes = None
        self.layout.display = "none"

    def _answer(self, yes: bool) -> None:
        action = self._on_yes
        self.cancel()
        if yes and action is not None:
            action()
