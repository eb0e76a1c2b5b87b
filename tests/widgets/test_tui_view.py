"""What the terminal cockpit shows, read as a demanding user would: the status line around a pause
and the end of a run and at 80 columns, the plots' scales, ticks, titles and abandoned branches,
and what the tables and dialogs fit.

No run: the app shows a fixed snapshot (``StaticSource``) with a clock the test moves; a
``RunState`` is changed by applying events to it, as the channel would.
"""

from __future__ import annotations

import math

import pytest
from cockpit.widgets.tui import CockpitApp
from cockpit.widgets.tui.parts.hooks import HookTable
from cockpit.widgets.tui.parts.log import LogPane
from cockpit.widgets.tui.parts.plots import MARKERS, ScalarPlot, linear_ticks, log_ticks, tick_label
from cockpit.widgets.tui.parts.status import StatusLine, fit, segments
from cockpit.widgets.tui.screens.ended import EndedScreen
from cockpit.widgets.tui.screens.prompt import PromptScreen
from cockpit.widgets.tui.screens.quit import QuitScreen
from cockpit.widgets.tui.source import StaticSource
from textual.containers import Vertical
from textual.widgets import Button, Label, TabbedContent

from cockpit.events import ScalarUpdated, Status, StatusChanged
from cockpit.viewstate import RunState

from .tui_fixtures import FIXED_TIME, HOOKS, STARTED, build_snapshot, until

pytestmark = pytest.mark.timeout(60)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = FIXED_TIME) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def state_of(snapshot: dict | None = None) -> RunState:
    state = RunState()
    state.load_snapshot(snapshot or build_snapshot())
    return state


def status_text(app: CockpitApp) -> str:
    """The status line as drawn (on the cockpit's screen, under any dialog)."""
    return str(app.main.query_one(StatusLine).render())


async def shown(pilot) -> None:
    app = pilot.app
    await until(pilot, lambda: app.state.snapshots, "the snapshot")
    app.redraw()
    await pilot.pause()


def set_status(app: CockpitApp, status: str) -> None:
    with app.lock:
        app.state.apply(StatusChanged(app.state.seq + 1, status))
    app.redraw()


# --- the status line ---------------------------------------------------------------------------
def test_the_status_line_shows_loss_validation_and_eta_before_anything_else_at_80_columns():
    state = state_of()
    shown_parts = fit(segments(state, FIXED_TIME), 78)  # 80 columns less the line's padding
    kinds = [kind for kind, _, _ in shown_parts]
    assert kinds == ["status", "iter", "loss", "val", "eta"], shown_parts
    text = dict((kind, words) for kind, words, _ in shown_parts)
    assert text["loss"] == f"loss {state.scalar('train/loss'):.3g}"
    assert text["val"] == "val top1 0.945 best 0.945"
    assert text["eta"] == "ETA 0:06:47"
    assert sum(len(words) + 2 for _, words, _ in shown_parts) - 2 <= 78
    everything = [kind for kind, _, _ in fit(segments(state, FIXED_TIME), 400)]
    assert everything[:2] == ["name", "status"] and "speed" in everything and "elapsed" in everything


async def test_at_80_columns_nothing_that_matters_is_cut():
    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=Clock())
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        line = status_text(app)
        assert "…" not in line and len(line) <= 78, line
        for words in ("running", "iter 430/1000", "loss 0.", "val top1 0.945 best 0.945", "ETA 0:06:47"):
            assert words in line, line


