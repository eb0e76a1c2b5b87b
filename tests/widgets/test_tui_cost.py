"""What keeps a terminal view cheap while it watches a live run (issue 15: 10% of a core at 20 it/s,
``benchmarks/tui.py``), checked as behaviour: the work is skipped, and the picture is the same.
"""

from __future__ import annotations

import pytest
from cockpit.widgets.tui import CockpitApp
from cockpit.widgets.tui.parts.log import LogPane
from cockpit.widgets.tui.parts.plots import ScalarPlot, text_from_ansi
from cockpit.widgets.tui.source import StaticSource
from rich.text import Text

from .test_tui_view import shown
from .tui_fixtures import FIXED_TIME, build_snapshot, until

pytestmark = pytest.mark.timeout(60)


async def test_plots_decode_plotexts_picture_as_rich_does():
    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=lambda: FIXED_TIME)
    async with app.run_test(size=(160, 45)) as pilot:
        await shown(pilot)
        for plot in app.query(ScalarPlot):
            plot.draw(app.state)
            picture = plot._plot.build()
            assert "\x1b[" in picture or not plot.keys
            assert text_from_ansi(picture) == Text.from_ansi(picture), plot.id  # same characters, same styles
    # Styles carry over a line end and stop at a reset, as in Rich's decoder.
    sample = "a\x1b[1m\x1b[38;5;14mb\nc\x1b[0md\x1b[48;5;17m e"
    assert text_from_ansi(sample) == Text.from_ansi(sample)


async def test_a_full_log_takes_new_lines_without_laying_the_screen_out_again():
    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=lambda: FIXED_TIME)
    async with app.run_test(size=(160, 45)) as pilot:
        await shown(pilot)
        log = app.main.query_one(LogPane)
        log.add([(FIXED_TIME + i, "INFO", f"line {i}") for i in range(40)])  # more than the pane holds
        await until(pilot, lambda: log.show_vertical_scrollbar and log.scroll_y == log.max_scroll_y,
                    "the log to overflow and scroll to its end")
        screen = app.main
        layouts = []
        refresh_layout = screen._refresh_layout
        screen._refresh_layout = lambda *args, **kwargs: (layouts.append(1), refresh_layout(*args, **kwargs))[1]
        lines = len(log.lines)
        log.add([(FIXED_TIME + 50, "INFO", "the newest line")])
        await until(pilot, lambda: log.scroll_y == log.max_scroll_y and len(log.lines) == lines + 1,
                    "the log to scroll to the new line")
        await pilot.pause()
        assert "the newest line" in log.lines[-1].text
        assert log.vertical_scrollbar.window_virtual_size == lines + 1, "the scroll bar knows the new length"
        assert not layouts, "a new line in a full log laid the whole screen out again"


async def test_the_braille_cells_of_a_plot_are_plotexts_own():
    import plotext._utility as plotext_utility
    from cockpit.widgets.tui.parts import plots

    calls = []

    def spy(x, y, xf, yf):
        calls.append((list(x), list(y), list(xf), list(yf)))
        return plots.hd_group(x, y, xf, yf)

    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=lambda: FIXED_TIME)
    async with app.run_test(size=(160, 45)) as pilot:
        await shown(pilot)
        plot = app.query_one("#loss-plot", ScalarPlot)
        plot.draw(app.state)
        assert plotext_utility.hd_group is plots.hd_group, "plotext builds with the one-pass version"
        plotext_utility.hd_group = spy
        try:
            plot._plot.build()
        finally:
            plotext_utility.hd_group = plots.hd_group
    assert calls and sum(len(call[0]) for call in calls) > 500  # the raw and the smoothed line
    for call in calls:
        assert plots.hd_group(*call) == plots._plotext_hd_group(*call)
    # A missing coordinate: plotext's own answer.
    odd = ([0, 1, float("nan"), 5], [0, 3, 2, 7], [2, 2, 2, 2], [4, 4, 4, 4])
    assert plots.hd_group(*odd) == plots._plotext_hd_group(*odd)


def test_markers_of_two_sizes_are_left_to_plotext(monkeypatch):
    from cockpit.widgets.tui.parts import plots

    monkeypatch.setattr(plots, "_plotext_hd_group", lambda *args: "plotext's")
    assert plots.hd_group([0, 1, 5], [0, 3, 7], [2, 1, 2], [4, 1, 4]) == "plotext's"


