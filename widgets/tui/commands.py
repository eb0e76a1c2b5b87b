"""The command palette: the run's commands (built-in and its hooks', from its command list) and the view's actions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Protocol

from textual.command import DiscoveryHit, Hit, Hits, Provider

from cockpit.viewstate import CommandInfo, RunState


class CommandHost(Protocol):
    """What the palette needs of the app (``CockpitApp``), without importing it: no import cycle."""

    lock: threading.Lock
    state: RunState

    def run_command(self, command: CommandInfo, args: tuple[str, ...] = ()) -> None: ...

    def perform(self, action: str) -> None: ...

#: What the view itself does, as ``(title, action, help)``: no run command is among them.
VIEW_ACTIONS = (
    ("Choose plot series...", "series", "which scalars the main plot shows"),
    ("Toggle smoothing", "smooth", "exponential moving average of the loss"),
    ("Toggle log scale", "log_scale", "log y axis in the main plot"),
    ("Zoom: recent / whole run", "zoom", "the last stretch of iterations, or everything"),
    ("Help", "help", "keys and panes"),
    ("Quit...", "quit_cockpit", "detach or stop the run"),
)


def palette_entries(app: CommandHost) -> list[tuple[str, Callable[[], object], str]]:
    """``(title, callback, help)`` for every command the run offers now, then the view's actions."""
    with app.lock:
        status = app.state.status
        commands = [command for command in app.state.commands if command.offered(status, app.state.guard_alert is not None)]
    entries: list[tuple[str, Callable[[], object], str]] = [
        (command.label, partial(app.run_command, command), command.description) for command in commands]
    entries += [(title, partial(app.perform, action), help_text) for title, action, help_text in VIEW_ACTIONS]
    return entries


class CockpitCommands(Provider):
    """The run's commands and the view's actions, searchable by title."""

    async def discover(self) -> Hits:
        for title, callback, help_text in palette_entries(self.app):  # type: ignore[arg-type]
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in palette_entries(self.app):  # type: ignore[arg-type]
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