async def test_no_speed_or_eta_while_paused_and_the_elapsed_time_stops_at_the_end():
    clock = Clock()
    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=clock)
    async with app.run_test(size=(160, 45)) as pilot:
        await shown(pilot)
        assert "14.3 it/s" in status_text(app) and "ETA 0:06:47" in status_text(app)
        set_status(app, Status.PAUSED)
        line = status_text(app)
        assert "ETA paused" in line and "it/s" not in line and "ETA 0:" not in line, line
        set_status(app, Status.RUNNING)
        assert "14.3 it/s" in status_text(app)
        set_status(app, Status.FINISHED)
        await until(pilot, lambda: isinstance(app.screen, EndedScreen) and app.screen.query("#leave"),
                    "the run-ended dialog")
        ended = status_text(app)  # under the dialog, in view
        assert "elapsed 0:12:34" in ended and "ETA" not in ended and "it/s" not in ended, ended
        clock.now += 125  # two minutes after the end, the elapsed time has not moved
        app.redraw()
        assert "elapsed 0:12:34" in status_text(app)


def test_elapsed_counts_while_the_run_lives():
    state = state_of()
    (elapsed,) = [words for kind, words, _ in segments(state, STARTED + 61) if kind == "elapsed"]
    assert elapsed == "elapsed 0:01:01"


def test_validation_best_follows_the_metric_direction():
    state = state_of()
    for step, value in ((600, 0.7), (700, 0.5)):
        state.apply(ScalarUpdated(state.seq + 1, "val/loss", value, step))
    assert state.metric_key == "val/accuracy/top1"
    assert state.best("val/loss") == 0.5 and state.best("val/accuracy/top1") == pytest.approx(0.9446)
    assert math.isnan(state.best("val/nothing"))


async def test_at_80_columns_a_log_line_wraps_rather_than_losing_its_loss():
    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=Clock())
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        log = app.main.query_one(LogPane)
        await until(pilot, lambda: log.lines, "the log lines")
        lines = ["".join(segment.text for segment in strip) for strip in log.lines]
        assert all(len(line.rstrip()) <= log.scrollable_content_region.width for line in lines)
        assert any("loss: 0.1952" in line for line in lines), lines


# --- the plots -------------------------------------------------------------------------------------
def loss_plot(app: CockpitApp) -> ScalarPlot:
    return app.main.query_one("#loss-plot", ScalarPlot)


async def test_the_loss_plot_goes_log_when_it_spans_decades_and_o_still_toggles():
    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=Clock())
    async with app.run_test(size=(160, 45)) as pilot:
        await shown(pilot)
        plot = loss_plot(app)
        assert plot.log_now, "a loss from 2.2 down to 0.06 is drawn on a log axis"
        assert plot.border_title.endswith(" · log scale")
        await pilot.press("o")
        app.redraw()
        assert not plot.log_now and "log scale" not in plot.border_title
        await pilot.press("o")
        app.redraw()
        assert plot.log_now
        lr = app.main.query_one("#lr-plot", ScalarPlot)
        assert not lr.log_now, "a learning rate within one decade stays linear"


def test_ticks_sit_on_round_values():
    assert log_ticks(0.06, 2.2) == [0.1, 0.2, 0.5, 1.0, 2.0]
    assert log_ticks(1e-5, 3e-3) == [1e-5, 1e-4, 1e-3]
    assert linear_ticks(0.06, 2.2, 5) == [0.5, 1.0, 1.5, 2.0]
    assert linear_ticks(0, 429, 6, whole=True) == [0, 100, 200, 300, 400]
    assert linear_ticks(3, 9, 20, whole=True) == [3, 4, 5, 6, 7, 8, 9], "never a fraction of an iteration"
    assert [tick_label(t) for t in (1e-3, 0.05, 1.0, 1200, 20000)] == ["1e-3", "0.05", "1", "1200", "20k"]


async def test_m_cycles_the_smoothing_and_each_title_holds_the_current_and_best_value():
    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=Clock())
    async with app.run_test(size=(160, 45)) as pilot:
        await shown(pilot)
        plot = loss_plot(app)
        with app.lock:
            last, best = app.state.scalar("train/loss"), app.state.best("train/loss")
        assert plot.smoothing == 0.9
        assert f"loss (smoothed 0.9) {last:.4g} · best {best:.4g}" in plot.border_title
        weights = []
        for _ in range(4):
            await pilot.press("m")
            weights.append(plot.smoothing)
        assert weights == [0.99, 0.0, 0.6, 0.9]
        val = app.main.query_one("#val-plot", ScalarPlot)
        assert "top1 0.9446 · best 0.9446" in val.border_title
        assert "best" not in app.main.query_one("#lr-plot", ScalarPlot).border_title  # no best learning rate


