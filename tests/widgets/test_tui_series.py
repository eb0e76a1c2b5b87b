"""The series picker (``g``): space toggles a series, enter applies the choice, esc cancels."""

from __future__ import annotations

import pytest
from cockpit.widgets.tui.screens.series import SeriesScreen
from textual.app import App
from textual.widgets import Label

from .tui_fixtures import until

pytestmark = pytest.mark.timeout(60)


class Host(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.results: list[list[str] | None] = []

    def on_mount(self) -> None:
        self.push_screen(SeriesScreen(["train/loss", "train/acc", "val/loss"], ["train/loss"]), self.results.append)


@pytest.mark.parametrize(("keys", "expected"), [
    (["down", "space", "enter"], ["train/loss", "train/acc"]),  # toggled train/acc on, then applied
    (["space", "enter"], []),  # toggled train/loss off
    (["down", "space", "escape"], None),
])
async def test_space_toggles_enter_applies_escape_cancels(keys, expected):
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SeriesScreen), "the picker")
        label = str(app.screen.query_one(Label).content)
        await pilot.press(*keys)
        await until(pilot, lambda: app.results, "the picker to close")
    assert app.results == [expected]
    assert "enter shows" in label and "esc cancels" in label
