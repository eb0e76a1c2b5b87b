"""The one view model (``cockpit.viewstate``): decoding, dispatch, resyncs, downsampling, commands as data."""

from __future__ import annotations

import math

import pytest

from cockpit.events import (
    CheckpointRemoved,
    CheckpointSaved,
    CommandAccepted,
    CommandFinished,
    HooksChanged,
    InfoUpdated,
    LogRecorded,
    ScalarUpdated,
    StageEntered,
    StageTimed,
    Status,
    StatusChanged,
    encode_event,
)
from cockpit.series import Series, downsample, downsample_by_step
from cockpit.viewstate import PARTS, CommandInfo, RunState

from .tui_fixtures import COMMANDS

SNAPSHOT = {"seq": 3, "name": "toy", "status": "running", "info": {"iter": 4, "max_iters": 10},
            "scalars": {"train/loss": {"steps": [0, 1], "values": [2.0, 1.5]}},
            "hooks": [["before_run", [["VERY_HIGH", 10, "RuntimeInfoHook"]]]],
            "hook_timings": {"before_run/RuntimeInfoHook": [1, 0.002]},
            "logs": [[1.0, "INFO", "hello"]], "checkpoints": [], "markers": []}


def loaded() -> RunState:
    state = RunState()
    state.load_snapshot(SNAPSHOT)
    state.take_changes()
    state.take_logs()
    return state


def test_every_event_kind_is_decoded_once_and_dispatched_on_its_class():
    state = loaded()
    events = [
        ScalarUpdated(4, "train/loss", 1.25, 2),
        InfoUpdated(5, "iter", 5),
        StageEntered(6, "before_run"),
        StageTimed(7, "before_run", (("RuntimeInfoHook", 0.004),)),
        HooksChanged(8, (("after_run", (("LOW", 70, "LoggerHook"),)),)),
        LogRecorded(9, "WARNING", "careful", 2.0),
        CheckpointSaved(10, "/w/iter_2.pth", 0, 2),
        StatusChanged(11, "paused", "asked to"),
        CommandAccepted(12, "c1", "save", ()),
        CommandFinished(13, "c1", "save", "applied", "saved /w/iter_3.pth"),
        CheckpointRemoved(14, "/w/iter_2.pth", "rotation"),
    ]
    # What the channel carries: encoded dicts, and one kind this version does not know (skipped).
    state.receive([encode_event(e) for e in events[:5]] + [{"t": "FromTheFuture", "seq": 9}]
                  + [encode_event(e) for e in events[5:]])
    assert state.scalars["train/loss"].steps == [0, 1, 2] and state.scalar("train/loss") == 1.25
    assert state.info["iter"] == 5 and state.stage == "before_run"
    assert state.hook_timings[("before_run", "RuntimeInfoHook")] == [2, pytest.approx(0.006)]
    assert state.hooks == (("after_run", (("LOW", 70, "LoggerHook"),)),)
    assert state.take_logs() == [(2.0, "WARNING", "careful")]
    assert state.status == Status.PAUSED and isinstance(state.status, Status) and state.status_detail == "asked to"
    assert state.requests["c1"] == {"id": "c1", "name": "save", "args": (), "outcome": "applied",
                                    "message": "saved /w/iter_3.pth"}
    assert [o["name"] for o in state.take_outcomes()] == ["save"] and state.take_outcomes() == []
    # The run deleted the checkpoint: its row goes, and the view never looked at the disk.
    assert state.checkpoints == [] and state.removed_checkpoints == [("/w/iter_2.pth", "rotation")]
    assert state.seq == 14 and not state.needs_snapshot
    assert state.take_changes() == PARTS - {"markers", "commands", "system"}
    # The system samples (once a second) touch only their own part: no table redraws for them.
    state.receive([encode_event(InfoUpdated(15, "system", {"samples": 1}))])
    assert state.take_changes() == {"system"} and state.info["system"] == {"samples": 1}


def test_a_snapshot_replaces_everything_and_repeats_no_log_line():
    state = loaded()
    state.apply(ScalarUpdated(4, "train/acc", 0.5, 2))
    state.apply(CheckpointRemoved(5, "/w/gone.pth", "rotation"))
    state.load_snapshot({**SNAPSHOT, "seq": 20, "status": "finished",
                         "logs": [[1.0, "INFO", "hello"], [3.0, "INFO", "next"]]})
    assert set(state.scalars) == {"train/loss"} and state.removed_checkpoints == []
    assert state.seq == 20 and state.ended and state.snapshots == 2
    assert [m for _, _, m in state.take_logs()] == ["next"]
    assert [m for _, _, m in state.logs] == ["hello", "next"]
    # The client's resync after a gap is a pseudo-event holding the snapshot.
    state.receive([{"t": "Snapshot", "seq": 0, "snapshot": {**SNAPSHOT, "seq": 30}}])
    assert state.seq == 30 and state.status == Status.RUNNING and state.snapshots == 3


