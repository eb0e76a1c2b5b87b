"""The terminal cockpit's overview, system and all-scalars panels, each hosted alone in a small app and fed
a ``RunState`` built from a deterministic hub snapshot (``tui_fixtures``) and events.

Behaviour through ``Pilot`` (keys, the filter, paging, opening a plot); looks through SVG snapshots at
80x24 and 160x45 (``pytest tests/widgets/test_panels.py --snapshot-update`` accepts a meant change,
after looking at ``snapshot_report.html``).
"""

from __future__ import annotations

import copy
import math
import os
import re
import threading
import time
from typing import Any

import pytest
from cockpit.widgets.tui.panels import OverviewPanel, ScalarGrid, SystemPanel
from cockpit.widgets.tui.panels.overview import best_point, run_facts, scalar_rows
from cockpit.widgets.tui.panels.scalars import grid_shape, matches
from cockpit.widgets.tui.panels.system import bars, data_wait, system_rows
from cockpit.widgets.tui.parts.plots import ScalarPlot
from support import wait_for
from textual.app import App, ComposeResult
from textual.widget import Widget

from cockpit.hub import MessageHub
from cockpit.series import Series
from cockpit.system_monitor import SystemMonitor
from cockpit.viewstate import RunState

from .test_tui_snapshots import utc  # noqa: F401 - the fixture that pins the time zone
from .tui_fixtures import CHECKPOINT_DIR, accuracy_at, build_snapshot, until

SIZES = {"80x24": (80, 24), "160x45": (160, 45)}
GiB = 1 << 30

#: The settings a run publishes as its ``config`` runtime info (see HANDOFF.md).
CONFIG = {"model": "DigitsNet", "optimizer": "AdamW", "lr": 0.003, "batch_size": 64, "max_epochs": 10,
          "max_iters": 1000, "by_epoch": True, "val_interval": 1}
LINEAGE = {"parent": "/tmp/cockpit-snapshot-fixture/work_dirs/digits/20251231_180000",
           "checkpoint": "/tmp/cockpit-snapshot-fixture/work_dirs/digits/20251231_180000/epoch_3.pth",
           "forked_at": 300}


def system_entry(samples: int = 60, gpus: int = 1) -> dict[str, Any]:
    """A ``SystemMonitor`` entry with ``samples`` samples of made-up, fixed load (no clock, no machine)."""
    steps = range(samples)
    history = {
        "process_cpu": [round(95 + 20 * math.sin(i / 5), 1) for i in steps],
        "process_rss": [int(1.2 * GiB + i * 4 * (1 << 20)) for i in steps],
        "machine_cpu": [round(55 + 25 * math.sin(i / 7), 1) for i in steps],
        "machine_memory": [round(41 + i / 30, 1) for i in steps],
    }
    devices = []
    for index in range(gpus):
        history[f"gpu{index}_util"] = [round(80 + 15 * math.sin(i / 3 + index), 1) for i in steps]
        history[f"gpu{index}_memory"] = [62.5] * samples
        devices.append({"index": index, "name": "NVIDIA A100-SXM4-40GB", "util": history[f"gpu{index}_util"][-1],
                        "memory_used": 25 * GiB, "memory_total": 40 * GiB})
    return {"time": 1_767_261_600.0, "interval": 1.0, "samples": samples,
            "process": {"pid": 4242, "cpu": history["process_cpu"][-1], "rss": history["process_rss"][-1],
                        "threads": 14},
            "machine": {"cpu": history["machine_cpu"][-1], "cores": 8, "memory": history["machine_memory"][-1],
                        "memory_used": int(13.1 * GiB), "memory_total": 32 * GiB},
            "gpus": devices, "gpu_note": "" if gpus else "no NVIDIA driver answered (Driver Not Loaded)",
            "history": history}


def _series(steps: list[int], values: list[float]) -> dict[str, Any]:
    return {"steps": steps, "values": values}