def test_markers_are_drawn_in_the_colours_the_help_names():
    from cockpit.widgets.tui.screens.help import PANES

    assert MARKERS["resume"][0].startswith("red") and MARKERS["lr"][0] == "orange+"  # plotext's bright yellow
    assert "resumes (red)" in PANES and "learning-rate changes (yellow)" in PANES


async def test_an_abandoned_branch_is_drawn_dimmed_for_the_keys_it_has():
    snapshot = build_snapshot()
    snapshot["info"]["branches"] = [{"at": 300, "checkpoint": "epoch_3.pth", "scalars": {
        "train/loss": {"steps": list(range(300, 380)), "values": [0.5 + 0.001 * i for i in range(80)]}}}]
    app = CockpitApp(StaticSource(snapshot), live=False, clock=Clock())
    async with app.run_test(size=(160, 45)) as pilot:
        await shown(pilot)
        assert loss_plot(app).drawn_branches == 1
        assert app.main.query_one("#lr-plot", ScalarPlot).drawn_branches == 0  # the branch has no train/lr
        monitor = loss_plot(app).plt._active.monitor  # what plotext was handed, line by line
        colors = [line[0] for line in monitor.color]
        assert colors[0] == "gray" and colors[1:3] == ["gray+", "cyan+"], colors  # branch, raw, smoothed
        assert not any(label for label in monitor.label), "a legend inside the plot would sit on the data"


# --- what fits ---------------------------------------------------------------------------------------
async def test_at_160x45_the_hook_table_shows_every_hook_without_scrolling():
    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=Clock())
    async with app.run_test(size=(160, 45)) as pilot:
        await shown(pilot)
        await pilot.pause()
        table = app.main.query_one("#hooks", HookTable)
        hooks = sum(len(entries) for _, entries in HOOKS)
        assert table.row_count == hooks
        assert table.max_scroll_y == 0 and table.max_scroll_x == 0, (table.max_scroll_y, table.max_scroll_x)


async def test_at_80x24_the_hooks_tab_shows_more_than_6_rows():
    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=Clock())
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        app.main.query_one("#bottom", TabbedContent).active = "tab-hooks"
        await pilot.pause()
        table = app.main.query_one("#hooks-narrow", HookTable)
        rows_shown = table.scrollable_content_region.height - 1  # less the header
        assert rows_shown > 6, rows_shown


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 45)])
async def test_the_quit_dialog_and_the_lr_prompt_never_cut_their_text(size):
    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=Clock())
    async with app.run_test(size=size) as pilot:
        await shown(pilot)
        for key, screen_type in (("q", QuitScreen), ("l", PromptScreen)):
            await pilot.press(key)
            screen = await until(pilot, lambda t=screen_type: isinstance(app.screen, t) and app.screen.query(Label)
                                 and app.screen, "the dialog")
            await pilot.pause()
            dialog = screen.query_one(Vertical)
            for widget in [*screen.query(Label), *screen.query(Button)]:
                text, region = str(widget.render()), widget.content_region
                if isinstance(widget, Button):  # one line, never wrapped
                    assert len(text.strip()) <= region.width, (text, region)
                else:  # wrapped to the width: every line of it has a row
                    needed = widget.get_content_height(region.size, app.size, region.width)
                    assert needed <= region.height, (text, region, needed)
                assert dialog.region.contains_region(widget.region), (text, widget.region, dialog.region)
            assert app.screen.region.contains_region(dialog.region), dialog.region
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.main, "the dialog to close")
