"""The channel server: one thread in the training process that serves the hub and the queue.

Hub events go out on a PUB socket, batched every few milliseconds into one
signed message that carries the sequence numbers it covers. Requests come in
on a ROUTER socket: ``snapshot``, ``command``, ``outcome``, ``commands``,
``ping``. The training thread never waits for this one: it only appends to the
hub's bounded subscription queue, and a slow or dead view loses old events
(and re-syncs from a snapshot), never slows training.

The server also keeps ``run.json`` in the run folder current (status, epoch,
iter, last checkpoint), which ``cockpit ls`` reads without connecting.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from cockpit.channel.auth import (
    CONNECTION_FILE,
    BadMessage,
    Signer,
    new_key,
    socket_folder,
    write_connection_file,
)
from cockpit.events import encode_event

if TYPE_CHECKING:
    from cockpit.interface import RunContext
    from cockpit.steering import ControlQueue

RUN_FILE = "run.json"


class ChannelServer:
    """Serves one run to any number of views.

    Args:
        run: the run.
        control: its command queue.
        listen: ``'HOST:PORT'`` to also accept TCP (control on PORT, events on PORT+1); by
            default only private Unix sockets are used.
        batch_interval: seconds between event batches.
    """

    def __init__(self, run: RunContext, control: ControlQueue, listen: str | None = None,
                 batch_interval: float = 0.005) -> None:
        self.run = run
        self.control = control
        self.listen = listen
        self.batch_interval = batch_interval
        self.run_dir = Path(run.log_dir)
        self.connection_file = self.run_dir / CONNECTION_FILE
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._folder: Path | None = None
        self.published = 0
        self.dropped_batches = 0

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> ChannelServer:
        key = new_key()
        self.signer = Signer(key)
        self.context = zmq.Context()
        self.pub = self.context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 10_000)
        self.pub.setsockopt(zmq.LINGER, 1000)  # let the final status reach views at exit
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 200)
        self.router.setsockopt(zmq.MAXMSGSIZE, 1 << 20)  # no view sends more; junk is dropped
        if self.listen:
            host, _, port = self.listen.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"--listen wants HOST:PORT (e.g. 127.0.0.1:5555), got {self.listen!r}")
            control, events = f"tcp://{host}:{int(port)}", f"tcp://{host}:{int(port) + 1}"
        else:
            self._folder = socket_folder()
            control, events = f"ipc://{self._folder}/ctl", f"ipc://{self._folder}/ev"
        self.router.bind(control)
        self.pub.bind(events)
        self.subscription = self.run.message_hub.subscribe(maxlen=500_000)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.info = {
            "pid": os.getpid(),
            "control": control,
            "events": events,
            "key": key,
            "signature_scheme": "hmac-sha256",
            "experiment_name": self.run.experiment_name,
            "run_dir": str(self.run_dir),
            "work_dir": str(self.run.work_dir),
            "started": time.time(),
        }
        write_connection_file(self.connection_file, self.info)
        self._write_run_file()
        self._thread = threading.Thread(target=self._serve, name="cockpit-channel", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Publish what is left, write the final ``run.json``, remove the connection file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.subscription.close()
        self._write_run_file()
        self.connection_file.unlink(missing_ok=True)
        self.pub.close()
        self.router.close()
        self.context.term()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> ChannelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the thread -----------------------------------------------------------------------
    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        timeout_ms = max(1, int(self.batch_interval * 1000))
        last_file_write = 0.0
        while not self._stop.is_set():
            if poller.poll(timeout_ms):
                # Bounded per pass, so a flood of requests cannot starve the event stream.
                for _ in range(200):
                    try:
                        frames = self.router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._handle(frames)
            self._publish()
            now = time.monotonic()
            if now - last_file_write > 1.0:
                self._write_run_file()
                last_file_write = now
        self._publish()

    def _publish(self) -> None:
        events = self.subscription.poll(limit=20_000)
        if not events:
            return
        payload = {"first": events[0].seq, "last": events[-1].seq, "events": [encode_event(e) for e in events]}
        try:
            self.pub.send_multipart(self.signer.pack("events", payload), zmq.NOBLOCK)
            self.published += len(events)
        except zmq.Again:
            self.dropped_batches += 1

    def _reply(self, identity: bytes, kind: str, payload: Any) -> None:
        try:
            self.router.send_multipart([identity, *self.signer.pack(kind, payload)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the view went away; nothing to do

    def _handle(self, frames: list[bytes]) -> None:
        identity, message = frames[0], frames[1:]
        try:
            kind, payload = self.signer.unpack(message)
        except BadMessage as error:
            # Not signed with the run's key: answer with an unsigned refusal and nothing else.
            try:
                refusal = json.dumps({"error": f"refused: {error}"}).encode()
                self.router.send_multipart([identity, b"", b'{"type": "error"}', refusal], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
            return
        reply_to = payload.get("request_id") if isinstance(payload, dict) else None
        try:
            result = self._answer(kind, payload if isinstance(payload, dict) else {})
        except Exception as error:  # noqa: BLE001 - a bad request must never hurt the run
            self._reply(identity, "error", {"request_id": reply_to, "error": f"{type(error).__name__}: {error}"})
            return
        self._reply(identity, kind, {"request_id": reply_to, **result})

    def _answer(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        control = self.control
        if kind == "snapshot":
            return {"snapshot": self.run.message_hub.snapshot(max_points=payload.get("max_points"))}
        if kind == "command":
            request = control.submit(str(payload.get("name", "")), [str(a) for a in payload.get("args", [])])
            return request.describe()
        if kind == "outcome":
            request = control.requests.get(str(payload.get("id")))
            if request is None:
                raise KeyError(f"no command with id {payload.get('id')!r}")
            return request.describe()
        if kind == "commands":
            return {"commands": control.commands.describe()}
        if kind == "ping":
            hub = self.run.message_hub
            return {"pid": os.getpid(), "status": hub.status, "seq": hub.seq}
        raise ValueError(f"unknown request {kind!r}")

    # --- run.json -------------------------------------------------------------------------
    def run_record(self) -> dict[str, Any]:
        run, hub = self.run, self.run.message_hub
        return {
            "experiment_name": run.experiment_name,
            "pid": os.getpid(),
            "status": hub.status,
            "detail": hub.status_detail,
            "epoch": run.epoch,
            "iter": run.iter,
            "max_epochs": hub.get_info("max_epochs"),
            "max_iters": hub.get_info("max_iters"),
            "last_checkpoint": hub.get_info("last_ckpt"),
            "run_dir": str(self.run_dir),
            "work_dir": str(run.work_dir),
            "config": run.cfg.filename,
            "serving": not self._stop.is_set(),
            "updated": time.time(),
        }

    def _write_run_file(self) -> None:
        path = self.run_dir / RUN_FILE
        tmp = path.with_name(f".tmp-{RUN_FILE}.{os.getpid()}")
        try:
            tmp.write_text(json.dumps(self.run_record(), indent=2))
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
