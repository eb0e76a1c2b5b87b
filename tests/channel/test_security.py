"""The channel under attack (issue 12, items 2, 4 and 5), against real training processes and real sockets.

Three runs serve the module, started together: ``local`` (Unix sockets) takes the replays, the
malformed messages and a hypothesis fuzz; ``tcp`` (``--listen``) meets peers without its CURVE keys
and oversized frames; ``sabotaged`` has a fault injected into its channel thread by its own config.
Each run trains until the module ends. A last test fakes a run in this process to check the
client's side: it takes only replies on its request socket and only events on its event socket.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import stat
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import free_port_pair, tiny_cfg, wait_for, write_child_config

from channel.helpers import (
    Child,
    answer_to,
    curve_options,
    end_all,
    raw_socket,
    refusal,
    signed,
)
from cockpit import Config, Runner
from cockpit.channel import ConnectionError_, RunClient
from cockpit.channel.auth import (
    EVENT,
    KINDS,
    MAX_AGE,
    MAX_ANSWER,
    MAX_DEPTH,
    MAX_REQUEST,
    MAX_SKEW,
    PROTOCOL,
    REPLY,
    REQUEST,
    Signer,
    new_key,
)
from cockpit.channel.server import ChannelServer

SABOTAGE = '''
import cockpit.channel.server as _channel_server


class ChannelSabotage(BaseException):
    """A failure no request handler catches, raised in the channel thread when a request asks for it."""


_answer = _channel_server.ChannelServer._answer


def _sabotaged_answer(self, kind, payload):
    if payload.get("sabotage"):
        raise ChannelSabotage("injected by the test")
    return _answer(self, kind, payload)


_channel_server.ChannelServer._answer = _sabotaged_answer
'''

FAILED = "the channel thread failed"


def start(folder: Path, *extra: str, body_extra: str = "") -> Child:
    config = write_child_config(folder, max_epochs=10 ** 5, seconds=0.02, val_interval=None, log_interval=50,
                                checkpoint_interval=10 ** 6, custom_hooks=[dict(type="support.NoteHook")],
                                body_extra=body_extra)
    return Child(folder, config, *extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    children: dict[str, Child] = {}
    try:
        children["local"] = start(root / "local")
        port = free_port_pair()
        children["tcp"] = start(root / "tcp", "--listen", f"127.0.0.1:{port}")
        children["tcp"].port = port
        children["sabotaged"] = start(root / "sabotaged", body_extra=SABOTAGE)
        yield children
    finally:
        end_all(list(children.values()))


@pytest.fixture(scope="module")
def local(runs) -> Child:
    return runs["local"]


def current_iter(client: RunClient) -> int:
    return int(client.snapshot(max_points=1)["info"].get("iter", 0))


def trains_and_answers(child: Child) -> None:
    """The run is still training, and a legitimate client is answered and obeyed."""
    with child.connect() as client:
        before = current_iter(client)
        wait_for(lambda: current_iter(client) > before + 3, 60, "training to go on")
        answer = client.command("note", "still here", timeout=60)
        assert answer["outcome"] == "applied" and answer["message"] == "noted still here", answer
        assert client.ping()["status"] == "running"


def events_until_noted(client: RunClient, text: str) -> list[dict[str, Any]]:
    """Send ``note <text>`` and return every event up to its outcome (the stream is in order, so any
    command accepted before it, from whatever was sent earlier, is in there)."""
    answer = client.command("note", text, wait=False)
    events: list[dict[str, Any]] = []
    wait_for(lambda: events.extend(client.poll_events(0.1)) or any(
        e["t"] == "CommandFinished" and e["id"] == answer["id"] for e in events), 60, f"note {text!r} to be applied")
    return events


def notes(events: list[dict[str, Any]]) -> list[str]:
    return [e["args"][0] for e in events if e["t"] == "CommandAccepted" and e["name"] == "note"]


def rss_growth(child: Child, action: Any) -> int:
    """How far the run's resident memory rose above its level before ``action()`` (bytes)."""
    before = child.rss()
    action()
    return child.rss() - before


