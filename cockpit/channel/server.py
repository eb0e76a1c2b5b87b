"""The channel server: one thread in the training process that serves the hub and the queue.

Hub events go out on an XPUB socket, batched every 50 milliseconds into one
signed message that carries the sequence numbers it covers. Only while a view
listens: the server takes the hub's events when a view subscribes (XPUB tells
of the first subscription and of the last one leaving) or asks for a snapshot,
and lets go of them once none listens. Until then the hub has no subscriber,
so a served run that nobody watches builds no events at all (the dispatcher's
trace, the adapters' batches), the promise that a cockpit costs nothing until
you look. A view that joins between the two sees a gap in the sequence
numbers and takes a snapshot, as after any gap. Requests come in
on a ROUTER socket: ``snapshot``, ``command``, ``outcome``, ``commands``,
``ping``. The training thread never waits for this one: it only appends to the
hub's bounded subscription queue, and a slow or dead view loses old events
(and re-syncs from a snapshot), never slows training.

Who can connect: by default the sockets are Unix sockets in a folder only the
run's owner can enter (``runtime.socket_folder``). With ``listen`` they are TCP
sockets protected by ZeroMQ's CURVE: only a client holding the key pair written
into the connection file completes the handshake (a ZAP allow-list, failing
closed), and everything after it is encrypted. On both, every message is also
signed (``auth``), every socket caps the size of what it takes in, and requests
get a bounded share of this thread's time, so a flood cannot crowd out the
event stream or the training thread. The thread is supervised: if serving ever
fails, the failure goes to the run's log and serving starts again.

The server also keeps ``run.json`` in the run folder current (status, epoch,
iter, last checkpoint), which ``cockpit ls`` reads without connecting.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from cockpit.channel.auth import (
    CONNECTION_FILE,
    EVENT,
    MAX_REQUEST,
    MAX_SUBSCRIPTION,
    PROTOCOL,
    REPLY,
    REQUEST,
    BadMessage,
    Signer,
    fragment,
    new_key,
    write_connection_file,
)
from cockpit.channel.runtime import socket_folder
from cockpit.version import __version__

if TYPE_CHECKING:
    import zmq.auth.thread

    from cockpit.hub import Subscription
    from cockpit.interface import RunContext
    from cockpit.steering import ControlQueue

RUN_FILE = "run.json"
#: The ZAP domain of the run's TCP sockets (ZeroMQ refuses CURVE clients when no authenticator answers for it).
ZAP_DOMAIN = "cockpit"
#: Requests handled in one pass, and the time one pass may spend on them (seconds).
REQUESTS_PER_PASS, REQUEST_SLICE = 200, 0.002
#: Requests get this share of the thread's time, sustained (it holds the GIL the training thread needs: a
#: flood of snapshots takes about this share of the training thread's time too) ...
REQUEST_SHARE = 0.05
#: ... and this many seconds of work at once after a quiet spell (a snapshot of a long run takes ~20 ms).
REQUEST_BURST = 0.05
#: Seconds each byte of a reply is charged on top of the thread time it took (about what a view spends
#: checking and parsing it). A snapshot whose series were encoded before costs this thread little, but
#: its megabytes still go through libzmq's I/O thread and the client's parser, on the run's machine.
REPLY_BYTE_COST = 5e-9
#: Longest pause between two restarts of a failing channel thread (seconds).
MAX_RESTART_DELAY = 5.0
#: Seconds the hub's events are kept after a snapshot with no view subscribed (its SUB is on the way).
SNAPSHOT_HOLD = 10.0
#: Distinct subscriptions tracked at most (a view subscribes to everything: one).
MAX_TOPICS = 64


def parse_listen(listen: str) -> tuple[str, int]:
    """``(host, port)`` from ``'HOST:PORT'``; port 0 picks free ports; an IPv6 host comes back in brackets.

    Raises:
        ValueError: not ``HOST:PORT``, or a port out of range.
    """
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65534:
        raise ValueError(f"--listen wants HOST:PORT (e.g. 127.0.0.1:5555, ports up to 65534), got {listen!r}")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host, int(port)


class _AllowList:
    """The CURVE client keys allowed in (the ZAP authenticator calls ``callback`` for each handshake)."""

    def __init__(self, *keys: bytes) -> None:
        self.keys = frozenset(keys)

    def callback(self, domain: str, key: bytes) -> bool:
        return domain == ZAP_DOMAIN and key in self.keys


class ChannelServer:
    """Serves one run to any number of views.

    Args:
        run: the run.
        control: its command queue.
        listen: ``'HOST:PORT'`` to serve over TCP instead (control on PORT, events on PORT+1; port 0
            picks two free ports), encrypted and authenticated with CURVE; by default only private
            Unix sockets are used.
        batch_interval: seconds between event batches. Each pass of the channel thread costs the run
            far more than its own CPU time: the thread takes the GIL back from the training thread
            after each wait and each send, and on a busy machine every such hand-over waits for the
            scheduler. 50 ms (20 batches a second) is still five times faster than views redraw;
            events someone waits for (a command's outcome, a new status) do not wait for the batch:
            the hub wakes this thread for them (``Subscription.wake``).
    """

    def __init__(self, run: RunContext, control: ControlQueue, listen: str | None = None,
                 batch_interval: float = 0.05) -> None:
        self.run = run
        self.control = control
        self.listen = listen
        self.batch_interval = batch_interval
        self.run_dir = Path(run.log_dir)
        self.connection_file = self.run_dir / CONNECTION_FILE
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._folder: Path | None = None
        self._authenticator: zmq.auth.thread.ThreadAuthenticator | None = None
        self._allowed: _AllowList | None = None
        self.published = 0
        self.dropped_batches = 0
        self.refused = 0
        self.restarts = 0

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> ChannelServer:
        key = new_key()
        self.signer = Signer(key)
        self.context = zmq.Context()
        self.pub = self.context.socket(zmq.XPUB)  # a PUB that tells when views subscribe and leave
        self.pub.setsockopt(zmq.SNDHWM, 10_000)
        self.pub.setsockopt(zmq.LINGER, 1000)  # let the final status reach views at exit
        self.pub.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION)  # what a PUB takes in is subscriptions
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 200)
        self.router.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST)  # no view sends more; a bigger frame drops the peer
        self.router.setsockopt(zmq.RCVHWM, 200)  # a flooding peer waits (TCP back-pressure), not our memory
        extra: dict[str, Any] = {}
        try:
            if self.listen:
                host, port = parse_listen(self.listen)
                if host.startswith("["):
                    self.router.ipv6 = self.pub.ipv6 = True
                extra["curve"] = self._secure()
                self.router.bind(f"tcp://{host}:{port}")
                self.pub.bind(f"tcp://{host}:{port + 1 if port else 0}")
                transport = "tcp"
            else:
                self._folder = socket_folder(warn=lambda line: self.run.logger.warning(f"channel: {line}"))
                self.router.bind(f"ipc://{self._folder}/ctl")
                self.pub.bind(f"ipc://{self._folder}/ev")
                transport = "ipc"
        except BaseException:
            self._close_sockets()
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
            raise
        # The addresses actually bound (port 0 becomes the port the system chose).
        control, events = self.router.last_endpoint.decode(), self.pub.last_endpoint.decode()
        # The hub's events, taken only while a view listens (``_follow``).
        self.subscription: Subscription | None = None
        self._topics: set[bytes] = set()  # what the views subscribed to (XPUB: first in, last out)
        self._hold_until = 0.0  # a snapshot keeps the events coming this long without a subscriber
        # Each series of the last snapshot sent, with its encoding: key -> (series, orjson fragment or None).
        self._fragments: dict[str, tuple[dict[str, Any], Any]] = {}
        self._reply_bytes = 0  # bytes of the replies sent by the current ``_serve_requests``
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.info = {
            "protocol": PROTOCOL,
            "cockpit_version": __version__,
            "pid": os.getpid(),
            "transport": transport,
            "control": control,
            "events": events,
            "key": key,
            "signature_scheme": "hmac-sha256",
            **extra,
            "experiment_name": self.run.experiment_name,
            "run_dir": str(self.run_dir),
            "work_dir": str(self.run.work_dir),
            "started": time.time(),
        }
        write_connection_file(self.connection_file, self.info)
        self._write_run_file()
        # Wakes the thread's poll from another thread (``_wake``): a pipe, which any thread may write to.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._thread = threading.Thread(target=self._supervise, name="cockpit-channel", daemon=True)
        self._thread.start()
        return self

    def _wake(self) -> None:
        """Make the thread publish now rather than at the end of its batch interval (any thread may call it)."""
        fd = self._wake_write
        if fd is None:
            return
        try:
            os.write(fd, b"\0")
        except OSError:
            pass  # the pipe is full: the thread is already woken

    def _secure(self) -> dict[str, str]:
        """Make both sockets CURVE servers that let in one client key pair, and return what a client needs."""
        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        self._allowed = _AllowList(client_public)
        self._start_authenticator()
        for socket in (self.router, self.pub):
            socket.curve_server = True
            socket.curve_secretkey = server_secret
            socket.curve_publickey = server_public
            socket.zap_domain = ZAP_DOMAIN.encode()
            socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)  # no authenticator answering: nobody gets in
            socket.setsockopt(zmq.HANDSHAKE_IVL, 5000)  # a peer that never finishes its handshake is dropped
        return {"server_key": server_public.decode(), "public_key": client_public.decode(),
                "secret_key": client_secret.decode()}

    def _start_authenticator(self) -> None:
        import zmq.auth.thread  # asyncio and more: only for runs that serve TCP

        self._authenticator = zmq.auth.thread.ThreadAuthenticator(self.context)
        self._authenticator.start()
        self._authenticator.configure_curve_callback(ZAP_DOMAIN, self._allowed)

    def stop(self) -> None:
        """Publish what is left, write the final ``run.json``, remove the connection file."""
        self._stop.set()
        self._wake()  # out of its poll now, not at the end of the batch interval
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.subscription is not None:
            self.subscription.wake = None
            self.subscription.close()
        self._write_run_file()
        self.connection_file.unlink(missing_ok=True)
        self._close_sockets()
        write, self._wake_write = self._wake_write, None
        os.close(write)
        os.close(self._wake_read)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def _close_sockets(self) -> None:
        self.pub.close()
        self.router.close()
        if self._authenticator is not None:
            self._authenticator.stop()
        self.context.term()

    def __enter__(self) -> ChannelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the thread -----------------------------------------------------------------------
    def _supervise(self) -> None:
        """Serve until stopped; when serving fails, say why in the run's log and serve again."""
        failures = 0
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._serve()
                return
            except BaseException as error:  # noqa: BLE001 - the channel must outlive any one failure
                if self._stop.is_set():
                    return
                # Back off while it keeps failing at once; a failure after a good while starts afresh.
                failures = 1 if time.monotonic() - began > 60 else failures + 1
                delay = min(MAX_RESTART_DELAY, 0.05 * 2 ** (failures - 1))
                self.restarts += 1
                self._log_error(f"the channel thread failed ({type(error).__name__}: {error}); serving again in "
                                f"{delay:.2f} s (restart {self.restarts})\n"
                                + "".join(traceback.format_exception(error)).rstrip())
                self._stop.wait(delay)

    def _log_error(self, message: str) -> None:
        try:
            self.run.logger.error(message)
        except Exception:  # noqa: BLE001 - a broken logger must not end the channel either
            print(f"cockpit: {message}", file=sys.stderr, flush=True)

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.pub, zmq.POLLIN)  # subscriptions coming and going
        poller.register(self._wake_read, zmq.POLLIN)  # events that do not wait for the batch
        tick = max(0.001, self.batch_interval)
        # A token bucket of thread time for requests: a flood gets REQUEST_SHARE of it and waits in
        # its socket's queue (bounded: RCVHWM), while events keep going out every tick.
        credit, refilled = REQUEST_BURST, time.monotonic()
        last_housekeeping = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            credit, refilled = min(REQUEST_BURST, credit + (now - refilled) * REQUEST_SHARE), now
            if credit <= 0:
                self._stop.wait(min(tick, -credit / REQUEST_SHARE))
            elif ready := dict(poller.poll(int(tick * 1000))):
                if self._wake_read in ready:
                    self._drain_wakes()
                if self.pub in ready:
                    self._read_subscriptions()
                if self.router in ready:
                    credit -= self._serve_requests(min(credit, REQUEST_SLICE))
            self._follow()
            self._publish()
            now = time.monotonic()
            if now - last_housekeeping > 1.0:
                self._write_run_file()
                self._check_authenticator()
                last_housekeeping = now
        self._publish()

    def _serve_requests(self, budget: float) -> float:
        """Handle waiting requests until none is left or their cost passes ``budget``; return their cost.

        The cost is this thread's CPU time (time it spent preempted or waiting for the GIL was not
        taken from the training thread) plus ``REPLY_BYTE_COST`` for each byte of the replies.
        """
        began, self._reply_bytes = time.thread_time(), 0
        cost = 0.0
        for _ in range(REQUESTS_PER_PASS):
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._handle(frames)
            cost = time.thread_time() - began + self._reply_bytes * REPLY_BYTE_COST
            if cost > budget:
                break
        return cost

    def _drain_wakes(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 4096):
                pass

    def _read_subscriptions(self) -> None:
        """Note the views' subscriptions: XPUB hands over the first of each and the last one leaving."""
        while True:
            try:
                frame = self.pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame[:1] == b"\x01" and (len(self._topics) < MAX_TOPICS or frame[1:] in self._topics):
                self._topics.add(frame[1:])
            elif frame[:1] == b"\x00":
                self._topics.discard(frame[1:])

    @property
    def listening(self) -> bool:
        """Whether a view is subscribed to the events now."""
        return bool(self._topics)

    def _follow(self) -> None:
        """Take the hub's events while a view listens (or just took a snapshot); let go of them after."""
        wanted = bool(self._topics) or time.monotonic() < self._hold_until
        if wanted and self.subscription is None:
            self.subscription = self.run.message_hub.subscribe(maxlen=500_000)
            self.subscription.wake = self._wake
        elif not wanted and self.subscription is not None:
            self.subscription.wake = None
            self.subscription.close()
            self.subscription = None

    def _check_authenticator(self) -> None:
        if self._authenticator is None or self._authenticator.is_alive():
            return
        self._log_error("the channel's CURVE authenticator stopped (no view could connect over TCP); restarting it")
        self._authenticator.stop()
        self._start_authenticator()

    def _publish(self) -> None:
        # The queued tuples are already the wire's rows (``events.row_to_dict``): one json.dumps, in C.
        if self.subscription is None:
            return  # nobody listens
        rows = self.subscription.poll_raw(limit=20_000)
        if not rows:
            return
        payload = {"first": rows[0][1], "last": rows[-1][1], "events": rows}
        try:
            self.pub.send_multipart(self.signer.pack(EVENT, "events", payload), zmq.NOBLOCK)
            self.published += len(rows)
        except zmq.Again:
            self.dropped_batches += 1

    def _reply(self, identity: bytes, kind: str, payload: Any) -> None:
        if kind == "snapshot":
            try:
                frames = self.signer.pack(REPLY, kind, self._with_fragments(payload))
            except TypeError:  # something else in it is for json.dumps to write (``auth.fragment``)
                frames = self.signer.pack(REPLY, kind, payload)
        else:
            frames = self.signer.pack(REPLY, kind, payload)
        self._reply_bytes += sum(map(len, frames))
        try:
            self.router.send_multipart([identity, *frames], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the view went away; nothing to do

    def _with_fragments(self, reply: dict[str, Any]) -> dict[str, Any]:
        """A snapshot reply whose series are encoded once each: a series the hub hands back unchanged
        (the same dict, ``MessageHub.snapshot(shared=True)``) is sent as the bytes written for it before."""
        snapshot = reply["snapshot"]
        done, encoded, series = self._fragments, {}, {}
        for key, data in snapshot["scalars"].items():
            kept = done.get(key)
            if kept is None or kept[0] is not data:
                kept = (data, fragment(data))
            encoded[key] = kept
            series[key] = data if kept[1] is None else kept[1]
        self._fragments = encoded
        return {**reply, "snapshot": {**snapshot, "scalars": series}}

    def _handle(self, frames: list[bytes]) -> None:
        identity, message = frames[0], frames[1:]
        try:
            kind, payload = self.signer.unpack(message, REQUEST, max_size=MAX_REQUEST)
        except BadMessage as error:
            # Not a good request for this run: an unsigned refusal and nothing else.
            self.refused += 1
            try:
                refusal = json.dumps({"error": f"refused: {error}"}).encode()
                self.router.send_multipart([identity, b"", b'{"type": "error"}', refusal], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
            return
        reply_to = payload.get("request_id") if isinstance(payload, dict) else None
        if not isinstance(reply_to, (str, type(None))):
            reply_to = None
        try:
            result = self._answer(kind, payload if isinstance(payload, dict) else {})
        except Exception as error:  # noqa: BLE001 - a bad request must never hurt the run
            self._reply(identity, "error", {"request_id": reply_to, "error": f"{type(error).__name__}: {error}"})
            return
        self._reply(identity, kind, {"request_id": reply_to, **result})

    def _answer(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        control = self.control
        if kind == "snapshot":
            max_points = payload.get("max_points")
            if max_points is not None and (isinstance(max_points, bool) or not isinstance(max_points, int)):
                raise TypeError(f"max_points must be an integer or null, not {max_points!r}")
            # The events after it must reach the view: take them before the snapshot is taken.
            self._hold_until = time.monotonic() + SNAPSHOT_HOLD
            self._follow()
            return {"snapshot": self.run.message_hub.snapshot(max_points=max_points, shared=True)}
        if kind == "command":
            name, args = payload.get("name", ""), payload.get("args", [])
            if not isinstance(name, str) or not isinstance(args, list):
                raise TypeError("a command is a name (a string) and args (a list)")
            args = [str(a) for a in args]
            if self.info["transport"] == "tcp":
                # Imported here: cockpit.commands imports torch, and views import this module (RUN_FILE).
                from cockpit.commands import RESUME, TRUST

                if name == RESUME and TRUST in args[1:]:
                    return self._refuse_trust_over_tcp(name, args)
            return control.submit(name, args).describe()
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

    def _refuse_trust_over_tcp(self, name: str, args: list[str]) -> dict[str, Any]:
        """Trusting a checkpoint runs whatever its pickles hold: only the run's own user, over its Unix socket."""
        message = (f"'{name} {' '.join(args)}' is refused over TCP: a checkpoint loaded with trust can run any "
                   f"code, so only a client on the run's private Unix socket may ask for it, and this run serves "
                   f"TCP (--listen). Stop the run and start it again with --resume {args[0]} --trust-checkpoint")
        self.run.logger.warning(f"command {' '.join((name, *args))!r} rejected: {message}")
        return {"id": f"{os.getpid()}-tcp-{uuid.uuid4().hex[:8]}", "name": name, "args": args, "done": True,
                "outcome": "rejected", "message": message}

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
            "by_epoch": getattr(run, "is_epoch_based", None) if hub.get_info("max_iters") is not None else None,
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
