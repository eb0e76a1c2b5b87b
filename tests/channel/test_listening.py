"""A served run that nobody watches takes no events: the server follows the hub only while a view
listens (XPUB tells it when the first view subscribes and the last one leaves) or just took a snapshot.

Real sockets and a real ``RunClient``; the hub is written to from the test, as training would.
"""

from __future__ import annotations

from pathlib import Path

import zmq
from support import tiny_cfg, wait_for

from cockpit import Config, Runner
from cockpit.channel import RunClient
from cockpit.channel import server as channel_server
from cockpit.channel.server import ChannelServer
from cockpit.viewstate import RunState


def test_the_hub_has_a_subscriber_only_while_a_view_listens(tmp_path, monkeypatch):
    monkeypatch.setattr(channel_server, "SNAPSHOT_HOLD", 0.5)
    runner = Runner.from_cfg(Config(tiny_cfg(Path(tmp_path))), log_to_console=False)
    hub = runner.message_hub
    server = ChannelServer(runner, runner.control).start()
    try:
        hub.update_scalar("train/loss", 1.0, 0)
        assert not hub.has_subscribers and server.subscription is None  # served, not watched: no events built
        with RunClient.connect(Path(runner.log_dir), timeout=30) as viewer:
            state = RunState()
            state.load_snapshot(viewer.snapshot())  # the snapshot takes the events that follow it
            assert hub.has_subscribers
            wait_for(lambda: server.listening, 30, "the view's subscription")
            for step in range(1, 50):
                hub.update_scalar("train/loss", 1.0 / (step + 1), step)

            def caught_up() -> bool:
                state.receive(viewer.poll_events(0.1))
                return state.seq == hub.seq

            wait_for(caught_up, 60, "the view to see every update")
            assert state.scalars["train/loss"].steps == list(range(50))
            assert viewer.resyncs == 0  # no gap: the events after the snapshot all came
        wait_for(lambda: not server.listening, 30, "the view's subscription to end with it")
        wait_for(lambda: not hub.has_subscribers, 30, "the server to let go of the hub's events")
        before = server.published
        hub.update_scalar("train/loss", 0.01, 50)
        # A view that comes back starts from a snapshot that holds what happened meanwhile.
        with RunClient.connect(Path(runner.log_dir), timeout=30) as viewer:
            state = RunState()
            state.load_snapshot(viewer.snapshot())
            assert state.scalars["train/loss"].steps[-1] == 50
            hub.update_scalar("train/loss", 0.005, 51)

            def got_it() -> bool:
                state.receive(viewer.poll_events(0.1))
                return 51 in state.scalars["train/loss"].steps

            wait_for(got_it, 60, "the update after the second snapshot")
        assert server.published > before
    finally:
        server.stop()


def test_a_snapshot_alone_holds_the_events_for_a_while_then_lets_go(tmp_path, monkeypatch):
    monkeypatch.setattr(channel_server, "SNAPSHOT_HOLD", 0.3)
    runner = Runner.from_cfg(Config(tiny_cfg(Path(tmp_path))), log_to_console=False)
    server = ChannelServer(runner, runner.control).start()
    try:
        with RunClient.connect(Path(runner.log_dir), timeout=30) as client:
            client.sub.setsockopt(zmq.UNSUBSCRIBE, b"")  # a peer that only reads a snapshot (a one-off look)
            wait_for(lambda: not server.listening, 30, "no subscription left")
            client.snapshot()
            assert runner.message_hub.has_subscribers
            wait_for(lambda: not runner.message_hub.has_subscribers, 30, "the hold to run out")
    finally:
        server.stop()
