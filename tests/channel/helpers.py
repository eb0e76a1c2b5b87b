"""What the channel's test modules share: a child training process, raw ZeroMQ peers, hand-made messages.

(tests/support.py holds what the whole suite shares; this holds what only tests/channel uses.)
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from support import child_env, wait_for

from cockpit.channel import RunClient
from cockpit.channel.auth import PROTOCOL, REQUEST, Signer


def within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()``'s result or exception, failing if it takes longer than ``seconds`` (it must not hang)."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            box["error"] = error

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s: it hangs"
    if "error" in box:
        raise box["error"]
    return box["value"]


class Child:
    """One ``cockpit run --no-tui`` training process, its work dir and its output file.

    Args:
        folder: a new folder for it (created); the config is written there by the caller.
        config: the config file.
        extra: more ``cockpit run`` arguments.
        env: environment changes (a value of None removes the variable).
    """

    def __init__(self, folder: Path, config: Path, *extra: str, env: dict[str, str | None] | None = None) -> None:
        self.folder = folder
        self.release = folder / "release"
        self.config = config
        self.work = folder / "w"
        self.output = folder / "output.log"
        environment = child_env()
        for name, value in (env or {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cockpit.cli", "run", str(config), "--no-tui", "--work-dir",
                 str(self.work), *extra], stdout=out, stderr=subprocess.STDOUT, cwd=folder, env=environment)
        self._run_dir: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def run_dir(self) -> Path:
        """The run folder, once the run serves (its connection file exists)."""
        if self._run_dir is None:
            def serving() -> Path | None:
                if self.process.poll() is not None:
                    raise AssertionError(f"the run exited early ({self.process.returncode}): {self.log()[-3000:]}")
                found = list(self.work.glob("*/cockpit.json"))
                return found[0].parent if found else None

            self._run_dir = wait_for(serving, 120, "the run to serve")
        return self._run_dir

    @property
    def connection(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "cockpit.json").read_text())

    def connect(self, timeout: float = 10.0) -> RunClient:
        return RunClient.connect(self.run_dir, timeout=timeout)

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def run_log(self) -> str:
        """The run's own log file (``<timestamp>.log`` in the run folder)."""
        return "".join(path.read_text(errors="replace") for path in self.run_dir.glob("*.log"))

    def run_record(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "run.json").read_text())

    def rss(self) -> int:
        """The training process's resident memory, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS for process {self.pid}")

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the run did not end in {timeout} s: {self.log()[-3000:]}") from None

    def end(self) -> None:
        """Stop it (gracefully, then for sure) if it still runs, and remove what a killed run leaves."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._run_dir is not None and (self._run_dir / "cockpit.json").exists():
            address = json.loads((self._run_dir / "cockpit.json").read_text())["control"]
            if address.startswith("ipc://"):
                shutil.rmtree(Path(address[len("ipc://"):]).parent, ignore_errors=True)


def end_all(children: list[Child]) -> None:
    """SIGTERM every child still running first (their shutdowns overlap), then end each."""
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        child.end()


# --- raw peers ------------------------------------------------------------------------------------
def curve_options(connection: dict[str, Any] | None) -> dict[int, bytes]:
    """The socket options of a CURVE client holding ``connection``'s keys (nothing for ipc)."""
    curve = (connection or {}).get("curve")
    if not curve:
        return {}
    return {zmq.CURVE_SERVERKEY: curve["server_key"].encode(), zmq.CURVE_PUBLICKEY: curve["public_key"].encode(),
            zmq.CURVE_SECRETKEY: curve["secret_key"].encode()}


def raw_socket(kind: int, address: str, options: dict[int, Any] | None = None) -> tuple[zmq.Context, zmq.Socket]:
    """A bare socket of ``kind`` connected to ``address`` (``options`` set before connecting)."""
    context = zmq.Context()
    socket = context.socket(kind)
    socket.setsockopt(zmq.LINGER, 0)
    for option, value in (options or {}).items():
        socket.setsockopt(option, value)
    if kind == zmq.SUB:
        socket.setsockopt(zmq.SUBSCRIBE, b"")
    socket.connect(address)
    return context, socket


def raw_dealer(address: str, options: dict[int, Any] | None = None) -> tuple[zmq.Context, zmq.Socket]:
    return raw_socket(zmq.DEALER, address, options)


def answer_to(dealer: zmq.Socket, frames: list[bytes], timeout: float = 10.0) -> list[bytes]:
    dealer.send_multipart(frames)
    assert dealer.poll(int(timeout * 1000)), "no answer at all"
    return dealer.recv_multipart()


def refusal(frames: list[bytes]) -> str:
    """The reason of an unsigned refusal (fails on anything else)."""
    assert frames[0] == b"", f"expected an unsigned refusal, got {frames!r}"
    return json.loads(frames[-1])["error"]


def signed(key: str, kind: str, payload: Any, sent: float | None = None, direction: str = REQUEST,
           body: bytes | None = None, **header: Any) -> list[bytes]:
    """A correctly signed message, which may claim any time, direction or header field.

    Args:
        key: the run's key.
        kind: the message type.
        payload: the payload (JSON-encoded unless ``body`` gives the bytes).
        sent: the time it claims to be sent (now by default).
        direction: the direction it claims.
        body: the payload's bytes as they are, instead of ``payload`` encoded.
        header: header fields to add or replace.
    """
    head = {"v": PROTOCOL, "id": uuid.uuid4().hex, "time": time.time() if sent is None else sent,
            "dir": direction, "type": kind, **header}
    encoded = json.dumps(head).encode()
    content = json.dumps(payload).encode() if body is None else body
    return [Signer(key).signature(encoded, content), encoded, content]

