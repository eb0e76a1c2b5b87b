"""The command palette: the cockpit's actions plus every command the run's hooks offer."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from cockpit.widgets.tui.app import CockpitApp

ACTIONS = (
    ("Validate now", "validate", "run validation at the next safe point"),
    ("Save a checkpoint", "save", "save the current state now"),
    ("Resume from a checkpoint...", "resume", "pick a checkpoint and continue from it"),
    ("Pause / continue", "pause", "hold training (the process and its memory stay) or go on"),
    ("Set the learning rate...", "set_lr", "a value, or *factor"),
    ("Choose plot series...", "series", "which scalars the main plot shows"),
    ("Toggle smoothing", "smooth", "exponential moving average of the loss"),
    ("Toggle log scale", "log_scale", "log y axis in the main plot"),
    ("Zoom: recent / whole run", "zoom", "the last stretch of iterations, or everything"),
    ("Help", "help", "keys and panes"),
    ("Quit...", "quit_cockpit", "detach or stop the run"),
)
BUILTIN = {"val", "save", "resume", "pause", "continue", "stop", "set"}


class CockpitCommands(Provider):
    """Actions and the run's own commands, searchable by name."""

    def _entries(self) -> list[tuple[str, object, str]]:
        app: CockpitApp = self.app  # type: ignore[assignment]
        entries = [(title, partial(app.perform, action), help_text) for title, action, help_text in ACTIONS]
        entries.append(("Stop the run (save first)", partial(app.send, "stop"), "graceful stop"))
        with app.lock:
            commands = list(app.state.commands)
        for command in commands:
            if command["name"] in BUILTIN:
                continue
            title = f"Run command: {command['name']}" + (" ..." if command["args"] else "")
            entries.append((title, partial(app.run_hook_command, command), command["description"]))
        return entries

    async def discover(self) -> Hits:
        for title, callback, help_text in self._entries():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
