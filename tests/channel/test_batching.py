"""What the channel thread does to cost the run less, and what it must still deliver.

Events go out in batches at long intervals, yet the events someone waits for (a command's outcome, a
new status) go out at once; a snapshot's unchanged series are sent as the bytes written for them
before, and the reply is still the hub's snapshot; a reply is charged its bytes in the requests' budget.
"""

from __future__ import annotations

import json
import math
import select
import time
from pathlib import Path

import pytest
import zmq
from support import tiny_cfg, wait_for

from channel.helpers import raw_dealer, signed
from cockpit import Config, Runner
from cockpit import events as ev
from cockpit.channel import RunClient
from cockpit.channel import server as server_module
from cockpit.channel.auth import REPLY, Signer
from cockpit.channel.server import ChannelServer


@pytest.fixture
def runner(tmp_path):
    return Runner.from_cfg(Config(tiny_cfg(tmp_path)), log_to_console=False)


def test_a_command_outcome_does_not_wait_for_the_batch_interval(runner):
    # Batches an hour apart: only the hub's wake-up can bring the outcome to the view.
    server = ChannelServer(runner, runner.control, batch_interval=3600).start()
    try:
        with RunClient.connect(Path(runner.log_dir), timeout=30) as client:
            client.snapshot(max_points=1)
            wait_for(lambda: server.listening and runner.message_hub.has_subscribers, 30, "the view to subscribe")
            runner.message_hub.update_scalar("train/loss", 0.5, 1)  # an ordinary event: it may wait for the batch
            runner.message_hub.publish(ev.CommandFinished, "1-1", "save", "applied", "saved")
            seen: list[dict] = []

            def finished() -> bool:
                seen.extend(client.poll_events(0.1))
                return any(event["t"] == "CommandFinished" for event in seen)

            wait_for(finished, 30, "the command's outcome")
            assert [event["t"] for event in seen] == ["ScalarUpdated", "CommandFinished"]
            assert seen[1] == {"t": "CommandFinished", "seq": runner.message_hub.seq, "id": "1-1", "name": "save",
                               "outcome": "applied", "message": "saved"}
    finally:
        server.stop()


def test_the_events_someone_waits_for_wake_the_channel_thread(runner, monkeypatch):
    # The thread is not started: this test looks at what would wake its poll.
    monkeypatch.setattr(ChannelServer, "_supervise", lambda self: None)
    server = ChannelServer(runner, runner.control, batch_interval=3600).start()
    try:
        server._hold_until = time.monotonic() + 60  # as after a snapshot: the hub's events are taken
        server._follow()
        runner.message_hub.update_scalar("train/loss", 0.5, 1)
        assert select.select([server._wake_read], [], [], 0) == ([], [], [])
        runner.message_hub.publish(ev.CommandFinished, "1-1", "save", "applied", "saved")
        assert select.select([server._wake_read], [], [], 30)[0] == [server._wake_read]
        server._drain_wakes()
        assert select.select([server._wake_read], [], [], 0) == ([], [], [])
        runner.message_hub.set_status("paused")
        assert select.select([server._wake_read], [], [], 30)[0] == [server._wake_read]
    finally:
        server.stop()


def test_snapshots_over_the_channel_are_the_hubs_whether_their_series_were_sent_before_or_not(runner):
    hub = runner.message_hub
    for step in range(3000):
        hub.update_scalar("history", 1.0 / (step + 1), step)
        hub.update_scalar("train/loss", 2.0 / (step + 1), step)
    server = ChannelServer(runner, runner.control).start()
    try:
        with RunClient.connect(Path(runner.log_dir), timeout=30) as client:
            for step in range(3000, 3003):
                assert client.snapshot() == json.loads(json.dumps(hub.snapshot()))
                hub.update_scalar("train/loss", 0.5, step)
            assert client.snapshot(max_points=5) == json.loads(json.dumps(hub.snapshot(max_points=5)))
            # Something only json.dumps writes exactly (an integer beyond 64 bits) beside series sent before.
            hub.update_info("huge", 2 ** 70)
            snapshot = client.snapshot()
            assert snapshot["info"]["huge"] == 2 ** 70
            assert snapshot == json.loads(json.dumps(hub.snapshot()))
            hub.update_scalar("history", float("nan"), 3000)  # a NaN in a series still arrives as NaN
            history = client.snapshot()["scalars"]["history"]
            assert math.isnan(history["values"][-1]) and math.isnan(history["current"])
            assert history["values"][:-1] == hub.snapshot()["scalars"]["history"]["values"][:-1]
    finally:
        server.stop()


def test_a_reply_costs_the_requests_budget_its_bytes(runner, monkeypatch):
    # The thread is not started: this test serves the requests itself.
    monkeypatch.setattr(ChannelServer, "_supervise", lambda self: None)
    monkeypatch.setattr(server_module, "REPLY_BYTE_COST", 1.0)  # a second a byte: the bytes decide
    for step in range(1000):
        runner.message_hub.update_scalar("train/loss", 1.0 / (step + 1), step)
    server = ChannelServer(runner, runner.control).start()
    context, dealer = raw_dealer(server.info["control"])
    try:
        dealer.send_multipart(signed(server.info["key"], "snapshot", {"request_id": "s", "max_points": None}))
        assert server.router.poll(30_000, zmq.POLLIN)
        cost = server._serve_requests(budget=0.001)
        assert dealer.poll(30_000)
        reply = dealer.recv_multipart()
        kind, answer = Signer(server.info["key"]).unpack(reply, REPLY)
        assert kind == "snapshot" and answer["snapshot"]["scalars"]["train/loss"]["count"] == 1000
        assert cost >= sum(map(len, reply)) > 20_000
    finally:
        dealer.close()
        context.term()
        server.stop()
