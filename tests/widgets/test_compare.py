"""``compare(runs)`` (the notebook's ``Cockpit.compare``): runs overlaid from their folders."""

from __future__ import annotations

import pytest
from cockpit.widgets.notebook import Cockpit
from cockpit.widgets.notebook.compare import compare

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
