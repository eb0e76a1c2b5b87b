"""``RunClient``: the one way views and scripts talk to a run, local or remote.

    client = RunClient.connect("work_dirs/digits")    # the newest live run there
    state = client.snapshot()                         # everything, now
    for event in client.events(timeout=1.0): ...       # then every change, in order
    outcome = client.command("save")                  # {'outcome': 'applied', ...}

The client takes a snapshot and then follows the event stream, dropping
events the snapshot already holds. When it sees a gap in the sequence
numbers (its queue overflowed, or it joined late) it takes a new snapshot
and yields it as a ``{"t": "Snapshot", "snapshot": ...}`` event.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zmq

from cockpit.channel.auth import (
    CONNECTION_FILE,
    EVENT,
    MAX_ANSWER,
    REPLY,
    REQUEST,
    BadMessage,
    ConnectionError_,
    Signer,
    StaleConnectionError,
    check_depth,
    pid_alive,
    read_connection_file,
)
from cockpit.channel.server import RUN_FILE
from cockpit.events import rows_to_dicts


def _refusal(frame: bytes) -> str:
    """The reason in a run's unsigned refusal (it is unsigned: parsed with care, shown as plain text)."""
    try:
        check_depth(frame, 2)
        reason = json.loads(frame[:4096]).get("error", "refused")
    except (ValueError, AttributeError):
        return "refused"
    return str(reason)[:500]


def find_runs(root: str | Path = "work_dirs") -> list[dict[str, Any]]:
    """Every run folder under ``root`` with its ``run.json`` record, newest first.

    Each record gains ``live`` (its process is serving) and a ``status`` of ``died``
    when the process is gone without having recorded an end.
    """
    root = Path(root)
    records = []
    for run_file in root.glob(f"**/{RUN_FILE}"):
        try:
            record = json.loads(run_file.read_text())
        except (OSError, ValueError):
            continue
        record["run_dir"] = str(run_file.parent)
        alive = pid_alive(int(record.get("pid", 0))) if record.get("pid") else False
        record["live"] = alive and (run_file.parent / CONNECTION_FILE).exists()
        if not alive and record.get("status") in ("running", "paused", "validating", "saving", "created"):
            record["status"] = "died"
        record["mtime"] = run_file.stat().st_mtime
        records.append(record)
    return sorted(records, key=lambda r: r.get("mtime", 0), reverse=True)


def resolve_run(run: str | Path | None, root: str | Path = "work_dirs") -> Path:
    """The connection file for ``run``: a run folder, a connection file, or a work dir (its newest live run)."""
    if run is None:
        run = root
    path = Path(run)
    if path.is_file():
        return path
    if (path / CONNECTION_FILE).exists():
        return path / CONNECTION_FILE
    if path.is_dir():
        live = [r for r in find_runs(path) if r["live"]]
        if live:
            return Path(live[0]["run_dir"]) / CONNECTION_FILE
        raise ConnectionError_(f"no live run under {path} (`cockpit ls {path}` lists its runs)")
    raise ConnectionError_(f"{path} is neither a run folder, a connection file nor a folder of runs")


