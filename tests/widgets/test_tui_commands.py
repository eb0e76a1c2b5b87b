"""The terminal cockpit's keys, footer, palette and help, generated from a hand-made command list.

No run: the app shows a fixed snapshot (``StaticSource``), whose command list holds the built-ins
and a command a hook declares with a key of its own. What a key sends is what the source records.
"""

from __future__ import annotations

from typing import Any

import pytest
from cockpit.widgets.tui import CockpitApp
from cockpit.widgets.tui.commands import palette_entries
from cockpit.widgets.tui.screens.checkpoint import CheckpointPicker
from cockpit.widgets.tui.screens.confirm import ConfirmScreen
from cockpit.widgets.tui.screens.ended import EndedScreen
from cockpit.widgets.tui.screens.help import HelpScreen, help_markdown
from cockpit.widgets.tui.screens.prompt import PromptScreen
from cockpit.widgets.tui.source import StaticSource
from textual.widgets import Input

from cockpit.events import Status, StatusChanged
from cockpit.viewstate import CommandInfo

from .tui_fixtures import COMMANDS, FIXED_TIME, build_snapshot, until

SIZE = (160, 45)
pytestmark = pytest.mark.timeout(60)
HOOK_COMMAND = {"name": "export", "label": "Export ONNX…", "key": "e", "description": "write the model as ONNX",
                "args": [{"name": "file", "help": "where to write it (model.onnx)", "kind": "text", "choices": [],
                          "optional": False}],
                "usage": "export <file>", "confirm": "Overwrite {0} if it exists?", "while_paused": True,
                "when": "live"}
#: A hook command that wants a key the view keeps for itself (q quits): it is offered in the palette only.
CLASHING = {"name": "quick", "label": "Quick check", "key": "q", "description": "a quick check", "args": []}


def make_app(commands: list[dict[str, Any]] = (*COMMANDS, HOOK_COMMAND, CLASHING)) -> tuple[CockpitApp, StaticSource]:
    snapshot = build_snapshot()
    snapshot["info"] = {**snapshot["info"], "commands": list(commands)}
    source = StaticSource(snapshot)
    return CockpitApp(source, live=False, clock=lambda: FIXED_TIME), source


async def shown(pilot) -> None:
    """Wait for the snapshot, then draw it (which binds the run's commands)."""
    app = pilot.app
    await until(pilot, lambda: app.state.snapshots, "the snapshot")
    app.redraw()
    await pilot.pause()


def footer(app: CockpitApp) -> dict[str, str]:
    """Key -> description of what the footer shows."""
    return {key: active.binding.description for key, active in app.active_bindings.items() if active.binding.show}


def set_status(app: CockpitApp, status: str) -> None:
    with app.lock:
        app.state.apply(StatusChanged(app.state.seq + 1, status))
    app.redraw()


async def test_keys_and_footer_come_from_the_command_list():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot)
        keys = footer(app)
        assert list(keys) == ["v", "s", "r", "p", "l", "e", "g", "m", "o", "z", "question_mark", "q"]
        assert keys["v"] == "Validate" and keys["s"] == "Save checkpoint" and keys["e"] == "Export ONNX…"
        assert keys["q"] == "quit"  # the view's own key stays the view's
        await pilot.press("v", "s")
        await until(pilot, lambda: source.sent == [("val", ()), ("save", ())], "val and save sent")


async def test_a_narrow_footer_shows_each_labels_first_word():
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        assert footer(app) == {"v": "Validate", "s": "Save", "r": "Resume…", "p": "Pause", "l": "Set…",
                               "e": "Export…", "g": "series", "m": "smooth", "o": "log", "z": "zoom",
                               "question_mark": "help", "q": "quit"}


async def test_p_is_pause_while_running_and_continue_while_paused():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot)
        assert footer(app)["p"] == "Pause"
        await pilot.press("p")
        await until(pilot, lambda: source.sent == [("pause", ())], "pause sent")
        set_status(app, Status.PAUSED)
        await pilot.pause()
        assert footer(app)["p"] == "Continue"
        await pilot.press("p")
        await until(pilot, lambda: source.sent[-1] == ("continue", ()), "continue sent")
        set_status(app, Status.RUNNING)
        assert footer(app)["p"] == "Pause"


