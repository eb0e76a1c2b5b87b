"""A real training process steered through the channel: commands, their effects, security, robustness.

One set of training processes serves the whole module (they start together, so their start-up
overlaps): ``steady`` is a finite run that is disturbed and must still end exactly like an
undisturbed run; ``live`` takes every command and ends with ``stop nosave``; ``listen`` serves TCP
and ends with ``stop``; ``stale`` is killed with SIGKILL. The test process talks to them with
``RunClient`` and with raw ZeroMQ sockets.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from support import child_env, free_port_pair, wait_for, write_child_config

from channel.helpers import (
    Child,
    answer_to,
    curve_options,
    end_all,
    raw_dealer,
    refusal,
    signed,
    within,
)
from cockpit import Config, Runner
from cockpit.channel import ConnectionError_, RunClient, StaleConnectionError, find_runs
from cockpit.channel.auth import REPLY, REQUEST, Signer, new_key
from cockpit.checkpoint import load_checkpoint, read_pointer

EPOCH = 8  # iterations per epoch
STEADY_EPOCHS = 50


def write_config(folder: Path, max_epochs: int, seconds: float, release: Path | None) -> Path:
    """The module's runs: slow until ``release`` exists; a ``note`` command; no validation or save of their own."""
    return write_child_config(folder, max_epochs=max_epochs, seconds=seconds, release=release, dropout=0.2,
                              momentum=0.9, val_interval=10 ** 6, log_interval=50, checkpoint_interval=10 ** 6,
                              seed=3, custom_hooks=[dict(type="support.NoteHook")])


def start_child(folder: Path, max_epochs: int, seconds: float, *extra: str) -> Child:
    folder.mkdir(parents=True)
    return Child(folder, write_config(folder, max_epochs, seconds, folder / "release"), *extra)


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    root = tmp_path_factory.mktemp("channel")
    port = free_port_pair()
    runs = {}
    try:
        runs["steady"] = start_child(root / "steady", STEADY_EPOCHS, 0.1)
        runs["live"] = start_child(root / "live", 10 ** 5, 0.005)
        runs["listen"] = start_child(root / "listen", 10 ** 5, 0.1, "--listen", f"127.0.0.1:{port}")
        runs["listen"].port = port
        runs["stale"] = start_child(root / "stale", 10 ** 5, 0.1)
        yield runs
    finally:
        end_all(list(runs.values()))


@pytest.fixture(scope="module")
def live(children) -> Child:
    return children["live"]


@pytest.fixture(scope="module")
def steady(children) -> Child:
    return children["steady"]


@pytest.fixture
def client(live):
    live.run_dir  # noqa: B018 - it serves
    with RunClient.connect(live.work, timeout=10) as client:  # the work dir: its newest live run
        assert client.pid == live.pid
        yield client


# --- helpers ------------------------------------------------------------------------------------
def info(client: RunClient) -> dict[str, Any]:
    return client.snapshot(max_points=1)["info"]


def current_iter(client: RunClient) -> int:
    return int(info(client).get("iter", 0))  # no 'iter' before the first iteration starts


def scalar(snapshot: dict[str, Any], key: str) -> dict[int, float]:
    data = snapshot["scalars"][key]
    return dict(zip(data["steps"], data["values"], strict=True))