def panel_snapshot(**info: Any) -> dict[str, Any]:
    """The fixture run with the settings, lineage and system info a run would publish, and a dozen scalars."""
    snapshot = copy.deepcopy(build_snapshot())
    snapshot["info"].update({"config": CONFIG, "lineage": LINEAGE, "system": system_entry(), **info})
    steps = list(range(430))
    val_steps = [100, 200, 300, 400]
    snapshot["scalars"].update({
        "train/grad_norm": _series(steps, [3.0 * math.exp(-i / 150) + 0.4 + 0.2 * math.sin(i) for i in steps]),
        "train/loss_cls": _series(steps, [1.5 * math.exp(-i / 80) + 0.05 for i in steps]),
        "train/loss_reg": _series(steps, [0.6 * math.exp(-i / 120) + 0.07 for i in steps]),
        "train/memory": _series(steps, [812.0 + (i % 100) * 0.5 for i in steps]),
        "val/loss": _series(val_steps, [0.41, 0.27, 0.22, 0.24]),
        "val/accuracy/top5": _series(val_steps, [0.93, 0.975, 0.988, 0.991]),
        "val/time": _series(val_steps, [0.031, 0.031, 0.030, 0.031]),
    })
    return snapshot


def loaded_state(**info: Any) -> RunState:
    state = RunState()
    state.load_snapshot(panel_snapshot(**info))
    return state


class PanelApp(App[None]):
    """One panel on a screen of its own, fed ``state`` on a timer as the cockpit does (under a lock)."""

    def __init__(self, panel: Widget, state: RunState, lock: threading.Lock | None = None) -> None:
        super().__init__()
        self.panel = panel
        self.state = state
        self.lock = lock or threading.Lock()

    def compose(self) -> ComposeResult:
        yield self.panel

    def on_mount(self) -> None:
        if self.AUTO_FOCUS:
            self.panel.focus()
        self.set_interval(0.1, self.tick)

    def tick(self) -> None:
        with self.lock:
            self.panel.show(self.state)


def grid_app(state: RunState | None = None) -> PanelApp:
    lock = threading.Lock()
    return PanelApp(ScalarGrid(lock=lock), state or loaded_state(), lock)


async def drawn(pilot) -> None:
    """Let the panel lay out, then draw it (not leaving it to the timer); a grid, until its cells show
    scalars (on a loaded machine the layout that mounts them can take several frames)."""
    await pilot.pause()
    await pilot.pause()
    pilot.app.tick()
    await pilot.pause()
    panel = pilot.app.panel
    if isinstance(panel, ScalarGrid) and panel.display and panel.is_on_screen:
        deadline = time.monotonic() + 30
        while not any(cell.display and cell.keys for cell in panel.query("#scalars-grid > ScalarPlot")):
            assert time.monotonic() < deadline, "the grid never drew its cells"
            await pilot.pause(0.05)
            pilot.app.tick()
        await pilot.pause()


# --- the overview ---------------------------------------------------------------------------------
def test_overview_facts_show_settings_folder_lineage_and_best_checkpoint():
    facts = dict(run_facts(loaded_state()))
    assert facts["run"] == "digits_20260101_094726 (seed 0)"
    assert facts["status"] == "running · iter 430/1000 (epoch 5/10) · since 2026-01-01 09:47"
    assert facts["model"] == "DigitsNet"
    assert re.fullmatch(r"AdamW · lr 0\.003, now 0\.00\d+ · batch 64", facts["optimizer"])  # set, and now
    assert facts["schedule"] == "10 epochs (1000 iters), val every 1 epoch"
    assert facts["folder"] == str(CHECKPOINT_DIR / "20260101_094726")
    # The parent sits in the same work dir: its name is enough.
    assert facts["forked from"] == "20251231_180000 at iter 300 (epoch_3.pth)"
    assert facts["best ckpt"] == f"best_accuracy_top1_epoch_4.pth ({accuracy_at(4):.4g})"


def test_overview_without_published_settings_shows_what_every_run_has():
    state = loaded_state()
    for key in ("config", "lineage"):
        del state.info[key]
    state.info["resumed_from"] = str(CHECKPOINT_DIR / "epoch_3.pth")
    facts = dict(run_facts(state))
    assert facts["model"] == "-"
    assert facts["schedule"] == "10 epochs (1000 iters)"  # from max_epochs and max_iters
    assert facts["optimizer"].startswith("now ")  # the train/lr scalar
    assert facts["resumed from"] == "epoch_3.pth"


