"""Per-rank health in both views (issue 17, part 4): the strip that flags stragglers and hung ranks, and the
rank rows of the System view.

The run publishes ``rank_health`` (cockpit/hooks/health.py, rank 0) as runtime info; the views read it
through ``RunState.rank_health``. The fixture run (``tui_fixtures.RANK_HEALTH``) has four ranks: rank 1
straggles (2.6x the median rank's own time), rank 2 is hung for 63 s in a hook.
"""

from __future__ import annotations

import copy
import re

import pytest
from cockpit.widgets.notebook.system import rank_strip_html, system_html
from cockpit.widgets.notebook.view import CockpitView
from cockpit.widgets.tui import CockpitApp
from cockpit.widgets.tui.panels.system import SystemPanel
from cockpit.widgets.tui.parts.ranks import RankStrip, rank_ranges, strip_text
from cockpit.widgets.tui.source import StaticSource

from cockpit.events import InfoUpdated
from cockpit.viewstate import RunState, rank_health

from .test_tui_snapshots import first_frame, utc  # noqa: F401 - the fixture that pins the time zone
from .tui_fixtures import FIXED_TIME, RANK_HEALTH, build_snapshot, distributed_snapshot, until

SIZES = {"80x24": (80, 24), "160x45": (160, 45)}
WHERE = "SlowRank.after_train_iter (cfg.py:12)"


def distributed_state() -> RunState:
    state = RunState()
    state.load_snapshot(distributed_snapshot())
    return state


def plain(html_text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html_text)).strip()


# --- the model ------------------------------------------------------------------------------------
def test_rank_health_reads_the_runs_verdicts_and_the_ratio_to_the_median():
    ranks = distributed_state().rank_health
    assert [r.rank for r in ranks] == [0, 1, 2, 3]
    assert [r.state for r in ranks] == ["ok", "straggler", "hung", "ok"]
    assert ranks[1].ratio == pytest.approx(0.13 / 0.0505)  # the median of 0.05, 0.13, 0.051, 0.049
    assert ranks[1].note == "straggles 2.6x" and ranks[2].note == "hung 63s" and ranks[0].note == "0.12s"
    assert ranks[2].where == WHERE and ranks[2].age(FIXED_TIME) == pytest.approx(63.0)
    # A rank whose guard tripped is flagged too; a hung rank is the worst news.
    assert rank_health([{"rank": 0, "alert": "nonfinite"}, {"rank": 1}])[0].state == "alert"
    assert rank_health([{"rank": 0, "hung": True, "straggler": True}, {"rank": 1}])[0].state == "hung"


def test_a_single_process_run_has_no_rank_health():
    state = RunState()
    state.load_snapshot(build_snapshot())
    assert state.rank_health == ()
    state.apply(InfoUpdated(state.seq + 1, "rank_health", [RANK_HEALTH[0]]))
    assert state.rank_health == ()


def test_each_published_list_replaces_the_last():
    state = distributed_state()
    healed = copy.deepcopy(RANK_HEALTH)
    for row in healed:
        row.update(straggler=False, hung=False, own_time=0.05)
    state.apply(InfoUpdated(state.seq + 1, "rank_health", healed))
    assert "info" in state.take_changes()
    assert [r.state for r in state.rank_health] == ["ok"] * 4


# --- the terminal's strip -------------------------------------------------------------------------------
def test_the_strip_names_every_rank_and_the_hung_ranks_place_when_there_is_room():
    ranks = distributed_state().rank_health
    narrow, wide = strip_text(ranks, 78), strip_text(ranks, 158)
    assert narrow.plain == "ranks 0 ● 0.12s · 1 ▲ straggles 2.6x · 2 ✖ hung 63s · 3 ● 0.12s"
    assert wide.plain == f"{narrow.plain}  ✖ 2 in {WHERE}"
    styles = {narrow.plain[span.start:span.end]: str(span.style) for span in narrow.spans}
    assert "yellow" in styles["▲"] and "yellow" in styles[" straggles 2.6x"]
    assert "red" in styles["✖"] and "red" in styles[" hung 63s"]
    # With the hung rank last, its place follows it, cut to the room there is.
    last = strip_text(ranks[:3], 78).plain
    assert last.startswith("ranks 0 ● 0.12s · 1 ▲ straggles 2.6x · 2 ✖ hung 63s in SlowRank.") and len(last) == 78


def test_many_ranks_merge_the_healthy_ones_and_never_leave_out_a_flagged_one():
    rows = [{"rank": r, "step_time": 0.12, "own_time": 0.05} for r in range(64)]
    rows[17].update(straggler=True, own_time=0.2)
    rows[40].update(hung=True, idle=125.0)
    text = strip_text(rank_health(rows), 78).plain
    assert text == "ranks 0-16,18-39,41-63 ● 0.12s · 17 ▲ straggles 4.0x · 40 ✖ hung 2m05s"
    narrow = strip_text(rank_health(rows), 40).plain
    assert narrow.startswith("ranks 17 ▲ straggles 4.0x · 40 ✖ hung") and len(narrow) == 40
    assert rank_ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"