# === item 2: --listen speaks CURVE; nothing gets in without the keys; nothing big is buffered ========
def test_listen_lets_in_only_holders_of_the_curve_keys(runs):
    child = runs["tcp"]
    connection = child.connection
    assert stat.S_IMODE((child.run_dir / "cockpit.json").stat().st_mode) == 0o600
    assert connection["protocol"] == PROTOCOL and connection["transport"] == "tcp"
    assert connection["control"] == f"tcp://127.0.0.1:{child.port}"
    assert connection["events"] == f"tcp://127.0.0.1:{child.port + 1}"
    assert set(connection["curve"]) == {"server_key", "public_key", "secret_key"}

    key = connection["key"]
    own_public, own_secret = zmq.curve_keypair()
    strangers = {
        "no CURVE at all": {},
        "a key pair of its own": {zmq.CURVE_SERVERKEY: connection["curve"]["server_key"].encode(),
                                  zmq.CURVE_PUBLICKEY: own_public, zmq.CURVE_SECRETKEY: own_secret},
    }
    peers: list[tuple[str, zmq.Context, zmq.Socket]] = []
    try:
        for name, options in strangers.items():
            peers.append((name, *raw_socket(zmq.SUB, connection["events"], options)))
            context, dealer = raw_socket(zmq.DEALER, connection["control"], options)
            # Even a request signed with the run's key goes nowhere without the CURVE handshake. Not
            # waiting to send: once the handshake failed, libzmq may hold no connection to queue it on.
            with contextlib.suppress(zmq.Again):
                dealer.send_multipart(signed(key, "command", {"name": "note", "args": ["intruder"], "request_id": "i"}),
                                      zmq.NOBLOCK)
            peers.append((name, context, dealer))
        with child.connect() as client:
            client.snapshot(max_points=1)
            # Events flow to the key holder, and its commands are applied, for a good while after the
            # strangers connected; nothing of theirs is.
            start = client.seq
            wait_for(lambda: client.poll_events(0.1) and client.seq > start + 40, 60, "events for the key holder")
            assert client.ping()["pid"] == child.pid
            assert notes(events_until_noted(client, "key holder")) == ["key holder"]
        for name, _, peer in peers:
            assert not peer.poll(0), f"a peer with {name} received something"
    finally:
        for _, context, peer in peers:
            peer.close()
            context.term()


def zmtp_greeting(mechanism: bytes) -> bytes:
    """The 64-byte ZMTP 3.0 greeting a peer sends first."""
    return b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + mechanism.ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def test_a_frame_claiming_4_gb_or_beyond_the_limit_is_never_buffered(runs):
    child = runs["tcp"]
    connection = child.connection
    child.run_dir  # noqa: B018 - serving

    def claim_4_gb() -> None:
        # A peer that skips the handshake and announces one 4 GB frame, then streams 64 MB of it.
        with socket.create_connection(("127.0.0.1", child.port), timeout=10) as raw:
            try:
                raw.sendall(zmtp_greeting(b"NULL") + b"\x02" + (4 << 30).to_bytes(8, "big"))
                chunk = b"\x00" * (1 << 20)
                for _ in range(64):
                    raw.sendall(chunk)
            except OSError:
                pass  # the run hung up on it: what we want

    def oversized_from_a_key_holder() -> None:
        # Past the handshake (it holds the keys), one frame beyond the request limit, 64 times.
        context, dealer = raw_socket(zmq.DEALER, connection["control"], curve_options(connection))
        try:
            for _ in range(64):
                dealer.send(b"x" * (MAX_REQUEST * 16), copy=False)
            assert not dealer.poll(1000), "an oversized frame was answered"
        finally:
            dealer.close()
            context.term()

    def subscribe_100k_times() -> None:
        context, sub = raw_socket(zmq.SUB, connection["events"])
        try:
            for n in range(100_000):
                sub.setsockopt(zmq.SUBSCRIBE, b"%06d" % n + b"x" * 64)
            assert not sub.poll(1000)
        finally:
            sub.close()
            context.term()

    for action in (claim_4_gb, oversized_from_a_key_holder, subscribe_100k_times):
        growth = rss_growth(child, action)
        assert growth < 32 << 20, f"{action.__name__}: the run grew by {growth >> 20} MB"
    trains_and_answers(child)


def test_resume_with_trust_is_refused_over_tcp(runs):
    # (Item 7's channel side: trusting a checkpoint's pickles is for the run's own Unix socket only.)
    child = runs["tcp"]
    with child.connect() as client:
        answer = client.command("resume", "latest", "trust", timeout=60)
        assert answer["done"] and answer["outcome"] == "rejected", answer
        assert "'resume latest trust' is refused over TCP" in answer["message"]
        assert "--resume latest --trust-checkpoint" in answer["message"]
    assert "'resume latest trust' rejected" in child.run_log()


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "localhost:0", "::1:0", "[::1]:0"])
def test_the_connection_file_names_the_ports_actually_bound(listen, tmp_path):
    # (The server's side of item 3: port 0 means free ports, and IPv6 hosts work on both sides.)
    runner = Runner.from_cfg(Config(tiny_cfg(tmp_path)), log_to_console=False)
    with ChannelServer(runner, runner.steering.control, listen=listen) as server:
        control, events = server.info["control"], server.info["events"]
        assert not control.endswith(":0") and not events.endswith(":0") and control != events
        assert control.startswith("tcp://[::1]:" if "::1" in listen else "tcp://127.0.0.1:")
        with RunClient.connect(server.connection_file, timeout=30) as client:
            assert client.ping()["pid"] == os.getpid()