def test_the_smoothed_loss_is_carried_on_and_equals_smoothing_it_all():
    import math

    from cockpit.series import Series, smooth

    plot = ScalarPlot(["train/loss"], "train loss", smoothing=0.9)
    series = Series(limit=64)
    for step in range(200):  # past the limit: the series folds its old half twice or more
        series.append(step, math.nan if step == 7 else 1.0 / (step + 1) + 0.01 * (step % 3))
        smoothed = plot._smoothed(series.values)
        assert smoothed == pytest.approx(smooth(series.values, 0.9), nan_ok=True), step
    plot.smoothing = 0.6  # another weight: computed again
    assert plot._smoothed(series.values) == pytest.approx(smooth(series.values, 0.6), nan_ok=True)


async def test_a_long_plot_builds_a_new_picture_only_when_a_dot_moves_and_shows_the_same():
    """A long series at a fixed width: most batches of new points move no dot of the learning rate
    (a slow schedule) and many none of the loss, so no picture is built for them; the picture shown
    is always the one a build from scratch would make."""
    from cockpit.series import Series

    from .tui_fixtures import loss_at

    app = CockpitApp(StaticSource(build_snapshot(iters=8000)), frame_rate=1e-3, live=False, clock=lambda: FIXED_TIME)
    async with app.run_test(size=(160, 45)) as pilot:
        await shown(pilot)
        state = app.state
        loss, lr = state.scalars["train/loss"], state.scalars["train/lr"]
        assert isinstance(loss, Series) and len(loss) == 8000
        built = {}
        for plot_id in ("#loss-plot", "#lr-plot"):
            plot = app.query_one(plot_id, ScalarPlot)
            plot.draw(state)
            before, draws = plot.pictures, 30
            for _ in range(draws):
                for _ in range(20):  # a second of a 20 it/s run
                    step = loss.steps[-1] + 1
                    loss.append(step, loss_at(step))
                    lr.append(step, lr.values[-1] * 0.99999)
                pictures = plot.pictures
                plot.draw(state)
                shown_now = plot.render()
                built[plot_id] = built.get(plot_id, 0) + (plot.pictures - pictures)
                plot._picture = None  # a build from scratch of the same state
                plot.draw(state)
                assert plot.render() == shown_now, f"{plot_id} shows a stale picture"
            assert plot.pictures > before
        assert built["#lr-plot"] <= 10, built
        assert built["#loss-plot"] < 30, built


async def test_a_new_title_alone_repaints_the_frame_without_turning_the_picture_into_lines_again(monkeypatch):
    from textual import widget as textual_widget

    app = CockpitApp(StaticSource(build_snapshot()), frame_rate=1e-3, live=False, clock=lambda: FIXED_TIME)
    async with app.run_test(size=(160, 45)) as pilot:
        await shown(pilot)
        plot = app.query_one("#loss-plot", ScalarPlot)
        plot.draw(app.state)
        await pilot.pause()
        made = []
        to_strips = textual_widget.Visual.to_strips
        monkeypatch.setattr(textual_widget.Visual, "to_strips",
                            staticmethod(lambda widget, *args, **kwargs: (made.append(widget), to_strips(widget, *args,
                                                                                                          **kwargs))[1]))
        pictures = plot.pictures
        plot.border_title = "a new title"
        await pilot.pause()
        assert plot.pictures == pictures and plot not in made
        assert "a new title" in app.screen._compositor.render_strips()[2].text
        plot._picture = None
        plot.draw(app.state)  # a new picture: its lines are made
        await pilot.pause()
        assert plot in made


async def test_a_new_timing_draws_the_hook_tables_changed_row_alone():
    from cockpit.widgets.tui.parts.hooks import HookTable

    app = CockpitApp(StaticSource(build_snapshot()), frame_rate=1e-3, live=False, clock=lambda: FIXED_TIME)
    async with app.run_test(size=(160, 45)) as pilot:
        await shown(pilot)
        table = app.main.query_one("#hooks", HookTable)
        await until(pilot, lambda: table.lines_drawn >= table.row_count + 1, "the table's first paint")
        await pilot.pause()
        drawn = table.lines_drawn
        with app.lock:
            timing = app.state.hook_timings[("before_run", "LoggerHook")]
            timing[1] += 2 * timing[0] * 1e-3  # its mean goes up by 2 ms a call
            table.show(app.state)
        await until(pilot, lambda: table.lines_drawn > drawn, "the changed row drawn")
        await pilot.pause()
        assert table.lines_drawn == drawn + 1, "rows that did not change were drawn again"
        row = next(line.text for line in app.screen._compositor.render_strips() if "LoggerHook" in line.text)
        assert " 2.8 " in row and "0.830" not in row  # 0.830 ms a call before
