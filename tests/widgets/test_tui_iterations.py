"""An iteration-based run is one long epoch: the cockpit shows iterations only (issue 13, item 12)."""

from __future__ import annotations

import pytest
from cockpit.widgets.tui import CockpitApp
from cockpit.widgets.tui.parts.checkpoints import CheckpointTable
from cockpit.widgets.tui.parts.status import StatusLine
from cockpit.widgets.tui.source import StaticSource

from .tui_fixtures import FIXED_TIME, build_snapshot

pytestmark = pytest.mark.timeout(60)


def columns(table: CheckpointTable) -> list[str]:
    return [str(column.label) for column in table.columns.values()]


@pytest.mark.parametrize(("info", "epoch_column"), [
    ({}, True),  # the fixture: 10 epochs
    ({"max_epochs": 1}, False),  # an iteration-based run reports one epoch
    ({"by_epoch": False, "max_epochs": 3}, False),  # a run that says so
])
async def test_the_checkpoint_panel_shows_epochs_only_for_a_run_that_counts_them(info, epoch_column):
    snapshot = build_snapshot()
    snapshot["info"] = {**snapshot["info"], **info}
    app = CockpitApp(StaticSource(snapshot), live=False, clock=lambda: FIXED_TIME)
    async with app.run_test(size=(160, 45)) as pilot:
        while not app.state.snapshots:
            await pilot.pause(0.02)
        app.redraw()
        await pilot.pause()
        table = app.query_one("#checkpoints", CheckpointTable)
        assert columns(table) == (["checkpoint", "epoch", "iter", "metric"] if epoch_column
                                  else ["checkpoint", "iter", "metric"])
        assert table.row_count == 3
        row = table.get_row_at(0)
        assert str(row[-2]) == "412"  # the newest checkpoint, iter_412.pth, at iteration 412
        status = str(app.query_one(StatusLine).render())
        assert ("epoch " in status) == epoch_column