def test_best_is_lowest_for_losses_highest_for_metrics_and_none_for_the_rest():
    rows = {key: (last, best) for key, last, _, best in scalar_rows(loaded_state())}
    assert rows["val/loss"] == (0.24, (0.22, 300))
    assert rows["val/accuracy/top5"][1] == (0.991, 400)
    assert rows["val/accuracy/top1"][1] == (rows["val/accuracy/top1"][0], 400)
    loss_best = rows["train/loss"][1]
    assert loss_best[0] == min(Series.from_snapshot(build_snapshot()["scalars"]["train/loss"]).values)
    for key in ("train/lr", "train/time", "train/memory", "train/grad_norm", "val/time"):
        assert rows[key][1] is None, key
    # Training first, then validation.
    keys = list(rows)
    assert keys.index("train/time") < keys.index("val/accuracy/top1")


def test_best_counts_the_lowest_value_inside_a_folded_point():
    series = Series(limit=16)
    for step in range(40):
        series.append(step, 5.0 if step != 3 else 0.5)  # the best is early, folded away later
    assert len(series) < 40
    assert best_point("train/loss", series)[0] == 0.5


async def test_overview_follows_new_values_and_redraws_only_on_change():
    state = loaded_state()
    app = PanelApp(OverviewPanel(), state)
    async with app.run_test(size=(120, 40)) as pilot:
        await drawn(pilot)
        table = app.query_one("#overview-scalars")
        assert table.row_count == len(state.scalars)
        before = table.get_row("val/loss")
        calls = []
        original = table.clear
        table.clear = lambda *a, **k: calls.append(1) or original(*a, **k)
        app.tick()
        assert not calls, "nothing changed, yet the table was rebuilt"
        with app.lock:
            state.receive([{"t": "ScalarUpdated", "seq": state.seq + 1, "key": "val/loss", "value": 0.19,
                            "step": 500}])
        await until(pilot, lambda: table.get_row("val/loss") != before, "the new best val/loss")
        _, last, best, at, _ = table.get_row("val/loss")
        assert (str(last), str(best), str(at)) == ("0.19", "0.19", "500")


# --- the system panel -----------------------------------------------------------------------------
def test_bars_use_a_fixed_scale_and_keep_the_newest_at_the_right():
    assert bars([0, 50, 100], 5, 100.0) == ["  ▄█".rjust(5)]
    assert bars([100, 100], 2, 100.0, height=2) == ["██", "██"]
    assert bars([25], 1, 100.0, height=2) == [" ", "▄"]
    assert bars(range(100), 3, 100.0) == ["███"]  # only the last three
    assert bars([50.5], 1, 100.0) == ["▄"]


def test_system_rows_and_the_data_wait_share():
    state = loaded_state()
    rows = system_rows(state)
    groups = [group for group, *_ in rows if group]
    assert groups == ["training process (pid 4242)", "machine (8 cores)", "GPU 0 · NVIDIA A100-SXM4-40GB"]
    values = {(label, value) for _, label, value, *_ in rows}
    assert ("memory", "25 GiB of 40 GiB (62%)") in values
    assert ("memory", "1.43 GiB · 14 threads") in values
    assert ("CPU", "81% of a core") in values
    share, shares = data_wait(state, 30)
    # tui_fixtures: data_time about 2 ms of a 70 ms iteration.
    assert 2.5 < share < 3.2
    assert len(shares) == 30


def test_system_panel_without_samples_or_gpu_says_why():
    state = loaded_state(system=system_entry(gpus=0))
    app_state = loaded_state()
    del app_state.info["system"]
    assert system_rows(app_state) == []
    assert not any(group.startswith("GPU") for group, *_ in system_rows(state))


