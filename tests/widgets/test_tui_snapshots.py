"""What the terminal cockpit looks like, pinned as SVG snapshots of a deterministic run.

The app shows a fixed hub snapshot (``tui_fixtures.build_snapshot``) through ``StaticSource``,
with a fixed clock, so every frame is the same on every machine. When a change to the UI is
meant, look at the new pictures (``snapshot_report.html``) and accept them with
``pytest tests/widgets/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from cockpit.widgets.tui import CockpitApp
from cockpit.widgets.tui.source import StaticSource

from .tui_fixtures import FIXED_TIME, build_snapshot

SIZES = {"80x24": (80, 24), "160x45": (160, 45)}


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Log lines show local wall-clock times: pin the time zone."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.fixture
def app() -> CockpitApp:
    return CockpitApp(StaticSource(build_snapshot()), live=False, clock=lambda: FIXED_TIME)


async def first_frame(pilot) -> None:
    """Wait for the snapshot to be loaded, then draw it (not leaving it to the 4 Hz timer)."""
    app = pilot.app
    deadline = time.monotonic() + 10
    while not app.state.snapshots:  # the feed thread loads the snapshot
        assert time.monotonic() < deadline, "the app never loaded the snapshot"
        await pilot.pause(0.01)
    await pilot.pause()
    app.redraw()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare, app, size):
    assert snap_compare(app, terminal_size=SIZES[size], run_before=first_frame)


@pytest.mark.parametrize("size", SIZES)
def test_help_screen(snap_compare, app, size):
    assert snap_compare(app, terminal_size=SIZES[size], run_before=first_frame, press=["question_mark"])


@pytest.mark.parametrize("size", SIZES)
def test_quit_screen(snap_compare, app, size):
    assert snap_compare(app, terminal_size=SIZES[size], run_before=first_frame, press=["q"])