def test_every_client_socket_caps_what_it_takes_in(local):
    with local.connect() as client:
        assert client.sub.getsockopt(zmq.MAXMSGSIZE) == MAX_ANSWER
        assert client.dealer.getsockopt(zmq.MAXMSGSIZE) == MAX_ANSWER


def test_a_connection_file_of_another_protocol_is_refused_clearly(local, tmp_path):
    connection = local.connection
    for change, written_by in (({"protocol": 1, "cockpit_version": "0.0.9"}, "Cockpit 0.0.9 (channel protocol 1)"),
                               ({"protocol": None}, "an older version of Cockpit (channel protocol 1)")):
        info = {**connection, **change}
        if info["protocol"] is None:
            del info["protocol"]
            info.pop("cockpit_version")
        copy = tmp_path / "cockpit.json"
        copy.write_text(json.dumps(info))
        copy.chmod(0o600)
        with pytest.raises(ConnectionError_) as refused:
            RunClient.connect(copy)
        assert f"written by {written_by}" in str(refused.value)
        assert f"protocol {PROTOCOL}" in str(refused.value) and "Attach with the Cockpit that started" in str(refused.value)


# === item 4: a message is good only in the direction it was signed for ===============================
def test_a_reply_or_an_event_sent_back_to_the_run_is_refused(local):
    connection = local.connection
    key = connection["key"]
    with local.connect() as client:
        client.snapshot(max_points=1)
        context, dealer = raw_socket(zmq.DEALER, connection["control"])
        sub_context, sub = raw_socket(zmq.SUB, connection["events"])
        try:
            reply = answer_to(dealer, signed(key, "command", {"name": "note", "args": ["once"], "request_id": "r"}))
            kind, answer = Signer(key).unpack(reply, REPLY, check_replay=False)
            assert kind == "command" and answer["name"] == "note" and answer["request_id"] == "r"
            # The run's own signed reply, sent back to it, is no command.
            assert "going 'reply'" in refusal(answer_to(dealer, reply))
            # Nor is an event batch it published.
            assert sub.poll(30_000), "no event batch"
            batch = sub.recv_multipart()
            assert Signer(key).unpack(batch, EVENT, check_replay=False)[0] == "events"
            assert "going 'event'" in refusal(answer_to(dealer, batch))
            # A request that claims a type only the run sends is refused as well.
            assert "unknown request type 'events'" in refusal(answer_to(dealer, signed(key, "events", {})))
            assert "unknown request type 'error'" in refusal(answer_to(dealer, signed(key, "error", {})))
        finally:
            for context_, socket_ in ((context, dealer), (sub_context, sub)):
                socket_.close()
                context_.term()
        assert notes(events_until_noted(client, "after"))[-2:] == ["once", "after"], "the reply ran as a command"


def test_the_client_takes_only_replies_and_only_events(tmp_path):
    """A fake run in this process sends the client its own signed request back, on both sockets."""
    key = new_key()
    signer = Signer(key)
    context = zmq.Context()
    router, pub = context.socket(zmq.ROUTER), context.socket(zmq.PUB)
    router.bind(f"ipc://{tmp_path}/ctl")
    pub.bind(f"ipc://{tmp_path}/ev")
    stop = threading.Event()

    def fake_run() -> None:
        while not stop.is_set():
            if router.poll(20):
                identity, *request = router.recv_multipart()
                _, payload = signer.unpack(request, REQUEST)
                if payload.get("echo"):
                    router.send_multipart([identity, *request])  # the client's request, as is
                else:
                    router.send_multipart([identity, *signer.pack(REPLY, "ping", {"request_id": payload["request_id"]})])

    thread = threading.Thread(target=fake_run, daemon=True)
    thread.start()
    info = {"protocol": PROTOCOL, "pid": os.getpid(), "control": f"ipc://{tmp_path}/ctl",
            "events": f"ipc://{tmp_path}/ev", "key": key}
    try:
        with RunClient(info, timeout=10) as client:
            with pytest.raises(ConnectionError_, match="going 'request' is refused where 'reply' is expected"):
                client.request("ping", {"echo": True})
            assert client.request("ping")["request_id"]  # the plain reply is taken
            # On the event socket: a signed request, then a real batch. Only the batch arrives.
            request = signer.pack(REQUEST, "events", {"first": 1, "last": 1, "events": [["Bogus", 1]]})
            batch = signer.pack(EVENT, "events", {"first": 2, "last": 2, "events": [["Real", 2]]})

            def delivered() -> list[dict[str, Any]]:
                pub.send_multipart(request)
                pub.send_multipart(batch)
                return client.poll_events(0.1)

            events = wait_for(delivered, 30, "the fake run's events")
            assert [e["t"] for e in events] == ["Real"]
    finally:
        stop.set()
        thread.join(10)
        router.close()
        pub.close()
        context.term()