def applied(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["done"] and answer["outcome"] == "applied", answer
    return answer


def follow(client: RunClient) -> None:
    """Take a snapshot and wait until the event stream flows, so no command event is missed."""
    client.snapshot(max_points=1)
    wait_for(lambda: client.poll_events(0.2), 20, "the first events")


def collect(client: RunClient, until: Callable[[list[dict]], bool], timeout: float = 30) -> list[dict]:
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while not until(events):
        assert time.monotonic() < deadline, f"timed out; got {len(events)} events"
        events.extend(client.poll_events(0.1))
    return events


def finished(events: list[dict], ids: set[str]) -> bool:
    return ids <= {e["id"] for e in events if e["t"] == "CommandFinished"}


def tcp_listeners(pid: int) -> set[tuple[str, int]]:
    """(hex address, port) of every listening TCP socket the process holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, port = fields[1].split(":")
            if fields[3] == "0A" and fields[9] in inodes:
                found.add((address, int(port, 16)))
    return found


# === the steady run: disturbed, and still ending like an undisturbed one =========================
# (first in the module: it is finite, and it stays slow only until the last test releases it)
def test_bad_commands_are_rejected_with_a_reason_and_the_run_goes_on(steady, tmp_path):
    foreign = tmp_path / "foreign.pth"
    torch.save({"weights": torch.zeros(4, 8), "epoch": 3}, foreign)
    with steady.connect() as client:
        start = current_iter(client)
        cases = [
            (("bogus",), "unknown command 'bogus'; this run understands: continue, guard-continue, guard-rollback, guard-stop, note, pause"),
            (("set", "lr=abc"), "'abc' is not a number"),
            (("resume",), "resume takes one argument"),
            (("resume", str(tmp_path / "missing.pth")), "missing.pth does not exist"),
            (("resume", str(foreign)), "is not a Cockpit training checkpoint"),
        ]
        for (name, *args), reason in cases:
            answer = client.command(name, *args, timeout=30)
            assert answer["done"] and answer["outcome"] == "rejected", answer
            assert reason in answer["message"]
        wait_for(lambda: current_iter(client) > start + 3, 30, "training to go on")
        assert client.ping()["status"] == "running"


def test_a_flood_of_garbage_does_not_disturb_training(steady):
    with steady.connect() as client:
        before = current_iter(client)
        context, dealer = raw_dealer(client.info["control"])
        try:
            rng = random.Random(0)
            header = json.dumps({"id": "x", "time": time.time(), "type": "command"}).encode()
            for i in range(1000):
                kind = i % 4
                if kind == 0:
                    frames = [rng.randbytes(rng.randrange(1, 200))]
                elif kind == 1:
                    frames = [rng.randbytes(64), rng.randbytes(40), rng.randbytes(40)]
                elif kind == 2:  # well-formed, but signed with a guessed key
                    frames = [rng.randbytes(64).hex().encode(), header, b'{"name":"stop","args":[]}']
                else:
                    frames = [b""] * rng.randrange(2, 8)
                dealer.send_multipart(frames, copy=False)
            dealer.send_multipart([b"x" * (2 << 20)])  # beyond the server's message size limit
            # Training went on while the flood was served, and the run still answers and obeys.
            wait_for(lambda: current_iter(client) > before + 5, 30, "training to go on during the flood")
            assert client.ping()["status"] == "running"
            assert applied(client.command("note", "after-the-flood", timeout=30))["message"] == "noted after-the-flood"
        finally:
            dealer.close()
            context.term()


VIEW = """
import sys
from cockpit.channel import RunClient

client = RunClient.connect(sys.argv[1])
client.snapshot()
count = 0
for event in client.events():
    count += 1
    if count == 1 or count % 100 == 0:
        print('events', count, flush=True)
"""


def test_killing_a_view_mid_stream_leaves_training_going(steady):
    view = subprocess.Popen([sys.executable, "-c", VIEW, str(steady.run_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=child_env())
    try:
        lines = []
        while len(lines) < 3:  # 'events 1', 'events 100', 'events 200': well inside the stream
            line = within(60, view.stdout.readline)
            assert line, f"the view ended: {''.join(lines)}"
            lines.append(line)
        os.kill(view.pid, signal.SIGKILL)
        assert view.wait(10) == -signal.SIGKILL
    finally:
        if view.poll() is None:
            view.kill()
            view.wait(10)
        view.stdout.close()
    with steady.connect() as client:
        before = current_iter(client)
        wait_for(lambda: current_iter(client) > before + 5, 30, "training to go on")
        assert client.ping()["status"] == "running"


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    """The steady run's final weights, trained here without any view, command or delay."""
    folder = tmp_path_factory.mktemp("undisturbed")
    cfg = Config.fromfile(write_config(folder, STEADY_EPOCHS, 0.0, None))
    cfg["work_dir"] = str(folder / "w")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the child runs
    try:
        Runner.from_cfg(cfg, log_to_console=False).train()
    finally:
        torch.set_num_threads(threads)
    return load_checkpoint(folder / "w" / f"epoch_{STEADY_EPOCHS}.pth")["state_dict"]


def test_the_disturbed_run_finishes_exactly_like_an_undisturbed_one(steady, undisturbed):
    steady.run_dir  # noqa: B018 - it serves (and was steered above)
    steady.release.touch()
    assert steady.wait(180) == 0, steady.log()[-3000:]
    assert "cockpit: finished" in steady.log()
    final = load_checkpoint(steady.work / f"epoch_{STEADY_EPOCHS}.pth")["state_dict"]
    assert final.keys() == undisturbed.keys()
    for name, tensor in undisturbed.items():
        assert final[name].equal(tensor), f"the disturbed run's weights differ at {name}"
    record = json.loads((steady.run_dir / "run.json").read_text())
    assert record["status"] == "finished" and record["iter"] == STEADY_EPOCHS * EPOCH
    assert not (steady.run_dir / "cockpit.json").exists(), "the connection file outlived the run"


# === the live run: each command and its effect ==================================================
def test_save_writes_a_checkpoint_that_loads(client):
    answer = applied(client.command("save"))
    path = Path(answer["message"].removeprefix("saved "))
    assert path.is_file() and path.name.startswith("iter_")
    saved = load_checkpoint(path)
    assert saved["meta"]["iter"] == int(path.stem.split("_")[1]) > 0
    assert {"state_dict", "optimizer", "message_hub", "rng"} <= set(saved)
    assert read_pointer(path.parent) == path
    assert any(c["path"] == str(path) for c in client.snapshot(max_points=1)["checkpoints"])


def test_val_adds_val_metrics_mid_epoch(client):
    assert not any(k.startswith("val/") for k in client.snapshot(max_points=1)["scalars"])
    for _ in range(6):  # a command lands between epochs 1 time in 8; try again until one lands inside one
        answer = applied(client.command("val"))
        assert answer["message"].startswith("accuracy/top1=")
        steps = client.snapshot(max_points=10)["scalars"]["val/accuracy/top1"]["steps"]
        if steps[-1] % EPOCH:
            break
    else:
        pytest.fail(f"no validation landed mid-epoch: {steps}")
    snapshot = client.snapshot(max_points=10)
    accuracy = snapshot["scalars"]["val/accuracy/top1"]
    assert f"{accuracy['current']:.4f}" in answer["message"]
    assert snapshot["status"] == "running"


def _resume_and_compare(client: RunClient, live: Child, target: Callable[[Path], str]) -> None:
    path = Path(applied(client.command("save"))["message"].removeprefix("saved "))
    saved = load_checkpoint(path)
    at = saved["meta"]["iter"]
    # The original trajectory after the checkpoint: 20 more iterations.
    wait_for(lambda: current_iter(client) > at + 25, 60, "20 more iterations")
    applied(client.command("pause"))
    try:
        original = scalar(client.snapshot(max_points=400), "train/loss")
        assert all(step in original for step in range(at, at + 20))

        answer = applied(client.command("resume", target(path)))
        assert answer["message"].startswith(f"resumed from {path.name}: iter ")
        assert answer["message"].endswith(f" -> {at} (epoch {saved['meta']['epoch']})")
        snapshot = client.snapshot(max_points=400)
        hub = saved["message_hub"]  # the run's state as the checkpoint recorded it
        recorded = hub["runtime_info"] if "runtime_info" in hub else hub["info"]  # MMEngine's layout, or the older one
        assert (snapshot["info"]["epoch"], snapshot["info"]["iter"]) == (recorded["epoch"], recorded["iter"])
        assert snapshot["info"]["resumed_from"] == str(path)
        assert snapshot["scalars"]["train/lr"]["current"] == saved["optimizer"]["param_groups"][0]["lr"]
        assert max(scalar(snapshot, "train/loss")) == at - 1, "the hub still holds steps after the checkpoint"
        wait_for(lambda: (live.run_record()["epoch"], live.run_record()["iter"]) == (saved["meta"]["epoch"], at),
                 10, "run.json to show the checkpoint's position")
    finally:
        applied(client.command("continue"))
    wait_for(lambda: current_iter(client) > at + 25, 60, "20 iterations after the resume")
    replayed = scalar(client.snapshot(max_points=400), "train/loss")
    assert [replayed[s] for s in range(at, at + 20)] == [original[s] for s in range(at, at + 20)], \
        "the resumed run did not repeat the original losses"


@pytest.mark.parametrize("which", ["latest", "path"])
def test_resume_restores_the_checkpoint_and_replays_its_trajectory(client, live, which):
    _resume_and_compare(client, live, lambda path: "latest" if which == "latest" else str(path))


def test_pause_stops_iterations_until_continue(client, live):
    assert applied(client.command("pause"))["message"].startswith("paused at iter ")
    paused_at = time.time()
    try:
        record = wait_for(lambda: (r := live.run_record())["updated"] > paused_at and r, 5, "run.json to be written")
        assert record["status"] == "paused"
        first = info(client)
        time.sleep(1.0)
        later = client.snapshot(max_points=1)
        assert later["status"] == "paused"
        assert later["info"]["iter"] == first["iter"], "iterations went on while paused"
        newer = wait_for(lambda: (r := live.run_record())["updated"] > record["updated"] and r, 5,
                         "run.json to be written again")
        assert (newer["status"], newer["iter"]) == ("paused", record["iter"])
        again = client.command("pause")
        assert (again["outcome"], again["message"]) == ("rejected", "the run is already paused")
    finally:
        applied(client.command("continue"))
    wait_for(lambda: current_iter(client) > first["iter"] + 2, 30, "iterations after continue")
    assert client.snapshot(max_points=1)["status"] == "running"
    again = client.command("continue")
    assert (again["outcome"], again["message"]) == ("rejected", "the run is not paused")


def test_set_lr_changes_the_lr_the_next_checkpoint_and_survives_resume(client):
    def lr_now() -> float:
        return client.snapshot(max_points=1)["scalars"]["train/lr"]["current"]

    assert applied(client.command("set", "lr=0.05"))["message"].endswith("-> 0.05")
    wait_for(lambda: lr_now() == 0.05, 30, "train/lr to become 0.05")
    first = Path(applied(client.command("save"))["message"].removeprefix("saved "))
    assert load_checkpoint(first)["optimizer"]["param_groups"][0]["lr"] == 0.05

    assert applied(client.command("set", "lr*=0.5"))["message"] == "lr 0.05 -> 0.025"
    wait_for(lambda: lr_now() == 0.025, 30, "train/lr to become 0.025")
    second = Path(applied(client.command("save"))["message"].removeprefix("saved "))
    assert load_checkpoint(second)["optimizer"]["param_groups"][0]["lr"] == 0.025

    at = load_checkpoint(first)["meta"]["iter"]
    applied(client.command("resume", str(first)))
    wait_for(lambda: current_iter(client) > at + 5, 30, "iterations after the resume")
    lrs = client.snapshot(max_points=400)["scalars"]["train/lr"]
    after = [lr for step, lr in zip(lrs["steps"], lrs["values"], strict=True) if step >= at]
    assert after and set(after) == {0.05}, "the lr set before the checkpoint did not survive the resume"
    applied(client.command("set", "lr=0.1"))


def test_a_hook_command_is_listed_and_works(client):
    commands = {c["name"]: c for c in client.commands()}
    assert commands["note"]["description"] == "put a note in the run info"
    assert commands["note"]["usage"] == "note <text>" and commands["note"]["args"][0]["name"] == "text"
    assert commands["save"]["key"] == "s" and commands["resume"]["args"][0]["kind"] == "checkpoint"
    assert {"val", "save", "resume", "pause", "continue", "stop", "set"} <= set(commands)
    assert applied(client.command("note", "hello there"))["message"] == "noted hello there"
    assert info(client)["note"] == "hello there"


def test_every_command_is_acknowledged_then_finished_in_the_stream(client):
    follow(client)
    good = [client.command("note", "one", wait=False), client.command("save", wait=False)]
    bad = [client.command("bogus", wait=False), client.command("set", "lr=abc", wait=False)]
    for answer in bad:  # refused on the spot: the answer already says so
        assert answer["done"] and answer["outcome"] == "rejected"
    ids = {a["id"] for a in good + bad}
    assert len(ids) == 4 and all(ids)
    events = collect(client, lambda got: finished(got, ids))
    for answer in good:
        accepted = [e for e in events if e["t"] == "CommandAccepted" and e["id"] == answer["id"]]
        done = [e for e in events if e["t"] == "CommandFinished" and e["id"] == answer["id"]]
        assert len(accepted) == 1 and len(done) == 1
        assert accepted[0]["name"] == answer["name"] and list(accepted[0]["args"]) == answer["args"]
        assert accepted[0]["seq"] < done[0]["seq"] and done[0]["outcome"] == "applied"
    for answer in bad:
        assert not [e for e in events if e["t"] == "CommandAccepted" and e["id"] == answer["id"]]
        done = [e for e in events if e["t"] == "CommandFinished" and e["id"] == answer["id"]]
        assert len(done) == 1 and done[0]["outcome"] == "rejected" and done[0]["message"] == answer["message"]


def test_no_event_is_lost_while_a_command_waits_for_its_outcome(live):
    # command() reads the event stream while it waits; what it read must still reach poll_events.
    with live.connect() as client:
        follow(client)
        seqs = [e["seq"] for e in client.poll_events(0.2)]
        for n in range(5):
            applied(client.command("note", f"n{n}"))
            seqs += [e["seq"] for e in client.poll_events(0.1)]
        missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
        assert not missing, f"{len(missing)} events never reached poll_events: {missing[:20]}"
        assert seqs == sorted(seqs)


def test_several_clients_see_the_same_events_and_can_all_send_commands(live):
    clients = [live.connect() for _ in range(3)]
    try:
        for client in clients:
            follow(client)
        ids = {applied(client.command("note", f"from client {n}"))["id"] for n, client in enumerate(clients)}
        streams = []
        for client in clients:
            events = collect(client, lambda got: finished(got, ids))
            events += client.poll_events(0.3)
            assert not [e for e in events if e["t"] == "Snapshot"], "a client lost events"
            streams.append({e["seq"]: e for e in events})
        low = max(min(s) for s in streams)
        high = min(max(s) for s in streams)
        assert high - low > 20, "the clients' windows barely overlap"
        window = [{seq: e for seq, e in s.items() if low <= seq <= high} for s in streams]
        assert list(window[0]) == list(range(low, high + 1)), "events are missing in the window"
        assert window[0] == window[1] == window[2]
        for stream in streams:
            outcomes = {e["id"]: e["outcome"] for e in stream.values() if e["t"] == "CommandFinished"}
            assert all(outcomes.get(i) == "applied" for i in ids)
    finally:
        for client in clients:
            client.close()


# === security ===================================================================================
def test_a_client_with_the_wrong_key_is_refused(live):
    with live.connect() as client:
        checkpoints = len(client.snapshot(max_points=1)["checkpoints"])
        forged = dict(client.info, key=new_key())
    with RunClient(forged, timeout=5) as intruder:
        with pytest.raises(ConnectionError_, match="signature"):
            intruder.ping()
        with pytest.raises(ConnectionError_, match="signature"):
            intruder.command("save")
    with live.connect() as client:
        assert len(client.snapshot(max_points=1)["checkpoints"]) == checkpoints


def test_unsigned_messages_get_no_signed_answer_and_change_nothing(live):
    with live.connect() as client:
        follow(client)
        checkpoints = len(client.snapshot(max_points=1)["checkpoints"])
        key = client.info["key"]
        context, dealer = raw_dealer(client.info["control"])
        try:
            _, header, body = signed(key, "command", {"name": "save", "args": [], "request_id": "u"})
            tampered = signed(key, "command", {"name": "note", "args": ["x"], "request_id": "t"})
            tampered[2] = body  # a real signature, for another payload
            for frames in ([b"junk"], [b"", header, body], [b"0" * 64, header, body], tampered,
                           [b"a", b"b", b"c", b"d", b"e"]):
                reason = refusal(answer_to(dealer, frames))
                assert reason.startswith("refused: ")
            time.sleep(0.5)
        finally:
            dealer.close()
            context.term()
        events = client.poll_events(0.5)
        assert not [e for e in events if e["t"] in ("CommandAccepted", "CommandFinished")]
        assert len(client.snapshot(max_points=1)["checkpoints"]) == checkpoints


def test_a_replayed_message_is_refused(live):
    with live.connect() as client:
        follow(client)
        key = client.info["key"]
        frames = Signer(key).pack(REQUEST, "command", {"name": "save", "args": [], "request_id": "replay"})
        context, dealer = raw_dealer(client.info["control"])
        try:
            kind, answer = Signer(key).unpack(answer_to(dealer, frames), REPLY, check_replay=False)
            assert kind == "command" and answer["name"] == "save" and answer["request_id"] == "replay"
            assert "replayed" in refusal(answer_to(dealer, frames))
        finally:
            dealer.close()
            context.term()
        events = collect(client, lambda got: finished(got, {answer["id"]}))
        events += client.poll_events(0.5)
        saves = [e for e in events if e["t"] == "CommandAccepted" and e["name"] == "save"]
        assert [e["id"] for e in saves] == [answer["id"]], "the replayed save ran twice"


@pytest.mark.parametrize("age", [120, -120], ids=["old", "future"])
def test_a_stale_message_is_refused(live, age):
    with live.connect() as client:
        follow(client)
        context, dealer = raw_dealer(client.info["control"])
        try:
            frames = signed(client.info["key"], "command", {"name": "save", "args": [], "request_id": "s"},
                            sent=time.time() - age)
            reason = refusal(answer_to(dealer, frames))
            assert ("stale message" if age > 0 else "message from the future") in reason
            fresh = signed(client.info["key"], "ping", {"request_id": "p"})
            kind, answer = Signer(client.info["key"]).unpack(answer_to(dealer, fresh), REPLY, check_replay=False)
            assert kind == "ping" and answer["pid"] == live.pid  # the same signing, in time, is served
        finally:
            dealer.close()
            context.term()
        events = client.poll_events(0.5)
        assert not [e for e in events if e["t"] == "CommandAccepted"]


def test_a_connection_file_others_can_read_is_refused(live, tmp_path):
    copy = tmp_path / "cockpit.json"
    shutil.copy(live.run_dir / "cockpit.json", copy)
    assert stat.S_IMODE((live.run_dir / "cockpit.json").stat().st_mode) == 0o600
    copy.chmod(0o644)
    with pytest.raises(ConnectionError_, match="chmod 600"):
        RunClient.connect(copy)
    copy.chmod(0o600)
    with RunClient.connect(copy) as client:
        assert client.ping()["pid"] == live.pid


def test_no_tcp_listener_by_default(live):
    live.run_dir  # noqa: B018 - serving
    assert tcp_listeners(live.pid) == set()
    connection = json.loads((live.run_dir / "cockpit.json").read_text())
    assert connection["control"].startswith("ipc://") and connection["events"].startswith("ipc://")
    folder = Path(connection["control"][len("ipc://"):]).parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_listen_serves_tcp_and_still_requires_the_key(children):
    child = children["listen"]
    child.run_dir  # noqa: B018 - serving
    loopback = f"{socket.htonl(0x7F000001):08X}"  # 127.0.0.1 as /proc/net/tcp writes it
    assert tcp_listeners(child.pid) == {(loopback, child.port), (loopback, child.port + 1)}
    with child.connect() as client:
        assert client.info["control"] == f"tcp://127.0.0.1:{child.port}"
        assert client.ping()["pid"] == child.pid
        assert applied(client.command("note", "over tcp"))["message"] == "noted over tcp"
        forged = dict(client.info, key=new_key())
    with RunClient(forged, timeout=5) as intruder, pytest.raises(ConnectionError_, match="signature"):
        intruder.command("stop")
    # A peer that completed the CURVE handshake (it holds the connection file) still needs the signing key.
    context, dealer = raw_dealer(f"tcp://127.0.0.1:{child.port}", curve_options(child.connection))
    try:
        assert refusal(answer_to(dealer, [b"", b"{}", b'{"name": "stop"}'])).startswith("refused: ")
    finally:
        dealer.close()
        context.term()
    assert child.process.poll() is None


# === ending runs ================================================================================
def _stop(child: Child, *args: str) -> dict[str, Any]:
    with child.connect() as client:
        follow(client)
        answer = client.command("stop", *args, wait=False)
        events = collect(client, lambda got: finished(got, {answer["id"]}), timeout=60)
    assert child.wait(60) == 0, child.log()[-3000:]
    return next(e for e in events if e["t"] == "CommandFinished" and e["id"] == answer["id"])


def test_stop_ends_the_process_with_exit_0_and_a_final_checkpoint(children):
    child = children["listen"]  # (after its TCP test): stopped over TCP
    outcome = _stop(child)
    assert outcome["outcome"] == "applied" and outcome["message"].endswith("(checkpoint saved)")
    record = json.loads((child.run_dir / "run.json").read_text())
    assert record["status"] == "stopped" and record["detail"] == "command 'stop'"
    final = read_pointer(child.work)
    assert final is not None and final.name == f"iter_{record['iter']}.pth"
    assert load_checkpoint(final)["meta"]["iter"] == record["iter"] > 0
    assert "stopped (command 'stop')" in child.log()
    assert not (child.run_dir / "cockpit.json").exists()


def test_a_stale_connection_file_is_reported_and_never_hangs(children):
    child = children["stale"]
    run_dir = child.run_dir
    with child.connect(timeout=2) as connected:
        assert connected.ping()["pid"] == child.pid
        child.process.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
        assert (run_dir / "cockpit.json").exists(), "a killed run cannot remove its connection file"
        with pytest.raises(StaleConnectionError, match="gone"):
            within(15, connected.ping)  # a client that was connected learns the run is gone
    for target in (run_dir, run_dir / "cockpit.json"):
        with pytest.raises(StaleConnectionError, match=f"stale: the run's process {child.pid} is gone"):
            within(10, lambda target=target: RunClient.connect(target))
    with pytest.raises(ConnectionError_, match="no live run"):
        within(10, lambda: RunClient.connect(child.work))
    [record] = find_runs(child.work)
    assert record["status"] == "died" and not record["live"]


def test_stop_nosave_ends_the_process_without_a_checkpoint(live):
    # The live run's last test: it has saved checkpoints above; stopping it this way adds none.
    before = {p: p.stat().st_mtime_ns for p in live.work.rglob("*.pth")}
    pointer = read_pointer(live.work)
    outcome = _stop(live, "nosave")
    assert outcome["outcome"] == "applied" and outcome["message"].endswith("(no checkpoint)")
    assert json.loads((live.run_dir / "run.json").read_text())["status"] == "stopped"
    assert {p: p.stat().st_mtime_ns for p in live.work.rglob("*.pth")} == before
    assert read_pointer(live.work) == pointer
    assert "stopped (command 'stop')" in live.log()
