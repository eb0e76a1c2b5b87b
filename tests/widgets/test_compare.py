"""``compare(runs)`` (the notebook's ``Cockpit.compare``): runs overlaid from their folders."""

from __future__ import annotations

import json

import pytest
from cockpit.widgets.notebook import Cockpit
from cockpit.widgets.notebook.compare import compare
from support import wait_for

from .dashboard_fixtures import make_run


@pytest.fixture
def family(tmp_path):
    parent = make_run(tmp_path / "cfg" / "20260101_000000", losses=(1.0, 0.8, 0.6, 0.5), accuracy=(0.5, 0.75))
    fork = make_run(tmp_path / "cfg-fork-epoch_1" / "20260101_000100", losses=(0.7, 0.6), accuracy=(0.8,),
                    lineage={"parent": str(parent), "checkpoint": str(parent.parent / "epoch_1.pth"), "forked_at": 8})
    return parent, fork


def test_compare_overlays_each_run_in_one_colour_and_names_the_forks_parent(family):
    parent, fork = family
    figure = compare([parent, fork])
    assert [trace.name for trace in figure.data] == [
        "cfg/20260101_000000", "cfg/20260101_000000",
        "cfg-fork-epoch_1/20260101_000100 (fork of cfg/20260101_000000 @ 8)",
        "cfg-fork-epoch_1/20260101_000100 (fork of cfg/20260101_000000 @ 8)"]
    parent_loss, parent_accuracy, fork_loss, fork_accuracy = figure.data
    assert list(parent_loss.y) == [1.0, 0.8, 0.6, 0.5] and list(parent_loss.x) == [4, 8, 12, 16]
    assert list(parent_accuracy.y) == [0.5, 0.75] and list(parent_accuracy.x) == [16, 16]
    assert list(fork_loss.y) == [0.7, 0.6]
    assert parent_loss.line.color == parent_accuracy.line.color != fork_loss.line.color
    assert [parent_loss.showlegend, parent_accuracy.showlegend] == [True, False]
    assert [annotation.text for annotation in figure.layout.annotations] == ["train/loss", "val/accuracy/top1"]


def test_compare_takes_a_folder_of_runs_and_chosen_keys(family, tmp_path):
    figure = Cockpit.compare([tmp_path], keys=["train/lr"])  # the notebook's way to call it
    assert len(figure.data) == 2
    assert all(list(trace.y) == [0.1] * len(trace.y) for trace in figure.data)


def test_compare_names_a_missing_run(tmp_path):
    with pytest.raises(ValueError, match="nope is not a folder"):
        compare([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no run under"):
        compare([tmp_path / "empty"])


def test_a_live_runs_curves_grow_as_it_writes_and_the_follower_ends_with_the_run(family, tmp_path):
    parent, _ = family
    live = make_run(tmp_path / "live" / "20260101_000200", status="running", losses=(0.9,), accuracy=(), live=True)
    figure = compare([parent, live], keys=["train/loss"], refresh_seconds=0.05)
    follower = figure._cockpit_follower
    assert follower.live == [1]  # the finished parent is read once, not followed
    with open(live / "vis_data" / "scalars.json", "a") as file:
        file.write(json.dumps({"lr": 0.1, "loss": 0.7, "epoch": 1, "iter": 8, "step": 8}) + "\n")
        file.write('{"lr": 0.1, "loss": 0.6')  # a line being written: left for the next read
    wait_for(lambda: list(figure.data[1].y) == [0.9, 0.7], 30, "the live run's new point")
    assert list(figure.data[1].x) == [4, 8]
    assert list(figure.data[0].y) == [1.0, 0.8, 0.6, 0.5]  # the parent's curve is untouched
    record = json.loads((live / "run.json").read_text())
    (live / "run.json").write_text(json.dumps({**record, "status": "finished"}))
    with open(live / "vis_data" / "scalars.json", "a") as file:
        file.write(', "epoch": 1, "iter": 12, "step": 12}\n')  # its last line, written as it ended
    follower.join(30)
    assert not follower.is_alive(), "the follower outlived the last live run"
    assert list(figure.data[1].y) == [0.9, 0.7, 0.6]


def test_a_still_picture_starts_no_thread_and_closing_the_figure_stops_the_follower(tmp_path):
    live = make_run(tmp_path / "live" / "20260101_000200", status="running", live=True)
    assert not hasattr(compare([live], refresh_seconds=None), "_cockpit_follower")
    figure = compare([live], refresh_seconds=0.05)
    follower = figure._cockpit_follower
    wait_for(lambda: follower.passes >= 1, 30, "a first pass")
    figure.close()
    follower.join(30)
    assert not follower.is_alive()
