"""The health guard's alert in both views: a banner with what tripped and the choices, the bell once.

The alert reaches a view as a ``GuardTripped`` event (and in a snapshot as the ``guard_alert``
info); ``InfoUpdated('guard_alert', None)`` clears it once the user answered. The guard itself is
tested against real runs in tests/hooks/test_health_guard.py and tests/e2e/test_health_guard.py.
"""

from __future__ import annotations

import pytest
from cockpit.widgets.notebook.view import CockpitView
from cockpit.widgets.tui import CockpitApp
from cockpit.widgets.tui.parts.guard import GuardBanner
from cockpit.widgets.tui.source import StaticSource

from cockpit.events import GuardTripped, InfoUpdated
from cockpit.viewstate import RunState

from .test_tui_exits import SIZE, shown
from .tui_fixtures import FIXED_TIME, build_snapshot, until

pytestmark = pytest.mark.timeout(60)

TRIPPED = dict(kind="nonfinite", message="the loss is nan", step=212,
               choices=("guard-continue", "guard-rollback", "guard-stop"), fallback="rollback",
               deadline=FIXED_TIME + 600)


async def test_the_terminal_shows_the_banner_rings_once_and_hides_it_when_answered():
    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=lambda: FIXED_TIME)
    bells = []
    async with app.run_test(size=SIZE) as pilot:
        app.bell = lambda: bells.append(1)
        await shown(pilot)
        banner = app.query_one(GuardBanner)
        assert not banner.display, "no alert, no banner"
        with app.lock:
            app.state.apply(GuardTripped(app.state.seq + 1, **TRIPPED))
        app.redraw()
        await until(pilot, lambda: banner.display, "the banner")
        text = str(banner.content)
        assert "the loss is nan" in text and "iter 212" in text
        assert "continue · roll back · stop" in text and "10:00: rollback" in text
        app.redraw()
        app.redraw()
        assert bells == [1], "the bell rings once per alert, not on every frame"
        with app.lock:
            app.state.apply(InfoUpdated(app.state.seq + 1, "guard_alert", None))
        app.redraw()
        await until(pilot, lambda: not banner.display, "the banner to go once answered")


def test_the_notebook_shows_the_banner_and_hides_it_when_answered():
    view = CockpitView(send=lambda *args, **kwargs: None)
    state = RunState()
    state.load_snapshot(build_snapshot())
    view.refresh(state)
    assert view.guard.layout.display == "none"
    state.apply(GuardTripped(state.seq + 1, **TRIPPED))
    view.refresh(state)
    assert view.guard.layout.display != "none"
    assert "the loss is nan" in view.guard.value and "iter 212" in view.guard.value
    assert "rollback" in view.guard.value
    state.apply(InfoUpdated(state.seq + 1, "guard_alert", None))
    view.refresh(state)
    assert view.guard.layout.display == "none"
