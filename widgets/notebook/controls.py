"""``ControlBar``: the buttons that steer a run, the learning-rate field, and what became of each command.

The buttons only send commands (through the ``send`` callback); they change
nothing themselves. Their labels and states follow the run: Pause reads
Continue while the run is paused, and everything is off once the run has ended.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from cockpit.widgets.notebook.state import RunState

OUTCOME_COLORS = {"applied": "#1a7f37", "rejected": "#b35900", "failed": "#c62828"}


def lr_assignment(text: str) -> str:
    """What the learning-rate field means as a ``set`` argument: ``0.01`` -> ``lr=0.01``, ``*0.5`` -> ``lr*=0.5``."""
    text = text.strip().replace(" ", "")
    if text.startswith("lr"):
        return text
    if text[:1] in ("*", "x", "×"):
        return f"lr*={text[1:]}"
    return f"lr={text}"


def outcome_html(entry: dict[str, Any] | None) -> str:
    """One line saying what became of a command: ``save ✓ applied: saved .../epoch_1.pth``."""
    if not entry:
        return ""
    outcome = entry.get("outcome") or "sent"
    color = OUTCOME_COLORS.get(outcome, "#666")
    mark = {"applied": "✓", "rejected": "✗", "failed": "✗"}.get(outcome, "…")
    command = " ".join([entry.get("name", ""), *entry.get("args", ())])
    message = entry.get("message", "")
    return (f"<span style='font-size:12px;color:{color}'><b>{html.escape(command)}</b> {mark} {outcome}"
            f"{': ' + html.escape(message) if message else ''}</span>")


class ControlBar(widgets.VBox):
    """Validate, Save checkpoint, Pause/Continue, Stop, the learning rate, and the last command's outcome.

    Args:
        send: ``send(name, *args)`` submits a command to the run.
    """

    def __init__(self, send: Callable[..., None]) -> None:
        self.send_command = send
        button = widgets.Layout(width="auto", min_width="96px")
        self.validate = widgets.Button(description="Validate", icon="check", layout=button,
                                       tooltip="run validation now (mid-epoch too)")
        self.save = widgets.Button(description="Save checkpoint", icon="save", layout=button,
                                   tooltip="save a resumable checkpoint now")
        self.pause = widgets.Button(description="Pause", icon="pause", layout=button,
                                    tooltip="pause training after this iteration")
        self.stop = widgets.Button(description="Stop", icon="stop", layout=button,
                                   tooltip="stop after this iteration, saving a checkpoint first")
        self.lr = widgets.Text(placeholder="0.001 or *0.5", description="Learning rate",
                               style={"description_width": "initial"}, layout=widgets.Layout(width="230px"))
        self.set_lr = widgets.Button(description="Set", layout=widgets.Layout(width="56px"),
                                     tooltip="set the learning rate of every parameter group")
        self.outcome = widgets.HTML("", layout=widgets.Layout(min_height="20px"))
        self.validate.on_click(lambda _: self.send_command("val"))
        self.save.on_click(lambda _: self.send_command("save"))
        self.pause.on_click(lambda _: self.send_command("continue" if self.pause.description == "Continue" else "pause"))
        self.stop.on_click(lambda _: self.send_command("stop"))
        self.set_lr.on_click(lambda _: self._set_lr())
        buttons = widgets.HBox([self.validate, self.save, self.pause, self.stop],
                               layout=widgets.Layout(flex="1 1 auto", flex_flow="row wrap"))
        rate = widgets.HBox([self.lr, self.set_lr], layout=widgets.Layout(flex="0 0 auto", align_items="center"))
        row = widgets.HBox([buttons, rate], layout=widgets.Layout(width="100%", justify_content="space-between",
                                                                  align_items="center"))
        super().__init__([row, self.outcome], layout=widgets.Layout(width="100%"))
        self.show(RunState(), connected=False)

    @property
    def buttons(self) -> tuple[widgets.Button, ...]:
        return (self.validate, self.save, self.pause, self.stop, self.set_lr)

    def _set_lr(self) -> None:
        if not self.lr.value.strip():
            self.show_outcome({"name": "set", "outcome": "rejected", "message": "type a learning rate first"})
            return
        self.send_command("set", lr_assignment(self.lr.value))

    def show(self, state: RunState, connected: bool, changes: set[str] = frozenset()) -> None:
        """Follow the run: Pause or Continue, buttons off unless the run takes commands."""
        paused = state.status == "paused"
        live = connected and not state.ended
        self.pause.description = "Continue" if paused else "Pause"
        self.pause.icon = "play" if paused else "pause"
        self.pause.button_style = "warning" if paused else ""
        self.pause.tooltip = "continue training" if paused else "pause training after this iteration"
        for button in self.buttons:
            button.disabled = not live
        self.lr.disabled = not live
        if "commands" in changes and state.last_command is not None:
            self.outcome.value = outcome_html(state.last_command)

    def show_outcome(self, entry: dict[str, Any]) -> None:
        """Show a command's state at once (sent, or refused before it reached the run)."""
        self.outcome.value = outcome_html(entry)