# === item 5: deep nesting, bad times, and a channel thread that fails ================================
def test_deep_nesting_and_bad_times_are_refused_and_the_channel_goes_on(local):
    connection = local.connection
    key = connection["key"]
    context, dealer = raw_socket(zmq.DEALER, connection["control"])
    try:
        deep = 30_000  # fits in a request: 60 kB
        reason = refusal(answer_to(dealer, signed(key, "ping", None, body=b"[" * deep + b"]" * deep)))
        assert f"nested deeper than {MAX_DEPTH} levels" in reason
        nested_objects = b'{"a":' * 10_000 + b"1" + b"}" * 10_000  # 60 kB too
        assert "nested deeper" in refusal(answer_to(dealer, signed(key, "ping", None, body=nested_objects)))
        brackets_in_strings = json.dumps({"note": "[" * 5000, "request_id": "s"}).encode()
        kind, _ = Signer(key).unpack(answer_to(dealer, signed(key, "ping", None, body=brackets_in_strings)), REPLY)
        assert kind == "ping"  # brackets inside strings are no nesting

        now = time.time()
        for sent, why in ((math.nan, "time nan"), (math.inf, "time inf"), (-math.inf, "time -inf"),
                          ("soon", "time 'soon'"), (True, "time True"), (now + 59, "from the future"),
                          (now + 10, "from the future"), (now - 61, "stale message")):
            assert why in refusal(answer_to(dealer, signed(key, "ping", {"request_id": "t"}, sent=sent)))
        kind, answer = Signer(key).unpack(
            answer_to(dealer, signed(key, "ping", {"request_id": "skew"}, sent=time.time() + 2)), REPLY)
        assert kind == "ping" and answer["pid"] == local.pid  # a small clock skew is fine
    finally:
        dealer.close()
        context.term()
    # 200k deep does not even fit in a request: the run drops the peer without parsing anything.
    context, dealer = raw_socket(zmq.DEALER, connection["control"])
    try:
        dealer.send_multipart(signed(key, "ping", None, body=b"[" * 200_000 + b"]" * 200_000))
        assert not dealer.poll(1000)
    finally:
        dealer.close()
        context.term()
    trains_and_answers(local)
    assert FAILED not in local.run_log()


def test_a_failing_channel_thread_is_restarted_and_says_why(runs):
    child = runs["sabotaged"]
    with child.connect(timeout=30) as client:
        assert client.ping()["pid"] == child.pid
        # The fault kills one pass of the channel thread: that request gets no answer ...
        with pytest.raises(ConnectionError_, match="no answer"):
            client.request("ping", {"sabotage": True}, timeout=1)
        # ... the run's log says why, in the file and on the hub (which every view shows) ...
        wait_for(lambda: FAILED in child.run_log(), 60, "the failure in the run's log")
        logged = child.run_log()
        assert "ChannelSabotage: injected by the test" in logged and "restart 1" in logged
        assert "_sabotaged_answer" in logged  # with the traceback
        logs = client.snapshot(max_points=1)["logs"]
        assert any(level == "ERROR" and FAILED in message for _, level, message in logs)
        # ... and the channel serves again: requests, commands and the event stream.
        assert client.ping()["pid"] == child.pid
    trains_and_answers(child)
    # It keeps doing so each time (a restart is not a one-off).
    with child.connect(timeout=30) as client:
        with pytest.raises(ConnectionError_, match="no answer"):
            client.request("ping", {"sabotage": True}, timeout=1)
        wait_for(lambda: "restart 2" in child.run_log(), 60, "the second restart in the run's log")
        assert client.ping()["pid"] == child.pid


