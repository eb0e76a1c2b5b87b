"""While a run starts in a child process: its name, how long it has taken, and what it prints.

The cockpit shows this at once, before the run serves (a child that imports torch and builds the
model takes seconds). It closes itself with a client when the run serves, or with None when the
child ends first (the command line then says why).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Label, Static

from cockpit.channel.auth import ConnectionError_


class Starting(Protocol):
    """A run on its way (``cockpit.views.ChildRun``)."""

    name: str
    started: float  # time.monotonic() when the child was started

    @property
    def exit_code(self) -> int | None: ...
    @property
    def serving(self) -> bool: ...
    def progress(self, count: int = 8) -> list[str]: ...
    def connect(self) -> Any: ...
    def stop(self) -> None: ...


class StartingScreen(Screen[Any]):
    """``starting <name>…`` with the seconds it has taken and the child's last lines; returns the client."""

    DEFAULT_CSS = """
    StartingScreen {
        align: center middle;
    }
    StartingScreen > Vertical {
        width: 90%;
        max-width: 100;
        height: auto;
        max-height: 90%;
        border: round $primary;
        padding: 1 2;
    }
    StartingScreen #starting-title {
        text-style: bold;
        margin-bottom: 1;
    }
    StartingScreen #starting-output {
        color: $text-muted;
        height: auto;
    }
    StartingScreen #starting-hint {
        margin-top: 1;
        color: $text-muted;
    }
    """

    def __init__(self, starting: Starting) -> None:
        super().__init__()
        self.starting = starting

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title(), id="starting-title")
            yield Static("", id="starting-output")
            yield Label("q: leave (the run goes on, or stops)", id="starting-hint")

    def _title(self) -> str:
        seconds = time.monotonic() - self.starting.started
        return f"starting {self.starting.name}…  {seconds:.0f} s"

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(0.1, self.poll)

    def poll(self) -> None:
        """Show the child's progress; close once the run serves or the child has ended."""
        self.query_one("#starting-title", Label).update(self._title())
        self.query_one("#starting-output", Static).update("\n".join(self.starting.progress(12)))
        if not self.is_current:
            return  # a dialog is open on top (leave?): it decides first
        if self.starting.exit_code is not None:
            self.dismiss(None)
        elif self.starting.serving:
            try:
                client = self.starting.connect()
            except ConnectionError_:
                return  # the connection file is being written: the next look finds it whole
            self.dismiss(client)