def test_system_rows_read_what_a_real_monitor_publishes():
    hub = MessageHub("run")
    hub.update_scalars({"train/data_time": 0.01, "train/time": 0.04}, step=0)
    with SystemMonitor(hub, interval=0.05):
        wait_for(lambda: (hub.get_info("system") or {}).get("samples", 0) >= 2, what="two samples")
    state = RunState()
    state.load_snapshot(hub.snapshot())
    rows = system_rows(state)
    assert rows[0][0] == f"training process (pid {os.getpid()})"
    assert [label for _, label, *_ in rows] == ["CPU", "memory", "CPU", "memory"]  # no GPU here
    assert all(len(history) >= 2 for *_, history, _ in rows)
    assert data_wait(state, 10) == (25.0, [25.0])


async def test_system_panel_redraws_on_a_new_sample():
    state = loaded_state()
    app = PanelApp(SystemPanel(), state)
    async with app.run_test(size=(120, 40)) as pilot:
        await drawn(pilot)
        panel = app.query_one(SystemPanel)
        assert "25 GiB of 40 GiB" in str(panel.render())
        sample = system_entry(samples=61)
        sample["gpus"][0]["memory_used"] = 30 * GiB
        with app.lock:
            state.receive([{"t": "InfoUpdated", "seq": state.seq + 1, "key": "system", "value": sample}])
        await until(pilot, lambda: "30 GiB of 40 GiB" in str(panel.render()), "the new sample")


# --- all scalars ----------------------------------------------------------------------------------
def test_filter_words_and_grid_shape():
    assert matches("val/accuracy/top1", "val top")
    assert not matches("train/loss", "val loss")
    assert matches("train/loss", "")
    assert grid_shape(80, 23) == (2, 2)
    assert grid_shape(160, 44) == (4, 4)
    assert grid_shape(20, 5) == (1, 1)


async def test_grid_pages_moves_opens_and_filters_with_keys():
    app = grid_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot)
        grid = app.query_one(ScalarGrid)
        keys = sorted(app.state.scalars)
        assert grid.page_size == 4 and grid.pages == math.ceil(len(keys) / 4)
        cells = list(grid.query(ScalarPlot))[:4]
        assert [c.keys for c in cells] == [[k] for k in keys[:4]]
        await pilot.press("right_square_bracket")
        assert grid.page == 1 and grid.highlighted == keys[4]
        assert [c.keys for c in cells] == [[k] for k in keys[4:8]]  # drawn at once, not at the next tick
        await pilot.press("pagedown", "pagedown", "pagedown")
        assert grid.page == grid.pages - 1
        await pilot.press("pageup")
        assert grid.page == grid.pages - 2
        await pilot.press("down", "right")
        assert grid.highlighted == keys[grid.page * 4 + 3]
        assert cells[3].has_class("-highlight") and not cells[0].has_class("-highlight")
        await pilot.press("enter")
        large = grid.query_one("#scalars-large", ScalarPlot)
        assert grid.opened == keys[grid.page * 4 + 3] and large.keys == [grid.opened] and large.display
        await pilot.press("enter")
        assert grid.opened is None
        await pilot.press("slash")
        await pilot.press(*"val acc")
        assert grid.matching == ["val/accuracy/top1", "val/accuracy/top5"]
        await pilot.press("enter")  # applies: the field closes, the grid has the keys again
        assert not grid.has_class("-filtering") and grid.has_focus
        assert [c.keys for c in cells[:2]] == [["val/accuracy/top1"], ["val/accuracy/top5"]]
        assert not cells[2].display  # the rest of the page stays blank
        await pilot.press("enter", "escape")  # opened, then back to the grid
        assert grid.opened is None and grid.query_text == "val acc"
        await pilot.press("escape")  # clears the filter
        assert grid.query_text == "" and len(grid.matching) == len(keys)


async def test_grid_a_click_highlights_a_plot_and_a_second_click_opens_it():
    app = grid_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot)
        grid = app.query_one(ScalarGrid)
        second = list(grid.query(ScalarPlot))[1]
        await pilot.click(second)
        assert grid.highlighted == second.keys[0] and grid.opened is None
        await pilot.click(second)
        assert grid.opened == second.keys[0]


