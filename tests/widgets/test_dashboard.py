"""The runs dashboard (``cockpit ls -i``) driven by Textual's pilot, on run folders written as runs write them."""

from __future__ import annotations

from pathlib import Path

from cockpit.widgets.tui.dashboard import DashboardApp
from cockpit.widgets.tui.dashboard.model import COLUMNS, MIN_NAME_WIDTH, fit_names, shorten
from cockpit.widgets.tui.dashboard.overlay import OverlayPlot, OverlayScreen

from .dashboard_fixtures import make_run


def runs(tmp_path: Path) -> tuple[Path, Path, Path]:
    parent = make_run(tmp_path / "cfg" / "20260101_000000", accuracy=(0.5, 0.75))
    fork = make_run(tmp_path / "cfg-fork-epoch_1" / "20260101_000100", losses=(0.7, 0.6), accuracy=(0.8,),
                    lineage={"parent": str(parent), "checkpoint": str(parent.parent / "epoch_1.pth"), "forked_at": 8})
    other = make_run(tmp_path / "other" / "20260101_000200", status="running", iters=4, live=True)
    return parent, fork, other


def table_text(app: DashboardApp) -> list[str]:
    table = app.query_one("DataTable")
    return [" | ".join(str(cell) for cell in table.get_row_at(index)) for index in range(table.row_count)]


async def test_rows_show_status_progress_best_metric_checkpoint_and_lineage(tmp_path):
    parent, fork, other = runs(tmp_path)
    app = DashboardApp(tmp_path, refresh_seconds=0.1)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        for _ in range(50):
            if "0.75" in " ".join(table_text(app)):
                break
            await pilot.pause(0.05)
        rows = table_text(app)
    assert len(rows) == 3
    assert "cfg/20260101_000000" in rows[0] and "finished" in rows[0] and "16/16" in rows[0]
    assert "accuracy/top1 0.75" in rows[0] and "epoch_2.pth" in rows[0]
    assert "cfg/20260101_000000 @ 8" in rows[1]
    assert "running ●" in rows[2] and "4/16" in rows[2]


async def test_space_selects_and_c_overlays_the_selected_runs(tmp_path):
    parent, fork, other = runs(tmp_path)
    app = DashboardApp(tmp_path, refresh_seconds=0.1)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.press("space", "down", "down", "space")
        assert app.selected == {parent.resolve(), other.resolve()}
        assert table_text(app)[0].startswith("✓")
        await pilot.press("c")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, OverlayScreen)
        assert screen.key == "train/loss"
        assert screen.query_one(OverlayPlot).drawn == ["cfg/20260101_000000", "other/20260101_000200"]
        await pilot.press("right_square_bracket")
        assert screen.key == "val/accuracy/top1"
        await pilot.press("escape")
        assert not isinstance(app.screen, OverlayScreen)


async def test_c_on_a_fork_overlays_it_with_its_parent(tmp_path):
    parent, fork, other = runs(tmp_path)
    app = DashboardApp(tmp_path, refresh_seconds=0.1)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.press("down", "c")
        await pilot.pause()
        drawn = app.screen.query_one(OverlayPlot).drawn
    assert drawn == ["cfg/20260101_000000", "cfg-fork-epoch_1/20260101_000100 (fork of cfg/20260101_000000 @ 8)"]


async def test_enter_attaches_to_a_live_run_and_explains_a_finished_one(tmp_path):
    parent, fork, other = runs(tmp_path)
    attached = []
    app = DashboardApp(tmp_path, refresh_seconds=0.1, attach=attached.append)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        assert attached == []
        assert any("finished" in str(note.message) for note in app._notifications)
        await pilot.press("down", "down", "enter")
        await pilot.pause()
    assert attached == [other.resolve()]


def test_long_run_names_are_cut_in_the_middle_so_every_column_fits():
    long = "digits_mnist_resnet_long_name-fork-epoch_1/20260101_000100"
    parent = "digits_mnist_resnet_long_name/20260101_000000 @ 8"
    rows = [("", "cfg/20260101_000200", "died", "16/16", "acc 0.5", "epoch_2.pth", "-"),
            ("", long, "finished", "16/16", "acc 0.8", "epoch_2.pth", parent)]
    assert fit_names(rows, 200) == rows  # room for all: nothing cut
    fitted = fit_names(rows, 100)
    widths = [max(len(header), *(len(row[i]) for row in fitted)) + 2 for i, header in enumerate(COLUMNS)]
    assert sum(widths) + 1 <= 100, fitted
    run, parent_cell = fitted[1][1], fitted[1][6]
    assert run.startswith("digits_mnist") and run.endswith("0101_000100") and "…" in run
    assert parent_cell.endswith("@ 8") and len(parent_cell) == MIN_NAME_WIDTH
    assert fitted[0] == rows[0]  # short names stay whole
    assert fitted[1][2:6] == rows[1][2:6]  # the other columns keep their text
    # Too narrow for everything: names stop at MIN_NAME_WIDTH (the table scrolls), never stubs.
    assert len(fit_names(rows, 40)[1][1]) == MIN_NAME_WIDTH


def test_shorten_keeps_both_ends():
    assert shorten("abcdefghij", 10) == "abcdefghij"
    assert shorten("abcdefghij", 7) == "abc…hij"
    assert shorten("abcdefghij", 2) == "a…"