def test_an_outcome_that_went_out_while_a_snapshot_was_taken_still_counts_once():
    # A live resume reloads the hub ("resynced"): the view takes a new snapshot, and the resume's
    # CommandFinished, sent meanwhile, arrives with a seq the snapshot already covers. A snapshot
    # holds no outcomes, so the outcome must not be dropped with the events it does hold.
    state = loaded()
    state.apply(CommandAccepted(4, "c9", "resume", ("epoch_1.pth",)))
    state.apply(InfoUpdated(5, "resynced", True))
    assert state.needs_snapshot
    state.load_snapshot({**SNAPSHOT, "seq": 9})
    state.apply(ScalarUpdated(6, "train/loss", 9.0, 9))  # the snapshot holds it: skipped
    state.apply(CommandFinished(7, "c9", "resume", "applied", "resumed from epoch_1.pth"))
    assert state.requests["c9"]["outcome"] == "applied"
    assert [o["message"] for o in state.take_outcomes()] == ["resumed from epoch_1.pth"]
    state.apply(CommandFinished(7, "c9", "resume", "applied", "resumed from epoch_1.pth"))  # again: once
    assert state.take_outcomes() == [] and len(state.outcomes) == 1


def test_a_gap_in_the_sequence_asks_for_a_snapshot():
    state = loaded()
    state.apply(ScalarUpdated(4, "train/loss", 1.0, 2))
    assert not state.needs_snapshot
    state.apply(ScalarUpdated(3, "train/loss", 9.0, 9))  # already in: skipped
    assert state.scalars["train/loss"].values[-1] == 1.0
    state.apply(ScalarUpdated(7, "train/loss", 0.5, 3))  # 5 and 6 were lost
    assert state.needs_snapshot and state.seq == 7
    state.load_snapshot({**SNAPSHOT, "seq": 7})
    assert not state.needs_snapshot
    # A hub reloaded from a checkpoint (a live resume) replaced its histories: a snapshot too.
    state.apply(InfoUpdated(8, "resynced", True))
    assert state.needs_snapshot and "resynced" not in state.info


def test_the_sender_notes_a_command_and_a_late_note_undoes_nothing():
    state = loaded()
    state.note_request("1", "save", ())
    assert state.last_command["outcome"] == "queued" and state.pending_requests() == ["1"]
    state.apply(CommandFinished(4, "1", "save", "applied", "ok"))
    state.note_request("1", "save", ())
    assert state.requests["1"]["outcome"] == "applied" and state.pending_requests() == []
    state.record_outcome("2", "val", "rejected", "no validation")  # asked for after a resync
    assert state.last_command["outcome"] == "rejected" and "outcomes" in state.take_changes()


def test_a_status_this_version_does_not_know_is_kept_as_the_run_says_it():
    state = RunState()
    assert state.status == Status.CONNECTING and not state.ended
    state.apply(StatusChanged(1, "warming_up"))
    assert state.status == "warming_up" and not state.ended
    state.set_status(Status.DIED, "the run's process is gone")
    assert state.ended


def test_the_command_list_is_read_as_data():
    state = loaded()
    hook_command = {"name": "export", "label": "Export…", "key": "e", "description": "write ONNX",
                    "args": [{"name": "file", "help": "where to write it", "kind": "text", "choices": [],
                              "optional": False}],
                    "usage": "export <file>", "confirm": "Overwrite {0}?", "while_paused": False, "when": "live"}
    state.apply(InfoUpdated(4, "commands", [*COMMANDS, hook_command]))
    assert "commands" in state.take_changes()
    export = state.command("export")
    assert export.title == "Export" and export.required[0].help == "where to write it"
    assert export.question(["a.onnx"]) == "Overwrite a.onnx?" and not export.while_paused
    resume = state.command("resume")
    assert resume.takes_checkpoint and resume.question(["/w/e.pth"]).startswith("Resume from /w/e.pth?")
    assert state.command("val").question([]) is None and state.command("nope") is None
    stop = state.command("stop")
    assert stop.required == () and stop.args[0].choices == ("nosave",)
    pause, cont = state.command("pause"), state.command("continue")
    assert pause.key == cont.key == "p"
    assert pause.offered(Status.RUNNING) and not cont.offered(Status.RUNNING)
    assert cont.offered(Status.PAUSED) and not pause.offered(Status.PAUSED)
    assert all(c.offered(s) for c in (resume, stop) for s in Status)


def test_an_older_run_describes_arguments_by_name_only():
    old = CommandInfo.from_dict({"name": "stop", "description": "stop", "args": ["[nosave]"]})
    assert old.label == "Stop" and old.key is None and old.when == "live" and old.confirm is None
    assert old.args[0].optional and old.required == ()
    resume = CommandInfo.from_dict({"name": "resume", "description": "resume", "args": ["path|latest|best"]})
    assert resume.required[0].kind == "text" and resume.required[0].help == "path|latest|best"