class RunClient:
    """A connection to one run. Safe to share between threads (a view's reader and its command senders).

    Args:
        info: the connection file's content.
        timeout: seconds to wait for an answer before checking whether the run is alive.
    """

    def __init__(self, info: dict[str, Any], timeout: float = 5.0) -> None:
        self.info = info
        self.timeout = timeout
        self.signer = Signer(info["key"])
        self.context = zmq.Context()
        self.sub = self._socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.setsockopt(zmq.RCVHWM, 100_000)
        self.sub.connect(info["events"])
        self.dealer = self._socket(zmq.DEALER)
        self.dealer.connect(info["control"])
        self.seq = 0
        self.resyncs = 0
        self._pending: list[dict[str, Any]] = []
        # ZeroMQ sockets are not thread-safe: every use of them goes through this lock.
        self._lock = threading.RLock()

    def _socket(self, kind: int) -> zmq.Socket:
        """A socket that takes nothing bigger than a run sends and, over TCP, speaks CURVE with the run's keys."""
        socket = self.context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.MAXMSGSIZE, MAX_ANSWER)
        if "[" in str(self.info.get("control", "")):
            socket.ipv6 = True  # the run listens on an IPv6 address
        curve = self.info.get("curve")
        if curve:
            socket.curve_serverkey = curve["server_key"].encode()
            socket.curve_publickey = curve["public_key"].encode()
            socket.curve_secretkey = curve["secret_key"].encode()
        return socket

    @classmethod
    def connect(cls, run: str | Path | None = None, root: str | Path = "work_dirs", timeout: float = 5.0) -> RunClient:
        """Connect to a run folder, a connection file, or the newest live run under a folder.

        Raises:
            ConnectionError_: nothing to connect to, or a connection file others can read.
            StaleConnectionError: the run's process is gone.
        """
        return cls(read_connection_file(resolve_run(run, root)), timeout=timeout)

    @property
    def pid(self) -> int:
        return int(self.info["pid"])

    # --- requests ------------------------------------------------------------------------
    def request(self, kind: str, payload: dict[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Send one signed request and return the run's answer.

        Raises:
            StaleConnectionError: no answer and the run's process is gone.
            ConnectionError_: no answer in time, or the run refused the request.
        """
        with self._lock:
            return self._request(kind, payload, timeout)

    def _request(self, kind: str, payload: dict[str, Any] | None, timeout: float | None) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        self.dealer.send_multipart(self.signer.pack(REQUEST, kind, {**(payload or {}), "request_id": request_id}))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.dealer.poll(int(left * 1000)):
                if not pid_alive(self.pid):
                    raise StaleConnectionError(f"the run's process {self.pid} is gone")
                raise ConnectionError_(f"no answer from the run (pid {self.pid}) to {kind!r} in time")
            frames = self.dealer.recv_multipart()
            if frames and frames[0] == b"":
                raise ConnectionError_(f"the run refused the request: {_refusal(frames[-1])}")
            try:
                answer_kind, answer = self.signer.unpack(frames, REPLY)
            except BadMessage as error:
                raise ConnectionError_(f"bad answer from the run: {error}") from None
            if not isinstance(answer, dict) or answer.get("request_id") != request_id:
                continue  # a late answer to an earlier request that timed out
            if answer_kind == "error":
                raise ConnectionError_(f"the run could not answer {kind!r}: {answer.get('error')}")
            return answer

    def snapshot(self, max_points: int | None = None) -> dict[str, Any]:
        """The run's whole state now; events after it continue from its ``seq``."""
        snapshot = self.request("snapshot", {"max_points": max_points})["snapshot"]
        self.seq = snapshot["seq"]
        return snapshot

    def commands(self) -> list[dict[str, Any]]:
        """The commands this run understands (built-ins and its hooks'), with descriptions."""
        return self.request("commands")["commands"]

    def ping(self) -> dict[str, Any]:
        return self.request("ping")

    def command(self, name: str, *args: str, wait: bool = True, timeout: float = 120.0) -> dict[str, Any]:
        """Send a command; with ``wait``, return once it was applied, rejected or failed.

        Returns:
            ``{'id', 'name', 'args', 'done', 'outcome', 'message'}``; ``outcome`` is empty
            when ``wait`` is False or the timeout passed first.
        """
        answer = self.request("command", {"name": name, "args": [str(a) for a in args]})
        deadline = time.monotonic() + timeout
        next_check = time.monotonic() + 0.5
        while wait and not answer.get("done") and time.monotonic() < deadline:
            # The outcome comes on the event stream within milliseconds of being applied; the
            # events read meanwhile are kept for poll_events. Asking now and then covers a
            # lost event (the stream may drop; requests do not).
            with self._lock:
                events = self._read_events(0.02)
                self._pending.extend(events)
            for event in events:
                if event["t"] == "CommandFinished" and event["id"] == answer["id"]:
                    return {**answer, "done": True, "outcome": event["outcome"], "message": event["message"]}
            if time.monotonic() >= next_check:
                answer = self.request("outcome", {"id": answer["id"]})
                next_check = time.monotonic() + 0.5
        return answer

    # --- events --------------------------------------------------------------------------
    def poll_events(self, timeout: float = 0.0) -> list[dict[str, Any]]:
        """The events that arrived, in order, waiting up to ``timeout`` for the first batch."""
        with self._lock:
            if self._pending:
                pending, self._pending = self._pending, []
                return pending + self._read_events(0.0)
        # Wait in short slices, so a command sent from another thread meanwhile is not held up.
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                events = self._read_events(min(0.02, max(0.0, deadline - time.monotonic())))
            if events or time.monotonic() >= deadline:
                return events

    def _read_events(self, timeout: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        waited = False
        while True:
            if not self.sub.poll(0 if waited else int(timeout * 1000)):
                return out
            waited = True
            frames = self.sub.recv_multipart()
            try:
                _, batch = self.signer.unpack(frames, EVENT, check_replay=False)
            except BadMessage:
                continue
            if not isinstance(batch, dict) or not isinstance(batch.get("last"), int):
                continue
            if batch["last"] <= self.seq:
                continue
            if batch["first"] > self.seq + 1 and self.seq:
                # A gap: events were lost (a full queue, a late join). Start again from a snapshot.
                self.resyncs += 1
                out.append({"t": "Snapshot", "seq": 0, "snapshot": self.snapshot()})
                continue
            rows = batch.get("events")
            if isinstance(rows, list):
                out += rows_to_dicts(rows, after=self.seq)
            self.seq = batch["last"]

    def events(self, timeout: float | None = None, poll: float = 0.1) -> Iterator[dict[str, Any]]:
        """Yield events as they come; stop after ``timeout`` seconds without any (forever if None)."""
        quiet_since = time.monotonic()
        while True:
            batch = self.poll_events(poll)
            if batch:
                quiet_since = time.monotonic()
                yield from batch
            elif timeout is not None and time.monotonic() - quiet_since > timeout:
                return

    def close(self) -> None:
        with self._lock:
            self.sub.close()
            self.dealer.close()
            self.context.term()

    def __enter__(self) -> RunClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
