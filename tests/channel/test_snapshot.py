"""Snapshots while training runs: they do not hold training up, and they mean what they meant.

A snapshot copies the hub's state under its lock and turns the copy into plain data after,
so training updates the hub while a snapshot is being built. These tests pin both halves:
an update goes through while a snapshot is rendering (and is not in it), and snapshots taken
over the real channel from a hub that a training-like thread writes to are each internally
consistent and, followed by the event stream, lose or repeat nothing.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from support import tiny_cfg, wait_for

from cockpit import Config, MessageHub, Runner
from cockpit.channel import RunClient
from cockpit.channel.server import ChannelServer
from cockpit.history import ScalarHistory
from cockpit.viewstate import RunState

KEYS = ("train/loss", "train/lr", "train/time")


def test_an_update_goes_through_while_a_snapshot_is_being_built(monkeypatch):
    hub = MessageHub()
    for step in range(5000):
        hub.update_scalar("train/loss", 1.0 / (step + 1), step)
    rendering, updated = threading.Event(), threading.Event()
    current = ScalarHistory.current

    def slow_current(history):
        rendering.set()
        # Training's next update must not wait for this snapshot to finish.
        assert updated.wait(30), "update_scalar waited for a snapshot being built"
        return current(history)

    def train():
        assert rendering.wait(30)
        hub.update_scalar("train/loss", 0.5, 5000)
        hub.update_info("iter", 5000)
        updated.set()

    monkeypatch.setattr(ScalarHistory, "current", slow_current)
    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    snapshot = hub.snapshot()
    thread.join(30)
    # The snapshot is of the moment it was copied: without the two updates, and its seq says so.
    assert snapshot["seq"] == 5000 and hub.seq == 5002
    assert snapshot["scalars"]["train/loss"]["steps"][-1] == 4999
    assert snapshot["scalars"]["train/loss"]["count"] == 5000
    assert "iter" not in snapshot["info"]
    monkeypatch.undo()
    assert hub.snapshot()["scalars"]["train/loss"]["steps"][-1] == 5000


def train_like(hub: MessageHub, stop: threading.Event, iterations: int) -> None:
    """What the training thread does to the hub each iteration, as fast as it can."""
    for step in range(iterations):
        if stop.is_set():
            break
        hub.enter_stage("before_train_iter")
        hub.update_info("iter", step)
        for index, key in enumerate(KEYS):
            hub.update_scalar(key, step * 0.001 + index, step)
        hub.record_stage("after_train_iter", [("IterTimerHook", 1e-5), ("LoggerHook", 2e-5)])
        if step % 50 == 0:
            hub.log("INFO", f"iteration {step}")
    hub.update_info("done", True)


def check_consistent(snapshot: dict) -> None:
    """Each series ordered and complete up to the snapshot's own ``iter``, statistics matching the points."""
    scalars, info = snapshot["scalars"], snapshot["info"]
    if "iter" not in info:
        return
    for key in KEYS:
        data = scalars.get(key)
        if data is None:  # the iteration that sets iter had not written this one yet
            assert info["iter"] == 0
            continue
        steps = data["steps"]
        assert steps == sorted(steps) and len(set(steps)) == len(steps), f"{key}: steps out of order"
        assert steps[-1] in (info["iter"] - 1, info["iter"]), f"{key} at {steps[-1]} but iter {info['iter']}"
        assert data["count"] == steps[-1] + 1, f"{key}: the count does not match the points"
        assert data["current"] == data["values"][-1]


def test_snapshots_over_the_channel_are_consistent_and_the_stream_continues_them(tmp_path):
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        runner = Runner.from_cfg(Config(tiny_cfg(Path(folder))), log_to_console=False)
        hub = runner.message_hub
        server = ChannelServer(runner, runner.control).start()
        stop, snapshots, errors = threading.Event(), [], []
        trainer = threading.Thread(target=train_like, args=(hub, stop, 3000), daemon=True)
        try:
            with RunClient.connect(Path(runner.log_dir), timeout=30) as viewer, \
                    RunClient.connect(Path(runner.log_dir), timeout=30) as flooder:
                state = RunState()
                state.load_snapshot(viewer.snapshot())
                wait_for(lambda: hub.has_subscribers, 30, "the server to subscribe")

                def flood() -> None:
                    try:
                        while not stop.is_set():
                            snapshots.append(flooder.snapshot())
                    except Exception as error:  # noqa: BLE001 - reported below
                        errors.append(error)

                looping = threading.Thread(target=flood, daemon=True)
                trainer.start()
                looping.start()

                def caught_up() -> bool:
                    state.receive(viewer.poll_events(0.1))
                    return state.info.get("done") is True

                wait_for(caught_up, 120, "the viewer to see the end of training")
                stop.set()
                looping.join(60)
                trainer.join(60)

                def all_seen() -> bool:
                    state.receive(viewer.poll_events(0.1))
                    return state.seq == hub.seq

                wait_for(all_seen, 60, "the viewer to see every event")
                assert errors == [] and len(snapshots) >= 2
                for snapshot in snapshots:
                    check_consistent(snapshot)
                assert [s["seq"] for s in snapshots] == sorted(s["seq"] for s in snapshots)
                # One snapshot, then the stream: the viewer holds exactly what the hub holds.
                assert viewer.resyncs == 0 and not state.needs_snapshot
                final = hub.snapshot()
                assert state.seq == final["seq"]
                for key in KEYS:
                    assert state.scalars[key].steps == final["scalars"][key]["steps"] == list(range(3000))
                    assert state.scalars[key].values == final["scalars"][key]["values"]
                assert state.info == final["info"]
                assert {k: tuple(v) for k, v in state.hook_timings.items()} == {
                    tuple(k.split("/")): tuple(v) for k, v in final["hook_timings"].items()}
        finally:
            stop.set()
            trainer.join(60)
            server.stop()