async def test_a_hook_command_asks_for_its_argument_then_for_a_yes():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot)
        await pilot.press("e")
        prompt = await until(pilot, lambda: isinstance(app.screen, PromptScreen) and app.screen, "the prompt")
        assert prompt.query_one(Input).placeholder == "where to write it (model.onnx)"
        await pilot.press(*"a.onnx", "enter")
        confirm = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen, "the question")
        assert confirm.question == "Overwrite a.onnx if it exists?"
        await pilot.press("n")  # no: nothing is sent
        await pilot.pause(0.2)
        assert source.sent == []
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the prompt again")
        await pilot.press(*"b.onnx", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question again")
        await pilot.press("y")
        await until(pilot, lambda: source.sent == [("export", ("b.onnx",))], "export sent")


async def test_l_sends_the_typed_text_for_the_run_to_read_once_confirmed():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot)
        await pilot.press("l")
        prompt = await until(pilot, lambda: isinstance(app.screen, PromptScreen) and app.screen, "the prompt")
        assert prompt.query_one(Input).placeholder == "a learning rate (0.01), or a factor (*0.5) that scales it"
        prompt.query_one(Input).value = "×0.5"
        await pilot.press("enter")
        confirm = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen, "the question")
        assert confirm.question.startswith("Set learning rate: ×0.5?")
        await pilot.press("enter")  # the focus is on No: enter (a stray key) sends nothing
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the question to close")
        assert source.sent == []
        await pilot.press("l")
        prompt = await until(pilot, lambda: isinstance(app.screen, PromptScreen) and app.screen, "the prompt again")
        prompt.query_one(Input).value = "×0.5"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question again")
        await pilot.press("y")
        await until(pilot, lambda: source.sent == [("set", ("×0.5",))], "set sent as typed")


async def test_the_commands_that_change_the_runs_course_ask_first_and_the_others_do_not():
    commands = {c["name"]: CommandInfo.from_dict(c) for c in COMMANDS}
    assert commands["resume"].confirmation(["a.pth"]).startswith("Resume from a.pth?")
    assert commands["stop"].confirmation([]).startswith("Stop the run?")
    assert commands["set"].confirmation(["0.01"]).startswith("Set learning rate: 0.01?")
    assert [name for name in ("val", "save", "pause", "continue") if commands[name].confirmation([])] == []


async def test_r_picks_a_checkpoint_and_asks_before_resuming():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot)
        await pilot.press("r")
        picker = await until(pilot, lambda: isinstance(app.screen, CheckpointPicker) and app.screen, "the picker")
        path = picker.query_one("#picker").selected_path
        await pilot.press("enter")
        confirm = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen, "the question")
        assert confirm.question.startswith(f"Resume from {path}?")
        await pilot.press("y")
        await until(pilot, lambda: source.sent == [("resume", (path,))], "resume sent")


async def test_the_palette_offers_the_commands_of_the_status_and_the_views_actions():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot)
        titles = [title for title, _, _ in palette_entries(app)]
        assert titles[:8] == ["Validate", "Save checkpoint", "Resume…", "Pause", "Stop", "Set learning rate…",
                              "Export ONNX…", "Quick check"]
        assert "Continue" not in titles and "Toggle smoothing" in titles and "Quit..." in titles
        stop = next(callback for title, callback, _ in palette_entries(app) if title == "Stop")
        stop()
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the stop question")
        await pilot.press("y")
        await until(pilot, lambda: source.sent == [("stop", ())], "stop sent")
        quick = next(callback for title, callback, _ in palette_entries(app) if title == "Quick check")
        quick()
        await until(pilot, lambda: source.sent[-1] == ("quick", ()), "the clashing hook command sent")
        set_status(app, Status.PAUSED)
        titles = [title for title, _, _ in palette_entries(app)]
        assert "Continue" in titles and "Pause" not in titles


async def test_help_lists_the_runs_commands():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot)
        await pilot.press("question_mark")
        help_screen = await until(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen, "help")
        assert [c.name for c in help_screen.commands][-2:] == ["export", "quick"]
    text = help_markdown(CommandInfo.from_dict(c) for c in (*COMMANDS, HOOK_COMMAND))
    assert "| `e` | write the model as ONNX: where to write it (model.onnx) |" in text
    assert "| `p` | pause training (the process and its memory stay) / continue a paused run |" in text
    assert "and **Stop**" in text


async def test_after_the_end_no_command_key_shows_or_sends():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot)
        set_status(app, Status.FINISHED)
        await until(pilot, lambda: isinstance(app.screen, EndedScreen), "the run-ended dialog")
        await pilot.press("escape")  # stay, and press a command's key
        await until(pilot, lambda: not isinstance(app.screen, EndedScreen), "the dialog to close")
        assert list(footer(app)) == ["g", "m", "o", "z", "question_mark", "q"]
        await pilot.press("s", "p", "r")
        await pilot.pause(0.2)
        assert source.sent == [] and app.screen is app.screen_stack[0]