async def test_the_strip_shows_only_in_a_distributed_run_and_follows_each_new_list():
    app = CockpitApp(StaticSource(build_snapshot()), live=False, clock=lambda: FIXED_TIME)
    async with app.run_test(size=(100, 30)) as pilot:
        await first_frame(pilot)
        strip = app.query_one(RankStrip)
        assert not strip.display, "a one-process run has no rank strip"
        with app.lock:
            app.state.apply(InfoUpdated(app.state.seq + 1, "rank_health", copy.deepcopy(RANK_HEALTH)))
        app.redraw()
        await until(pilot, lambda: strip.display and "hung 63s" in str(strip.content), "the strip")
        healed = copy.deepcopy(RANK_HEALTH)
        healed[2].update(hung=False, idle=0.1)
        with app.lock:
            app.state.apply(InfoUpdated(app.state.seq + 1, "rank_health", healed))
        app.redraw()
        await until(pilot, lambda: "hung" not in str(strip.content), "the strip without the hung rank")
        assert "straggles 2.6x" in str(strip.content)


async def test_the_system_view_has_a_row_per_rank():
    app = CockpitApp(StaticSource(distributed_snapshot()), live=False, clock=lambda: FIXED_TIME)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_frame(pilot)
        await pilot.press("3")
        panel = app.query_one(SystemPanel)
        await until(pilot, lambda: (app.redraw(), "ranks (4 processes" in str(panel.content))[1], "the rank rows")
        lines = str(panel.content).splitlines()
        row = {line.split()[0]: line for line in lines if re.match(r"\s+\d\s", line)}
        assert row["1"].split()[1:] == ["430", "0.20s", "0.13s", "2.6x", "81ms", "815", "MiB", "0.50s", "ago",
                                        "straggler"]
        assert row["2"].split()[-3:] == ["ago", "hung", "63s"] and "63s ago" in row["2"]
        assert any(line.strip() == f"in {WHERE}" for line in lines), "a hung rank's place, on a line of its own"


# --- looks ----------------------------------------------------------------------------------------
@pytest.fixture
def distributed_app() -> CockpitApp:
    return CockpitApp(StaticSource(distributed_snapshot()), live=False, clock=lambda: FIXED_TIME)


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_with_ranks(snap_compare, distributed_app, size):
    assert snap_compare(distributed_app, terminal_size=SIZES[size], run_before=first_frame)


@pytest.mark.parametrize("size", SIZES)
def test_system_view_with_ranks(snap_compare, distributed_app, size):
    async def system_view(pilot) -> None:
        await first_frame(pilot)
        await pilot.press("3")
        await pilot.pause()
        pilot.app.redraw()
        await pilot.pause()

    assert snap_compare(distributed_app, terminal_size=SIZES[size], run_before=system_view)


# --- the notebook -----------------------------------------------------------------------------------
def test_the_notebook_strip_flags_the_straggler_and_the_hung_rank():
    state = distributed_state()
    view = CockpitView(lambda *args: None)
    view.refresh(state)
    assert view.ranks.layout.display != "none"
    assert plain(view.ranks.value) == f"ranks 0 ● 0.12s · 1 ▲ straggles 2.6x · 2 ✖ hung 63s in {WHERE} · 3 ● 0.12s"
    assert "color:#b35900;font-weight:600'>straggles 2.6x" in view.ranks.value  # the straggler in orange
    assert "color:#c62828;font-weight:600'>hung 63s" in view.ranks.value  # the hung rank in red
    # Live: the next list the run publishes redraws it.
    healed = copy.deepcopy(RANK_HEALTH)
    for row in healed:
        row.update(straggler=False, hung=False)
    state.apply(InfoUpdated(state.seq + 1, "rank_health", healed))
    view.refresh(state)
    assert "straggles" not in view.ranks.value and "hung" not in view.ranks.value


def test_the_notebook_hides_the_strip_in_a_one_process_run():
    state = RunState()
    state.load_snapshot(build_snapshot())
    view = CockpitView(lambda *args: None)
    view.refresh(state)
    assert view.ranks.layout.display == "none" and rank_strip_html(state.rank_health) == ""
    assert "cockpit-rank-rows" not in view.system.body.value


def test_the_notebook_system_section_has_a_row_per_rank():
    text = system_html(distributed_state(), now=FIXED_TIME)
    rows = re.findall(r"<tr>(.*?)</tr>", text)
    assert len(rows) == 5  # a header and four ranks
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in rows]
    assert cells[0] == ["rank", "iter", "step", "own (× median)", "data", "memory", "heartbeat", "state"]
    assert cells[2] == ["1", "430", "0.20s", "0.13s 2.6x", "81ms", "815.0 MB", "0.50s ago", "straggler"]
    assert cells[3][-2:] == ["63s ago", f"hung 63s in {WHERE}"]