async def test_grid_keys_typed_into_the_filter_are_not_commands():
    app = grid_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot)
        grid = app.query_one(ScalarGrid)
        await pilot.press("slash", "right_square_bracket", "slash")
        assert grid.page == 0 and grid.query_text == "]/"
        await pilot.press("escape")
        assert grid.query_text == "" and not grid.has_class("-filtering")


async def test_grid_takes_new_scalars_and_redraws_only_cells_that_changed():
    state = loaded_state()
    app = grid_app(state)
    async with app.run_test(size=(160, 45)) as pilot:
        await drawn(pilot)
        grid = app.query_one(ScalarGrid)
        assert grid.page_size == 16 and grid.pages == 1
        cells = [c for c in grid.query("#scalars-grid > ScalarPlot") if c.display]
        draws: list[str] = []
        for cell in cells:
            original = cell.draw
            cell.draw = lambda s, cell=cell, original=original: draws.append(cell.keys[0]) or original(s)
        app.tick()
        assert draws == []
        with app.lock:
            state.receive([{"t": "ScalarUpdated", "seq": state.seq + 1, "key": "train/loss", "value": 0.2,
                            "step": 430}])
        await until(pilot, lambda: "train/loss" in draws, "train/loss redrawn")
        app.tick()
        assert set(draws) == {"train/loss"}, "cells whose scalar did not change were redrawn"
        with app.lock:
            state.receive([{"t": "ScalarUpdated", "seq": state.seq + 1, "key": "val/f1", "value": 0.9,
                            "step": 430}])
        await until(pilot, lambda: any(c.keys == ["val/f1"] and c.display for c in grid.query(ScalarPlot)),
                    "the new scalar in the grid")


def _drawn_anything(panel: Widget) -> bool:
    if isinstance(panel, ScalarGrid):
        return any(cell.keys for cell in panel.query(ScalarPlot))
    if isinstance(panel, OverviewPanel):
        return panel.query_one("#overview-scalars").row_count > 0
    return bool(str(panel.render()))


@pytest.mark.parametrize("make", [OverviewPanel, SystemPanel, ScalarGrid])
async def test_a_hidden_panel_draws_nothing_until_it_is_shown(make):
    from textual.widgets import Static, TabbedContent, TabPane

    class Tabs(PanelApp):
        AUTO_FOCUS = None  # focus on the panel would show its tab

        def compose(self) -> ComposeResult:
            with TabbedContent():
                with TabPane("first", id="first"):
                    yield Static("first")
                with TabPane("panel", id="panel"):
                    yield self.panel

    app = Tabs(make(), loaded_state())
    async with app.run_test(size=(100, 30)) as pilot:
        await drawn(pilot)
        assert not _drawn_anything(app.panel), "drawn while hidden"
        app.query_one(TabbedContent).active = "panel"
        await until(pilot, lambda: _drawn_anything(app.panel), "the panel drawn once shown")


# --- looks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
def test_overview_looks(snap_compare, size):
    assert snap_compare(PanelApp(OverviewPanel(), loaded_state()), terminal_size=SIZES[size], run_before=drawn)


@pytest.mark.parametrize("size", SIZES)
def test_system_looks(snap_compare, size):
    assert snap_compare(PanelApp(SystemPanel(), loaded_state()), terminal_size=SIZES[size], run_before=drawn)


@pytest.mark.parametrize("size", SIZES)
def test_system_without_gpu_looks(snap_compare, size):
    state = loaded_state(system=system_entry(gpus=0))
    assert snap_compare(PanelApp(SystemPanel(), state), terminal_size=SIZES[size], run_before=drawn)


@pytest.mark.parametrize("size", SIZES)
def test_all_scalars_looks(snap_compare, size):
    assert snap_compare(grid_app(), terminal_size=SIZES[size], run_before=drawn)


@pytest.mark.parametrize("size", SIZES)
def test_all_scalars_opened_looks(snap_compare, size):
    async def opened(pilot) -> None:
        await drawn(pilot)
        await pilot.press("down", "enter")
        await pilot.pause()

    assert snap_compare(grid_app(), terminal_size=SIZES[size], run_before=opened)
