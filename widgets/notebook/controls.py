"""``ControlBar``: the run's commands as buttons, and what became of each command.

The bar is generated from the command list the run publishes: a button for
each command that needs no argument, a text field and a button for one that
takes text, a "Really? Yes / No" row for one that asks first. Commands that
take a checkpoint are offered on the checkpoint list instead. A command shows
only in the state it is offered in (Pause while running, Continue while
paused), and every button is off once the run has ended. The buttons only send
commands (through the ``send`` callback); they change nothing themselves.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from cockpit.widgets.notebook.confirm import ConfirmRow

from cockpit import commands
from cockpit.viewstate import CommandInfo, RunState

OUTCOME_COLORS = {"applied": "#1a7f37", "rejected": "#b35900", "failed": "#c62828"}


WARNING_COLOR = "#b35900"
#: How many of the newest log records are searched for a command's warnings.
WARNING_LOOKBACK = 200


def command_warnings(entry: dict[str, Any], logs: Iterable[tuple[float, str, str]]) -> list[str]:
    """The warnings an applied resume logged about its checkpoint (no optimizer state, say).

    The run applies a resume whose checkpoint lacks a part and logs why; the outcome itself
    only says "applied". The checkpoint is named in the outcome's message (``resumed from
    NAME: ...``) or its argument, and its warnings name it too.
    """
    if entry.get("name") != commands.RESUME or entry.get("outcome") != "applied":
        return []
    found = re.match(r"resumed from (\S+?):", entry.get("message", ""))
    args = entry.get("args") or ("",)
    name = found.group(1) if found else Path(str(args[0])).name
    if not name:
        return []
    recent = list(logs)[-WARNING_LOOKBACK:]
    return [message for _when, level, message in recent if level == "WARNING" and name in message]


def outcome_html(entry: dict[str, Any] | None, warnings: Sequence[str] = ()) -> str:
    """One line saying what became of a command: ``save ✓ applied: saved .../epoch_1.pth``.

    With ``warnings`` (an applied command that lost something on the way), the line says
    "⚠ applied with a warning" and names them.
    """
    if not entry:
        return ""
    outcome = entry.get("outcome") or "sent"
    color = OUTCOME_COLORS.get(outcome, "#666")
    mark = {"applied": "✓", "rejected": "✗", "failed": "✗"}.get(outcome, "…")
    if warnings:
        color, mark, outcome = WARNING_COLOR, "⚠", f"{outcome} with {'a warning' if len(warnings) == 1 else 'warnings'}"
    command = " ".join([entry.get("name", ""), *entry.get("args", ())])
    message = "; ".join([entry.get("message", ""), *warnings]).strip("; ")
    return (f"<span style='font-size:12px;color:{color}'><b>{html.escape(command)}</b> {mark} {outcome}"
            f"{': ' + html.escape(message) if message else ''}</span>")


class ControlBar(widgets.VBox):
    """The run's commands, a confirmation row, and the last command's outcome.

    Args:
        send: ``send(name, *args)`` submits a command to the run.
    """

    def __init__(self, send: Callable[..., None]) -> None:
        self.send_command = send
        self.button_row = widgets.HBox([], layout=widgets.Layout(flex="1 1 auto", flex_flow="row wrap"))
        self.field_row = widgets.HBox([], layout=widgets.Layout(flex="0 0 auto", align_items="center",
                                                                grid_gap="4px"))
        self.confirm = ConfirmRow(send)
        self.outcome = widgets.HTML("", layout=widgets.Layout(min_height="20px", flex="1 1 auto"))
        self.hint = widgets.HTML("", layout=widgets.Layout(flex="0 0 auto"))
        self.note = widgets.HTML("", layout=widgets.Layout(display="none"))
        self._commands: tuple[CommandInfo, ...] | None = None
        self._buttons: dict[str, widgets.Button] = {}
        self._fields: dict[str, tuple[widgets.Text, ...]] = {}
        row = widgets.HBox([self.button_row, self.field_row],
                           layout=widgets.Layout(width="100%", justify_content="space-between", align_items="center"))
        outcome_row = widgets.HBox([self.outcome, self.hint], layout=widgets.Layout(
            width="100%", justify_content="space-between", align_items="center"))
        super().__init__([row, self.confirm, outcome_row, self.note], layout=widgets.Layout(width="100%"))
        self.show(RunState(), connected=False)

    # --- what it holds ------------------------------------------------------------------------
    def button(self, name: str) -> widgets.Button:
        """The button that sends command ``name``.

        Raises:
            KeyError: the run offers no such command, or it takes a checkpoint (see the checkpoint list).
        """
        return self._buttons[name]

    def field(self, name: str) -> widgets.Text:
        """The text field of command ``name``'s (first) argument."""
        return self._fields[name][0]

    @property
    def buttons(self) -> tuple[widgets.Button, ...]:
        """Every command button, shown or not."""
        return tuple(self._buttons.values())

    # --- drawing ------------------------------------------------------------------------------
    def show(self, state: RunState, connected: bool, changes: set[str] | frozenset[str] = frozenset()) -> None:
        """Follow the run: its command list, which commands its status offers, buttons off unless it takes commands."""
        if state.commands != self._commands:
            self._build(state.commands)
        live = connected and not state.ended
        for command in self._commands:
            shown = command.offered(state.status, state.guard_alert is not None)
            for widget in (self._buttons.get(command.name), *self._fields.get(command.name, ())):
                if widget is not None:
                    widget.layout.display = None if shown else "none"
                    widget.disabled = not live
        if not live:
            self.confirm.cancel()
        if changes & {"outcomes", "logs"} and state.last_command is not None:
            # A resume's warnings are logged on the stream: they may come with the outcome or after it.
            warnings = command_warnings(state.last_command, state.logs)
            if "outcomes" in changes or warnings:
                self.outcome.value = outcome_html(state.last_command, warnings)

    def show_outcome(self, entry: dict[str, Any]) -> None:
        """Show a command's state at once (sent, or refused before it reached the run)."""
        self.outcome.value = outcome_html(entry, entry.get("warnings", ()))

    def show_hint(self, text: str) -> None:
        """A quiet standing hint next to the outcome (how clicks behave in this kernel)."""
        self.hint.value = f"<span style='font-size:11px;color:#888'>{html.escape(text)}</span>"

    def show_note(self, text: str) -> None:
        """A standing note under the outcome (why clicks may wait, say); empty hides it."""
        self.note.value = f"<span style='font-size:12px;color:#b35900'>{html.escape(text)}</span>" if text else ""
        self.note.layout.display = None if text else "none"

    def _build(self, commands: tuple[CommandInfo, ...]) -> None:
        old = [*self._buttons.values(), *(field for fields in self._fields.values() for field in fields)]
        self._commands = commands
        self._buttons, self._fields = {}, {}
        buttons, fields = [], []
        for command in commands:
            if command.takes_checkpoint:
                continue  # offered on each row of the checkpoint list
            required = command.required
            if not required:
                button = widgets.Button(description=command.label, tooltip=command.description,
                                        button_style="warning" if command.when == "paused" else "",
                                        layout=widgets.Layout(width="auto", min_width="96px"))
                buttons.append(button)
            else:
                inputs = tuple(widgets.Text(placeholder=arg.help or arg.name, tooltip=arg.help or arg.name,
                                            layout=widgets.Layout(width="340px" if len(required) == 1 else "160px"))
                               for arg in required)
                button = widgets.Button(description=command.title, tooltip=command.description,
                                        layout=widgets.Layout(width="auto"))
                self._fields[command.name] = inputs
                fields += [*inputs, button]
            button.on_click(lambda _, command=command: self._click(command))
            self._buttons[command.name] = button
        self.button_row.children = buttons
        self.field_row.children = fields
        for widget in old:
            widget.close()

    def _click(self, command: CommandInfo) -> None:
        values = [field.value.strip() for field in self._fields.get(command.name, ())]
        if not all(values):
            self.show_outcome({"name": command.name, "outcome": "rejected",
                               "message": f"fill in {' and '.join(arg.name for arg in command.required)} first"})
            return
        self.confirm.request(command, values)
