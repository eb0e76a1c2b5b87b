"""The message hub and its scalar histories: statistics, bounded memory, events,
snapshots, persistence, isolation between hubs, ``current_hub()`` and threads."""

from __future__ import annotations

import collections
import io
import json
import math
import pickle
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from cockpit import Hook, MessageHub, current_hub
from cockpit import events as ev
from cockpit.history import ScalarHistory

# --- ScalarHistory: statistics -----------------------------------------------------------


def plain(obj):
    """``obj`` with its tensors (a history's tables) as nested lists, to compare states with ``==``."""
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, dict):
        return {key: plain(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [plain(value) for value in obj]
    return obj


def test_empty_history_is_nan_everywhere():
    history = ScalarHistory()
    for stat in (history.current(), history.mean(), history.global_mean(), history.min(), history.max()):
        assert math.isnan(stat)
    assert len(history) == 0 and history.count == 0
    assert history.last_step() is None
    assert history.series() == ([], [], [], [])


def test_statistics_of_a_short_history():
    history = ScalarHistory(window_size=3)
    for step, value in enumerate([1.0, 5.0, 2.0, 8.0, 3.0]):
        history.update(value, step * 10)
    assert history.current() == 3.0
    assert history.mean() == pytest.approx((2 + 8 + 3) / 3)  # the default window
    assert history.mean(2) == pytest.approx(5.5)
    assert history.mean(1) == 3.0
    assert history.mean(100) == pytest.approx(19 / 5)  # a window longer than the history
    assert history.global_mean() == pytest.approx(19 / 5)
    assert history.min() == 1.0 and history.max() == 8.0
    assert history.count == 5 and history.last_step() == 40
    assert history.series() == ([0, 10, 20, 30, 40], [1.0, 5.0, 2.0, 8.0, 3.0],
                                [1.0, 5.0, 2.0, 8.0, 3.0], [1.0, 5.0, 2.0, 8.0, 3.0])


def test_global_statistics_include_folded_values():
    history = ScalarHistory(window_size=4, recent_size=4, bucket_limit=4)
    for i in range(1000):
        history.update(float(i), i)
    assert history.count == 1000
    assert history.global_mean() == pytest.approx(499.5)
    assert history.min() == 0.0 and history.max() == 999.0
    assert history.current() == 999.0 and history.mean() == pytest.approx(997.5)
    steps, means, mins, maxs = history.series()
    assert steps[-4:] == [996, 997, 998, 999]
    assert min(mins) == 0.0 and max(maxs) == 999.0


# --- ScalarHistory: bounded memory --------------------------------------------------------

N_UPDATES = 1_000_000
RECENT, BUCKETS = 16, 32
SPIKE_STEP, DIP_STEP = 1234, 500_000


@pytest.fixture(scope="module")
def long_history():
    """A history fed a million values (1.0, but one spike and one dip), with the largest len() seen."""
    history = ScalarHistory(window_size=5, recent_size=RECENT, bucket_limit=BUCKETS)
    largest = 0
    update = history.update
    for step in range(N_UPDATES):
        value = 1e9 if step == SPIKE_STEP else -1e9 if step == DIP_STEP else 1.0
        update(value, step)
        if step % 1009 == 0:
            largest = max(largest, len(history))
    return history, largest


def test_memory_stays_bounded(long_history):
    history, largest = long_history
    # recent values + full buckets + the one bucket being filled
    bound = RECENT + BUCKETS + 1
    assert largest <= bound
    assert len(history) <= bound
    state = history.state_dict()
    assert len(state["recent"]) == RECENT
    assert len(state["buckets"]) <= BUCKETS
    assert history.count == N_UPDATES


def test_folding_loses_no_value(long_history):
    history, _ = long_history
    state = history.state_dict()
    state = plain(state)
    folded = state["buckets"] + ([state["pending"]] if state["pending"] else [])
    assert sum(b[3] for b in folded) + len(state["recent"]) == N_UPDATES
    total = sum(b[2] for b in folded) + sum(v for _, v in state["recent"])
    assert total == pytest.approx(history.total)
    assert history.global_mean() == pytest.approx((N_UPDATES - 2) / N_UPDATES)
    # Buckets tile the folded steps without gaps or overlap.
    assert folded[0][0] == 0
    for before, after in zip(folded, folded[1:], strict=False):
        assert after[0] == before[1] + 1
    assert state["recent"][0][0] == folded[-1][1] + 1


def test_series_covers_the_whole_run(long_history):
    history, _ = long_history
    steps, means, mins, maxs = history.series()
    assert len(steps) == len(means) == len(mins) == len(maxs) == len(history)
    assert steps == sorted(set(steps))  # strictly increasing
    assert steps[-1] == N_UPDATES - 1
    assert steps[-RECENT:] == list(range(N_UPDATES - RECENT, N_UPDATES))
    # The first point stands for the first bucket: near the start of the run.
    assert 0 <= steps[0] <= 2 * N_UPDATES // BUCKETS
    assert all(lo <= mean <= hi for mean, lo, hi in zip(means, mins, maxs, strict=True))


def test_spikes_survive_folding(long_history):
    history, _ = long_history
    steps, means, mins, maxs = history.series()
    assert max(maxs) == 1e9 and min(mins) == -1e9
    assert history.max() == 1e9 and history.min() == -1e9
    spike = maxs.index(1e9)
    assert steps[spike] >= SPIKE_STEP and (spike == 0 or steps[spike - 1] < SPIKE_STEP)
    dip = mins.index(-1e9)
    assert steps[dip] >= DIP_STEP > steps[dip - 1]
    assert maxs.count(1e9) == 1 and mins.count(-1e9) == 1


def test_long_history_state_dict_round_trips(long_history):
    history, _ = long_history
    copy = ScalarHistory.from_state_dict(history.state_dict())
    assert plain(copy.state_dict()) == plain(history.state_dict())
    assert copy.series() == history.series()
    assert len(copy) == len(history)


# --- ScalarHistory: persistence -----------------------------------------------------------

def test_state_dict_round_trips_exactly_and_continues_identically():
    original = ScalarHistory(window_size=3, recent_size=8, bucket_limit=4)
    for i in range(77):
        original.update(math.sin(i) * 10, i * 2)
    state = original.state_dict()
    restored = ScalarHistory.from_state_dict(state)
    assert plain(restored.state_dict()) == plain(state)
    assert restored.series() == original.series()
    for stat in ("current", "mean", "global_mean", "min", "max", "last_step"):
        assert getattr(restored, stat)() == getattr(original, stat)(), stat
    assert (restored.count, restored.total, restored.window_size) == (original.count, original.total, 3)
    for i in range(77, 200):
        original.update(float(i), i * 2)
        restored.update(float(i), i * 2)
    assert plain(restored.state_dict()) == plain(original.state_dict())


def test_a_history_is_saved_as_two_tables_not_as_thousands_of_small_objects():
    """torch.save calls back into Python for every object it pickles: 4,096 [step, value] lists
    are ~12k objects a history, the save of 15 full histories took ~0.3 s. As two float64 tensors a
    history pickles (and is checksummed) as two blocks of bytes; steps stay exact."""
    history = ScalarHistory(recent_size=4096, bucket_limit=64)
    big = 2**52 + 1  # a step beyond float32's range: float64 keeps it whole
    for i in range(5000):
        history.update(math.nan if i == 4999 else i / 3, big + i if i > 4000 else i)
    state = history.state_dict()
    assert state["recent"].dtype == torch.float64 and tuple(state["recent"].shape) == (4096, 2)
    assert state["buckets"].dtype == torch.float64 and state["buckets"].shape[1] == 6
    objects = []

    class Counting(pickle.Pickler):
        def persistent_id(self, obj):
            objects.append(obj)
            return None

    Counting(io.BytesIO()).dump(state)
    assert len(objects) < 100, len(objects)
    restored = ScalarHistory.from_state_dict(state)
    assert restored.last_step() == big + 4999 and isinstance(restored.last_step(), int)
    steps, means, _, _ = restored.series()
    expected_steps, expected_means, _, _ = history.series()
    assert steps == expected_steps and means[:-1] == expected_means[:-1] and math.isnan(means[-1])
    # The lists Cockpit saved before still load, into the same history.
    as_lists = dict(state, recent=state["recent"].tolist(), buckets=state["buckets"].tolist())
    assert ScalarHistory.from_state_dict(as_lists).series()[0] == expected_steps


@pytest.mark.parametrize(("key", "table", "message"), [
    ("recent", torch.zeros(3, 3, dtype=torch.float64), "recent must be a (n, 2) float64 tensor"),
    ("recent", torch.zeros(3, 2), "recent must be a (n, 2) float64 tensor"),  # float32
    ("recent", torch.tensor([[0.5, 1.0]], dtype=torch.float64), "a step must be a whole number"),
    ("recent", torch.tensor([[math.nan, 1.0]], dtype=torch.float64), "a step must be a whole number, got nan"),
    ("buckets", torch.zeros(2, 5, dtype=torch.float64), "buckets must be a (n, 6) float64 tensor"),
    ("recent", "not a table", "recent must be a (n, 2) float64 tensor or a list"),
])
def test_a_malformed_table_is_refused_with_what_is_wrong(key, table, message):
    history = ScalarHistory()
    history.update(1.0, 0)
    state = dict(history.state_dict(), **{key: table})
    with pytest.raises(ValueError, match=re.escape(message)):
        ScalarHistory.from_state_dict(state)


def test_state_dict_is_plain_and_loads_with_weights_only():
    history = ScalarHistory(recent_size=4, bucket_limit=2)
    for i in range(50):
        history.update(i * 0.5, i)
    empty = ScalarHistory()
    buffer = io.BytesIO()
    torch.save({"h": history.state_dict(), "empty": empty.state_dict()}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert plain(loaded["h"]) == plain(history.state_dict())
    assert ScalarHistory.from_state_dict(loaded["h"]).series() == history.series()
    restored_empty = ScalarHistory.from_state_dict(loaded["empty"])
    assert restored_empty.count == 0 and math.isnan(restored_empty.max())
    restored_empty.update(-3.0, 0)
    assert restored_empty.min() == restored_empty.max() == -3.0


# --- MessageHub: scalars ------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    torch.tensor(1.5), torch.tensor([1.5]), torch.tensor(1.5, requires_grad=True) * 1,
    torch.tensor(1.5, dtype=torch.float64), np.float32(1.5), np.float64(1.5), np.array([1.5]),
    np.array(1.5), 1.5,
], ids=lambda v: type(v).__name__)
def test_update_scalar_stores_floats(value):
    hub = MessageHub()
    with hub.subscribe() as sub:
        hub.update_scalar("x", value, step=0)
        (event,) = sub.poll()
    stored = hub.get_scalar("x").current()
    assert type(stored) is float and stored == 1.5
    assert isinstance(event, ev.ScalarUpdated)
    assert type(event.value) is float and event.value == 1.5


def test_numpy_float64_scalar_keeps_the_state_weights_only_loadable():
    """Bug: np.float64 subclasses float, so ``to_float`` passes it through unconverted and the
    hub's state (saved in every checkpoint) no longer loads with ``weights_only=True``."""
    hub = MessageHub()
    hub.update_scalar("val/f1", np.float64(0.5), step=0)  # e.g. an sklearn metric
    buffer = io.BytesIO()
    torch.save(hub.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["log_scalars"]["val/f1"]["recent"].tolist() == [[0, 0.5]]


def test_update_scalar_ints_become_floats():
    hub = MessageHub()
    hub.update_scalars({"a": 3, "b": np.int64(4), "c": torch.tensor(5)})
    for key, expected in (("a", 3.0), ("b", 4.0), ("c", 5.0)):
        value = hub.get_scalar(key).current()
        assert type(value) is float and value == expected


def test_step_defaults_to_the_iter_info():
    hub = MessageHub()
    hub.update_scalar("x", 1.0)
    assert hub.get_scalar("x").last_step() == 0  # no iter yet
    hub.update_info("iter", 7)
    with hub.subscribe() as sub:
        hub.update_scalar("x", 2.0)
        hub.update_scalar("x", 3.0, step=42)
        events = sub.poll()
    assert [e.step for e in events] == [7, 42]
    assert hub.get_scalar("x").series()[0] == [0, 7, 42]


def test_get_scalar_unknown_key_lists_the_known_ones():
    hub = MessageHub()
    with pytest.raises(KeyError, match="none yet"):
        hub.get_scalar("train/loss")
    hub.update_scalar("train/loss", 1.0)
    hub.update_scalar("val/acc", 0.5)
    with pytest.raises(KeyError) as info:
        hub.get_scalar("train/lr")
    message = str(info.value)
    assert "train/lr" in message and "train/loss" in message and "val/acc" in message
    assert set(hub.log_scalars) == {"train/loss", "val/acc"}


def test_window_size_is_the_hubs():
    hub = MessageHub(window_size=2)
    for value in (1.0, 2.0, 6.0):
        hub.update_scalar("x", value, step=0)
    assert hub.get_scalar("x").mean() == 4.0


# --- MessageHub: events -------------------------------------------------------------------

def test_every_change_is_one_event_with_consecutive_seq():
    hub = MessageHub("run")
    hub.update_scalar("warmup", 0.0)  # seq advances with no subscriber too
    assert hub.seq == 1
    with hub.subscribe() as sub:
        hub.update_scalar("loss", 0.5, step=1)
        hub.update_info("epoch", 2)
        hub.pop_info("epoch")
        hub.set_hooks_table((("before_run", (("NORMAL", 50, "MyHook"),)),))
        hub.enter_stage("before_run")
        hub.record_stage("before_run", [("MyHook", 0.25)])
        hub.log("INFO", "hello", when=123.0)
        hub.record_checkpoint("/tmp/epoch_1.pth", 1, 8)
        hub.add_marker("resume", 8, "epoch_1.pth")
        hub.set_status("running")
        events = sub.poll()
    assert [e.seq for e in events] == list(range(2, 12))
    assert hub.seq == 11
    assert [type(e) for e in events] == [
        ev.ScalarUpdated, ev.InfoUpdated, ev.InfoUpdated, ev.HooksChanged, ev.StageEntered, ev.StageTimed,
        ev.LogRecorded, ev.CheckpointSaved, ev.InfoUpdated, ev.StatusChanged]
    assert events[0] == ev.ScalarUpdated(2, "loss", 0.5, 1)
    assert events[1] == ev.InfoUpdated(3, "epoch", 2)
    assert events[2] == ev.InfoUpdated(4, "epoch", None)  # removed
    assert events[4] == ev.StageEntered(6, "before_run")
    assert events[5] == ev.StageTimed(7, "before_run", (("MyHook", 0.25),))
    assert events[6] == ev.LogRecorded(8, "INFO", "hello", 123.0)
    assert events[7] == ev.CheckpointSaved(9, "/tmp/epoch_1.pth", 1, 8)
    assert events[9] == ev.StatusChanged(11, "running", "")
    assert hub.stage == "before_run" and hub.status == "running"
    assert hub.hook_timings() == {("before_run", "MyHook"): (1, 0.25)}


def test_flooded_subscriber_drops_its_oldest_events():
    hub = MessageHub()
    small = hub.subscribe(maxlen=10)
    large = hub.subscribe()
    hub.update_scalar("x", 0.0, step=0)
    first = small.poll()
    assert [e.seq for e in first] == [1]
    for step in range(1, 101):  # seq 2..101
        hub.update_scalar("x", float(step), step=step)
    kept = small.poll()
    assert [e.seq for e in kept] == list(range(92, 102))
    assert kept[0].seq > first[-1].seq + 1  # the gap tells the view to re-sync from a snapshot
    assert [e.seq for e in large.poll()] == list(range(1, 102))  # other subscribers are unaffected
    assert small.poll() == []


def test_poll_limit_takes_the_oldest_first():
    hub = MessageHub()
    sub = hub.subscribe()
    for step in range(5):
        hub.update_scalar("x", 1.0, step=step)
    assert [e.seq for e in sub.poll(limit=2)] == [1, 2]
    assert [e.seq for e in sub.poll()] == [3, 4, 5]


def test_unsubscribe_stops_events():
    hub = MessageHub()
    closed, removed, kept = hub.subscribe(), hub.subscribe(), hub.subscribe()
    with hub.subscribe() as scoped:
        hub.update_info("a", 1)
    closed.close()
    hub.unsubscribe(removed)
    hub.update_info("b", 2)
    assert [e.key for e in closed.poll()] == ["a"]
    assert [e.key for e in removed.poll()] == ["a"]
    assert [e.key for e in scoped.poll()] == ["a"]
    assert [e.key for e in kept.poll()] == ["a", "b"]
    hub.unsubscribe(removed)  # twice is harmless
    hub.update_info("c", 3)
    assert closed.poll() == removed.poll() == scoped.poll() == []
    assert [e.key for e in kept.poll()] == ["c"]


# --- MessageHub: snapshot -----------------------------------------------------------------

def _is_plain(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def test_snapshot_content_and_seq():
    hub = MessageHub("exp", window_size=2)
    for step, value in enumerate([4.0, 1.0, 7.0, 2.0]):
        hub.update_scalar("train/loss", value, step=step)
    hub.update_info("iter", 3)
    hub.update_info("lr_tensor", torch.tensor(0.5))
    hub.update_info("work_dir", Path("/tmp/run"))
    hub.update_info("meta", {"classes": ("a", "b"), 1: np.float64(2.0)})
    hub.set_hooks_table((("before_run", (("NORMAL", 50, "H"),)),))
    hub.enter_stage("before_run")
    hub.record_stage("before_run", [("H", 0.5)])
    hub.log("WARNING", "careful", when=1.0)
    hub.record_checkpoint("/tmp/run/epoch_1.pth", 1, 4)
    hub.set_status("paused", "by user")
    snap = hub.snapshot()
    assert snap["seq"] == hub.seq
    assert snap["name"] == "exp"
    assert (snap["status"], snap["status_detail"]) == ("paused", "by user")
    loss = snap["scalars"]["train/loss"]
    assert loss["steps"] == [0, 1, 2, 3]
    assert loss["values"] == loss["mins"] == loss["maxs"] == [4.0, 1.0, 7.0, 2.0]
    assert (loss["current"], loss["mean"], loss["global_mean"], loss["min"], loss["max"], loss["count"]) == (
        2.0, 4.5, 3.5, 1.0, 7.0, 4)
    assert snap["info"]["iter"] == 3
    assert snap["info"]["lr_tensor"] == 0.5 and type(snap["info"]["lr_tensor"]) is float
    assert snap["info"]["meta"] == {"classes": ("a", "b"), "1": 2.0}
    assert isinstance(snap["info"]["work_dir"], str)
    assert _is_plain(snap["info"])
    assert snap["hooks"] == hub.hooks_table
    assert snap["hook_timings"] == {"before_run/H": (1, 0.5)}
    assert snap["stage"] == "before_run"
    assert snap["logs"] == [(1.0, "WARNING", "careful")]
    assert [c["path"] for c in snap["checkpoints"]] == ["/tmp/run/epoch_1.pth"]
    assert snap["markers"] == []

    cut = hub.snapshot(max_points=2)["scalars"]["train/loss"]
    assert cut["steps"] == [2, 3] and cut["values"] == [7.0, 2.0]
    assert cut["count"] == 4  # statistics still cover everything

    # A snapshot is a copy: later changes do not leak into it, and seq moves on.
    hub.update_scalar("train/loss", 100.0, step=4)
    hub.log("INFO", "later")
    assert snap["scalars"]["train/loss"]["steps"] == [0, 1, 2, 3]
    assert len(snap["logs"]) == 1
    assert hub.snapshot()["seq"] == snap["seq"] + 2


def test_snapshot_with_a_namedtuple_in_info():
    """Bug: ``_plain`` rebuilds a namedtuple from a generator, which raises TypeError."""
    point = collections.namedtuple("Point", "x y")
    hub = MessageHub()
    hub.update_info("dataset_meta", {"origin": point(0, 1)})
    snap = hub.snapshot()
    assert list(snap["info"]["dataset_meta"]["origin"]) == [0, 1]
    assert list(hub.state_dict()["runtime_info"]["dataset_meta"]["origin"]) == [0, 1]


# --- MessageHub: persistence --------------------------------------------------------------

def test_state_dict_round_trip_and_scalars_continue():
    hub = MessageHub("exp")
    for step in range(30):
        hub.update_scalar("train/loss", 1.0 / (step + 1), step=step)
    hub.update_scalar("val/acc", 0.75, step=29)
    hub.update_info("iter", 29)
    hub.update_info("epoch", 3)
    hub.update_info("loop_stage", "train")  # transient: not restored
    hub.update_info("pid", 12345)  # transient: not restored
    hub.record_checkpoint("/w/epoch_3.pth", 3, 30)
    hub.add_marker("resume", 10, "epoch_1.pth")
    state = hub.state_dict()

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    restored = MessageHub("exp")
    with restored.subscribe() as sub:
        restored.load_state_dict(state)
        assert [(e.key, e.value) for e in sub.poll()] == [("resynced", True)]
    assert plain(restored.state_dict()) == plain(hub.state_dict())
    for key in ("train/loss", "val/acc"):
        assert restored.get_scalar(key).series() == hub.get_scalar(key).series()
        assert plain(restored.get_scalar(key).state_dict()) == plain(hub.get_scalar(key).state_dict())
    assert restored.get_info("iter") == 29 and restored.get_info("epoch") == 3
    assert restored.get_info("loop_stage") is None and restored.get_info("pid") is None
    assert [c["path"] for c in restored.checkpoints] == ["/w/epoch_3.pth"]
    assert restored.markers == [{"kind": "resume", "step": 10, "detail": "epoch_1.pth"}]

    # Plots continue where they were.
    restored.update_info("iter", 30)
    restored.update_scalar("train/loss", 0.01)
    loss = restored.get_scalar("train/loss")
    assert loss.count == 31 and loss.last_step() == 30
    assert loss.series()[0] == list(range(31))
    assert loss.global_mean() == pytest.approx((sum(1.0 / (s + 1) for s in range(30)) + 0.01) / 31)
    # The original is untouched.
    assert hub.get_scalar("train/loss").count == 30


def _filled_hub() -> MessageHub:
    hub = MessageHub("exp")
    for step in range(5):
        hub.update_scalar("train/loss", 1.0 / (step + 1), step=step)
    hub.update_info("epoch", 1)
    hub.update_info("pid", 1)  # transient
    hub.record_checkpoint("/w/epoch_1.pth", 1, 5)
    return hub


def test_state_dict_is_in_mmengines_layout():
    state = _filled_hub().state_dict()
    assert list(state)[:3] == ["log_scalars", "runtime_info", "resumed_keys"]
    assert list(state["log_scalars"]) == ["train/loss"] and state["runtime_info"] == {"epoch": 1}
    assert state["resumed_keys"] == {"train/loss": True, "epoch": True}
    assert state["name"] == "exp" and [c["path"] for c in state["checkpoints"]] == ["/w/epoch_1.pth"]


def test_the_previous_layout_still_loads():
    hub = _filled_hub()
    state = hub.state_dict()
    # Its histories as nested lists too, as Cockpit saved them before they were tables.
    previous = {"name": state["name"], "scalars": plain(state["log_scalars"]), "info": state["runtime_info"],
                "checkpoints": state["checkpoints"], "markers": state["markers"]}
    restored = MessageHub("exp")
    restored.load_state_dict(previous)
    assert plain(restored.state_dict()) == plain(state)


@pytest.mark.parametrize("damage", [
    lambda s: s.update(log_scalars=[1, 2]),
    lambda s: s["log_scalars"]["train/loss"].update(recent=[[0, "x"]]),
    lambda s: s["log_scalars"]["train/loss"].update(window_size="10"),
    lambda s: s["log_scalars"]["train/loss"].update(buckets=[[1, 2, 3]]),
    lambda s: s.update(markers={"kind": "resume"}),
    lambda s: s.pop("log_scalars"),
])
def test_a_malformed_state_is_refused_and_changes_nothing(damage):
    hub = _filled_hub()
    state = hub.state_dict()
    damage(state)
    target = MessageHub("other")
    target.update_scalar("val/acc", 0.5, step=3)
    target.update_info("epoch", 7)
    before = target.state_dict()
    with pytest.raises(ValueError):
        target.load_state_dict(state)
    assert plain(target.state_dict()) == plain(before)


def test_two_hubs_are_independent():
    first, second = MessageHub("a"), MessageHub("b")
    sub_first, sub_second = first.subscribe(), second.subscribe()
    first.update_scalar("loss", 1.0, step=0)
    first.update_info("iter", 5)
    second.update_scalar("other", 2.0, step=0)
    assert set(first.log_scalars) == {"loss"} and set(second.log_scalars) == {"other"}
    assert second.get_info("iter") is None
    assert first.seq == 2 and second.seq == 1
    assert [e.seq for e in sub_first.poll()] == [1, 2]
    assert [(e.seq, e.key) for e in sub_second.poll()] == [(1, "other")]
    with pytest.raises(KeyError):
        second.get_scalar("loss")


# --- current_hub ------------------------------------------------------------------------

def test_current_hub_outside_a_run_raises():
    with pytest.raises(RuntimeError, match="no Cockpit run is active"):
        current_hub()


def test_activated_sets_and_restores_the_current_hub():
    outer, inner = MessageHub("outer"), MessageHub("inner")
    with outer.activated() as active:
        assert active is outer and current_hub() is outer
        with inner.activated():
            assert current_hub() is inner
        assert current_hub() is outer
        seen_in_thread = []

        def look() -> None:
            try:
                seen_in_thread.append(current_hub())
            except RuntimeError as error:
                seen_in_thread.append(error)

        thread = threading.Thread(target=look)
        thread.start()
        thread.join()
        assert isinstance(seen_in_thread[0], RuntimeError)  # "in this thread" only
    with pytest.raises(RuntimeError):
        current_hub()


class HubProbe(Hook):
    """Looks up current_hub() from inside the run."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, MessageHub]] = []

    def before_run(self, runner) -> None:
        self.seen.append(("before_run", current_hub()))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if batch_idx == 0:
            self.seen.append(("after_train_iter", current_hub()))

    def after_val(self, runner) -> None:
        self.seen.append(("after_val", current_hub()))


def test_current_hub_inside_a_run_is_the_runners(make_runner):
    runner = make_runner(train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1))
    other = make_runner()
    probe = HubProbe()
    runner.register_hook(probe)
    runner.train()
    assert [stage for stage, _ in probe.seen] == ["before_run", "after_train_iter", "after_val"]
    assert all(hub is runner.message_hub for _, hub in probe.seen)
    assert all(hub is not other.message_hub for _, hub in probe.seen)
    with pytest.raises(RuntimeError):
        current_hub()


# --- threads --------------------------------------------------------------------------

def test_publishing_while_another_thread_snapshots():
    hub = MessageHub()
    stop = threading.Event()
    errors: list[BaseException] = []
    published = 20_000

    def publish() -> None:
        try:
            for i in range(published):
                hub.update_scalar(f"k{i % 50}", float(i), step=i)
                if i % 100 == 0:
                    hub.update_info(f"info{i % 700}", i)
                    hub.log("INFO", f"line {i}")
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            stop.set()

    thread = threading.Thread(target=publish)
    sub = hub.subscribe(maxlen=1000)
    thread.start()
    last_seq, snapshots = 0, 0
    try:
        while not stop.is_set() or snapshots == 0:
            snap = hub.snapshot(max_points=10)
            # Each snapshot is consistent: every event up to its seq is in it.
            counted = sum(s["count"] for s in snap["scalars"].values())
            assert counted + sum(1 for k in snap["info"] if k.startswith("info")) <= snap["seq"]
            assert snap["seq"] >= last_seq
            last_seq = snap["seq"]
            sub.poll()
            snapshots += 1
    finally:
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert errors == []
    assert snapshots > 0
    final = hub.snapshot()
    assert sum(s["count"] for s in final["scalars"].values()) == published
    assert final["seq"] == hub.seq == published + 2 * (published // 100)


def test_events_go_over_the_wire_as_rows_that_read_back_as_their_dicts():
    # The channel sends the queued tuples as JSON rows; the client turns each back into
    # encode_event's dict, which is what views decode.
    hub = MessageHub()
    wire, typed = hub.subscribe(), hub.subscribe()
    hub.update_scalar("train/loss", 0.5, step=3)
    hub.update_info("eta", {"seconds": 12.5, "parts": [1, 2]})
    hub.enter_stage("before_train_iter")
    hub.record_stage("after_train_iter", [("LoggerHook", 0.001)])
    hub.set_hooks_table((("before_run", (("NORMAL", 50, "MyHook"),)),))
    hub.log("INFO", "hello", when=1.0)
    hub.record_checkpoint("/tmp/a.pth", 1, 8)
    hub.record_checkpoint_removed("/tmp/a.pth", "rotation")
    hub.set_status("running")
    hub.publish(ev.CommandFinished, "1-1", "save", "applied", "saved")
    rows = json.loads(json.dumps(wire.poll_raw()))
    events = typed.poll()
    assert len(rows) == len(events) == 10
    assert [ev.row_to_dict(row) for row in rows] == [json.loads(json.dumps(ev.encode_event(e))) for e in events]
    assert [ev.decode_event(ev.row_to_dict(row)) for row in rows] == events
    assert ev.row_to_dict(["FutureEvent", 11, "x"]) == {"t": "FutureEvent", "seq": 11}
    assert ev.row_to_dict({"t": "ScalarUpdated"}) is None and ev.row_to_dict(["ScalarUpdated", "1"]) is None
    # A batch reads back the same, less what the reader has seen and what is not an event.
    assert ev.rows_to_dicts([*rows, {"t": "x"}, [1, 2], ["ScalarUpdated", True]], after=rows[3][1]) == [
        ev.row_to_dict(row) for row in rows[4:]]


def test_subscribers_are_woken_for_the_events_someone_waits_for():
    # Command acknowledgements and outcomes and status changes wake a reader that drains at intervals;
    # the updates of every iteration do not.
    hub = MessageHub()
    sub = hub.subscribe()
    woken = []
    sub.wake = lambda: woken.append(hub.seq)
    hub.update_scalar("train/loss", 0.5, step=1)
    hub.update_info("iter", 1)
    hub.enter_stage("before_train_iter")
    hub.record_stage("before_train_iter", [("IterTimerHook", 0.001)])
    hub.log("INFO", "hello")
    assert woken == []
    hub.publish(ev.CommandAccepted, "1-1", "save", ())
    hub.set_status("paused")
    hub.publish(ev.CommandFinished, "1-1", "save", "applied", "saved")
    assert woken == [hub.seq - 2, hub.seq - 1, hub.seq]
    sub.wake = None
    hub.set_status("running")
    assert len(woken) == 3


def test_a_snapshot_builds_again_only_the_series_that_changed():
    hub = MessageHub()
    for step in range(6000):
        hub.update_scalar("history", 1.0 / (step + 1), step)
        hub.update_scalar("train/loss", 2.0 / (step + 1), step)
    first = hub.snapshot(shared=True)
    hub.update_scalar("train/loss", 0.25, 6000)
    second = hub.snapshot(shared=True)
    # Shared: an unchanged series is the very same dict (the channel sends its encoding again).
    assert second["scalars"]["history"] is first["scalars"]["history"]
    assert second["scalars"]["train/loss"] is not first["scalars"]["train/loss"]
    assert second["scalars"]["train/loss"]["steps"][-1] == 6000 and second["scalars"]["train/loss"]["count"] == 6001
    assert second["seq"] == first["seq"] + 1
    # Another cut is another series.
    assert hub.snapshot(max_points=10, shared=True)["scalars"]["history"]["steps"] == list(range(5990, 6000))
    assert len(hub.snapshot(shared=True)["scalars"]["history"]["steps"]) == len(first["scalars"]["history"]["steps"])
    # Not shared: every series is the caller's own, and changing it changes no later snapshot.
    mine = hub.snapshot()
    assert mine == hub.snapshot(shared=True) and mine["scalars"]["history"] is not first["scalars"]["history"]
    mine["scalars"]["history"]["steps"].append(-1)
    mine["scalars"]["history"]["values"].clear()
    assert hub.snapshot()["scalars"]["history"] == hub.snapshot(shared=True)["scalars"]["history"] == (
        first["scalars"]["history"])


def test_a_snapshot_after_a_resume_shows_the_restored_series_even_with_the_same_count():
    hub, other = MessageHub(), MessageHub()
    for step in range(100):
        hub.update_scalar("train/loss", 1.0, step)
        other.update_scalar("train/loss", 2.0, step + 1000)
    before = hub.snapshot(shared=True)
    hub.load_state_dict(other.state_dict())  # new histories, with the same count as the old ones
    after = hub.snapshot(shared=True)
    assert before["scalars"]["train/loss"]["count"] == after["scalars"]["train/loss"]["count"] == 100
    assert after["scalars"]["train/loss"]["values"] == [2.0] * 100
    assert after["scalars"]["train/loss"]["steps"] == list(range(1000, 1100))