def test_downsampling_keeps_spikes():
    steps = list(range(100_000))
    values = [1.0] * 100_000
    values[31_337], values[77_777] = 50.0, -20.0
    xs, ys = (a.tolist() for a in downsample(steps, values, max_points=800))
    assert len(xs) <= 800 and xs == sorted(xs)
    assert max(ys) == 50.0 and min(ys) == -20.0
    assert xs[ys.index(50.0)] == 31_337
    # Folded points (from a long run's history) carry their own minimum and maximum.
    xs, ys = downsample([10, 20], [0.5, 0.7], [3.0, 0.9], max_points=800)
    assert xs.tolist() == [10, 10, 20, 20] and ys.tolist() == [0.5, 3.0, 0.7, 0.9]
    # Short series pass as they are; non-finite values never win a bucket.
    assert downsample([1, 2], [0.5, 0.25], max_points=10)[1].tolist() == [0.5, 0.25]
    xs, ys = downsample(list(range(100)), [math.nan] * 50 + [2.0] * 50, max_points=10)
    assert len(xs) and all(y == 2.0 for y in ys)


def test_downsampling_by_step_keeps_the_points_before_the_last_bucket_as_the_series_grows():
    values = [math.sin(step * 0.37) + (40.0 if step == 777 else 0.0) for step in range(5000)]
    xs, ys = (a.tolist() for a in downsample_by_step(range(5000), values, origin=0, width=50, max_points=200))
    assert len(xs) <= 200 and xs == sorted(xs) and max(ys) == 40.0 + math.sin(777 * 0.37)
    # Each bucket's low and high, as plain downsampling into the same buckets gives them.
    assert (xs, ys) == tuple(a.tolist() for a in downsample(range(5000), values, max_points=200))
    for more in (1, 7, 49):  # new points: only the last bucket's points may change
        grown = values + [5.0] * more
        gx, gy = (a.tolist() for a in downsample_by_step(range(5000 + more), grown, origin=0, width=50,
                                                         max_points=200))
        kept = sum(1 for x in xs if x < 4950)
        assert (gx[:kept], gy[:kept]) == (xs[:kept], ys[:kept])
        assert max(gy) == max(ys) and 5.0 in gy[-2:]
    # Few points pass as they are; folded ones as their low, then their high.
    assert downsample_by_step([1, 2], [0.5, 0.25], origin=0, width=10, max_points=10)[1].tolist() == [0.5, 0.25]
    xs, ys = downsample_by_step([10, 20], [0.5, 0.7], [3.0, 0.9], origin=0, width=10, max_points=10)
    assert xs.tolist() == [10, 10, 20, 20] and ys.tolist() == [0.5, 3.0, 0.7, 0.9]


def test_a_series_stays_bounded_keeps_its_spike_and_follows_a_jump_back():
    series = Series(limit=1000)
    for step in range(60_000):
        series.append(step, 9.0 if step == 12_345 else 1.0)
    assert len(series) <= 1000 and max(series.maxs) == 9.0 and min(series.mins) == 1.0
    assert series.steps[0] == 0 and series.steps[-1] == 59_999 and series.steps == sorted(series.steps)
    series.append(50_000, 2.0)  # a live resume went back to iteration 50,000
    assert series.steps[-1] == 50_000 and series.last == 2.0 and all(s < 50_000 for s in series.steps[:-1])
    loaded_whole = Series.from_snapshot({"steps": list(range(5000)), "values": [1.0] * 5000}, limit=1000)
    assert len(loaded_whole) <= 1000


def test_a_hooks_share_is_of_an_iterations_time_even_once_the_time_series_is_folded():
    """Bug: the share divided a hook's total by the sum of the train/time points; once the series was
    folded (each point the mean of many iterations) that sum undercounted, and the shares crept up
    past 100% on long runs. A hook's share is its mean time per call over the mean iteration time,
    the mean weighted by the iterations each point covers."""
    snapshot = dict(SNAPSHOT,
                    hooks=[["after_train_iter", [["NORMAL", 50, "IterTimerHook"]]],
                           ["after_run", [["LOW", 70, "LoggerHook"]]]],
                    hook_timings={"after_train_iter/IterTimerHook": [10_000, 10_000 * 0.002],
                                  "after_run/LoggerHook": [1, 0.5]},
                    # 9,900 iterations folded into 99 points of 100 (0.02 s each), then 100 of 0.02 s.
                    scalars={"train/time": {"steps": [*range(99, 9_900, 100), *range(9_900, 10_000)],
                                            "values": [0.02] * 199}})
    state = RunState()
    state.load_snapshot(snapshot)
    rows = {row["hook"]: row for row in state.hook_rows()}
    assert rows["IterTimerHook"]["share"] == pytest.approx(10.0)  # 2 ms of a 20 ms iteration
    assert rows["IterTimerHook"]["mean_ms"] == pytest.approx(2.0)
    assert math.isnan(rows["LoggerHook"]["share"])  # not a per-iteration stage
    state.load_snapshot(dict(snapshot, scalars={}))
    assert math.isnan(state.hook_rows()[0]["share"])  # no iteration time yet: no share