# === the fuzz: random frames, sizes, nesting and signatures, while the run trains =====================
SAFE_COMMANDS = ("note", "bogus", "", "n" * 300)


@st.composite
def fuzzed_message(draw: st.DrawFn, key: str) -> tuple[list[bytes], str]:
    """Frames to send the run, and what should come back: ``answered``, ``refused`` or ``nothing``."""
    shape = draw(st.sampled_from(["junk", "huge", "nested", "signed"]))
    if shape == "junk":
        return draw(st.lists(st.binary(max_size=200), min_size=1, max_size=6)), "refused"
    if shape == "huge":
        size = draw(st.integers(MAX_REQUEST + 1, 8 * MAX_REQUEST))
        frames = [b"", b"{}", b"x" * size] if draw(st.booleans()) else [b"x" * size]
        return frames, "nothing"
    if shape == "nested":
        depth = draw(st.integers(1, 40_000))
        body = b"[" * depth + b"]" * depth
        expected = "nothing" if len(body) > MAX_REQUEST else "refused" if depth > MAX_DEPTH else "answered"
        return signed(key, "ping", None, body=body), expected

    kind = draw(st.sampled_from(sorted(KINDS[REQUEST] | KINDS[REPLY] | KINDS[EVENT]) + ["", "x" * 40]))
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                               lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                            max_size=4),
                               max_leaves=20)
    payload = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=5) | json_values)
    if kind == "command" and isinstance(payload, dict):
        payload["name"] = draw(st.sampled_from(SAFE_COMMANDS))  # fuzz the channel, not the run's commands
        payload["args"] = draw(st.lists(st.text(max_size=20), max_size=3))
    offset = draw(st.sampled_from([0.0, -1.0, 2.0, 10.0, 59.0, -61.0, math.nan, math.inf, None]))
    direction = draw(st.sampled_from([REQUEST, REQUEST, REQUEST, REPLY, EVENT, "sideways"]))
    version = draw(st.sampled_from([PROTOCOL, PROTOCOL, PROTOCOL, 1, str(PROTOCOL)]))
    message_id = draw(st.sampled_from(["fresh", "fresh", "", "x" * 65, 7]))
    signing = draw(st.sampled_from(["good", "good", "good", "flipped", "other key", "none"]))
    fields: dict[str, Any] = {"v": version, "id": uuid.uuid4().hex if message_id == "fresh" else message_id}
    if offset is None:
        frames = signed(key, kind, payload, direction=direction, **fields)
        head = json.loads(frames[1])
        del head["time"]
        header = json.dumps(head).encode()
        frames = [Signer(key).signature(header, frames[2]), header, frames[2]]
    else:
        frames = signed(key, kind, payload, sent=time.time() + offset, direction=direction, **fields)
    if signing == "flipped":
        frames[0] = bytes([frames[0][0] ^ 1]) + frames[0][1:]
    elif signing == "other key":
        frames[0] = Signer(new_key()).signature(frames[1], frames[2])
    elif signing == "none":
        frames[0] = b""
    good = (signing == "good" and version == PROTOCOL and message_id == "fresh" and direction == REQUEST
            and kind in KINDS[REQUEST] and offset is not None and -MAX_AGE < offset < MAX_SKEW)
    if len(frames[2]) > MAX_REQUEST:
        return frames, "nothing"
    return frames, "answered" if good else "refused"


def test_fuzzed_messages_never_hurt_the_run_or_its_channel(local):
    key = local.connection["key"]
    control = local.connection["control"]
    context = zmq.Context()
    seen = {"answered": 0, "refused": 0, "nothing": 0}

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        frames, expected = data.draw(fuzzed_message(key))
        seen[expected] += 1
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(control)
        try:
            dealer.send_multipart(frames)
            if expected == "nothing":
                return  # the run drops a peer that sends a frame beyond its limit: nothing to wait for
            assert dealer.poll(30_000), f"no answer to a message that should be {expected}"
            answer = dealer.recv_multipart()
            if expected == "refused":
                assert refusal(answer).startswith("refused: ")
            else:
                kind, reply = Signer(key).unpack(answer, REPLY)
                assert kind in KINDS[REPLY] and isinstance(reply, dict)
        finally:
            dealer.close()

    with local.connect() as client:
        before = current_iter(client)
        try:
            check()
        finally:
            context.term()
        assert min(seen.values()) > 0, seen
        assert current_iter(client) > before, "the run stopped training during the fuzz"
    trains_and_answers(local)
    assert FAILED not in local.run_log()
