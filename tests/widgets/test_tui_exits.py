"""Every way out of the terminal cockpit asks first, the end of a run offers to leave, and a run
that is still starting is shown at once. No run: a fixed snapshot (``StaticSource``) and a fake
starting run whose state the test sets."""

from __future__ import annotations

import time
from typing import Any

import pytest
from cockpit.widgets.tui import CockpitApp
from cockpit.widgets.tui.screens.ended import EndedScreen
from cockpit.widgets.tui.screens.quit import QuitScreen
from cockpit.widgets.tui.screens.starting import StartingScreen
from cockpit.widgets.tui.source import StaticSource
from textual.command import CommandPalette

from cockpit.events import Status, StatusChanged

from .tui_fixtures import FIXED_TIME, build_snapshot, until

SIZE = (120, 40)
pytestmark = pytest.mark.timeout(60)


def make_app() -> tuple[CockpitApp, StaticSource]:
    source = StaticSource(build_snapshot())
    return CockpitApp(source, live=False, clock=lambda: FIXED_TIME), source


async def shown(pilot) -> None:
    await until(pilot, lambda: pilot.app.state.snapshots, "the snapshot")
    pilot.app.redraw()
    await pilot.pause()


def set_status(app: CockpitApp, status: str, detail: str = "") -> None:
    with app.lock:
        app.state.apply(StatusChanged(app.state.seq + 1, status, detail))
    app.redraw()


@pytest.mark.parametrize("keys", [["q"], ["ctrl+q"], ["ctrl+c"]], ids=["q", "ctrl+q", "ctrl+c"])
async def test_every_key_that_leaves_asks_first(keys):
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot)
        await pilot.press(*keys)
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), f"the leave dialog after {keys}")
        assert app.is_running, "the app left without asking"
        await pilot.press(*keys)  # again: still one dialog, still running
        await pilot.pause(0.1)
        assert isinstance(app.screen, QuitScreen) and app.is_running
        assert sum(isinstance(screen, QuitScreen) for screen in app.screen_stack) == 1
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, QuitScreen), "the dialog to close on esc")
        assert app.is_running
        await pilot.press(*keys)
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), "the dialog again")
        await pilot.press("d")
    assert app.return_value == "detach"


async def test_quit_in_the_palette_asks_first():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot)
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"quit")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), "the leave dialog from the palette")
        assert app.is_running
        await pilot.press("x")  # stop: the view sends the run's stop command, then leaves
    assert app.return_value == "stop"


async def test_the_end_of_the_run_offers_to_leave():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot)
        set_status(app, Status.FINISHED)
        dialog = await until(pilot, lambda: isinstance(app.screen, EndedScreen) and app.screen, "the ended dialog")
        assert dialog.message.startswith("The run finished at iter ")
        await pilot.press("escape")  # stay and look
        await until(pilot, lambda: not isinstance(app.screen, EndedScreen), "the dialog to close")
        assert app.is_running
        await pilot.press("q")  # the run has ended: q leaves at once
    assert app.return_value == "ended"


async def test_a_failed_run_says_why_and_leaves_on_enter():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot)
        set_status(app, Status.FAILED, "RuntimeError: forward exploded")
        dialog = await until(pilot, lambda: isinstance(app.screen, EndedScreen) and app.screen, "the ended dialog")
        assert "The run failed at iter" in dialog.message and "forward exploded" in dialog.message
        await pilot.press("enter")
    assert app.return_value == "ended"


class FakeStart:
    """A run that is starting: the test says when it prints, serves, or ends."""

    def __init__(self, client: Any = None) -> None:
        self.name = "tuirun"
        self.started = time.monotonic()
        self.lines = ["loading cfg.py and PyTorch"]
        self.client = client
        self.serve = False
        self.code: int | None = None
        self.stopped = False

    @property
    def exit_code(self) -> int | None:
        return self.code

    @property
    def serving(self) -> bool:
        return self.serve

    def progress(self, count: int = 8) -> list[str]:
        return self.lines[-count:]

    def connect(self) -> Any:
        return self.client

    def stop(self) -> None:
        self.stopped = True
        self.code = 143


def screen_text(app: CockpitApp) -> str:
    return "\n".join(str(label.render()) for label in app.screen.query("Label, Static"))


async def test_a_starting_run_shows_at_once_then_the_run_when_it_serves():
    starting = FakeStart(StaticSource(build_snapshot()))
    app = CockpitApp(starting=starting, live=False, clock=lambda: FIXED_TIME)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, StartingScreen), "the starting screen")
        await until(pilot, lambda: "starting tuirun…" in screen_text(app), "its title")
        await until(pilot, lambda: "loading cfg.py and PyTorch" in screen_text(app), "what the child printed")
        starting.lines.append("building the model and the hooks")
        await until(pilot, lambda: "building the model" in screen_text(app), "the child's next line")
        starting.serve = True
        await until(pilot, lambda: not isinstance(app.screen, StartingScreen), "the cockpit once the run serves")
        await until(pilot, lambda: app.state.snapshots, "the run's snapshot")
        assert app.source is starting.client


async def test_a_start_that_fails_leaves_the_cockpit():
    starting = FakeStart()
    app = CockpitApp(starting=starting)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, StartingScreen), "the starting screen")
        starting.code = 2
        await until(pilot, lambda: not app.is_running, "the app to leave", timeout=5)
    assert app.return_value == "exited"


async def test_leaving_a_starting_run_asks_and_stop_ends_its_process():
    starting = FakeStart()
    app = CockpitApp(starting=starting)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, StartingScreen), "the starting screen")
        await pilot.press("ctrl+c")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), "the leave dialog while starting")
        await pilot.press("x")
    assert app.return_value == "stop" and starting.stopped
