"""Steering: the command queue, the pause, stop and save flags, signals, and cross-rank agreement.

Views and scripts never touch the model: they ``submit`` a command, which is
checked at once (an unknown name or a bad argument is refused on the spot),
queued, and acknowledged with an id. The training thread reaches a safe point
between iterations and epochs (``Steering.safe_point``), applies the queued
commands there, serves save and stop requests (set by commands, signal handlers
or other threads), and reports each outcome as a ``CommandFinished`` hub event.
A command that fails never ends the run.

In a distributed run every rank reaches the same safe points; rank 0 takes the
commands and all ranks apply them at the same one, agreed through one small
all-reduce about every 100 ms of training. The same all-reduce carries whether
any rank is paused (a rank's health guard may pause it: every rank then pauses at
that agreement) and, when a ``HealthProbe`` is attached, one row of health
figures per rank (each rank fills its own slots, zeros elsewhere, so the maximum
is every rank's row): no second collective.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from cockpit import events as ev
from cockpit.commands import Command, CommandRejected, CommandSet, builtin_commands
from cockpit.dist import all_reduce_max, broadcast_object, is_distributed, is_main_process

if TYPE_CHECKING:
    from cockpit.interface import RunContext


class HealthProbe(Protocol):
    """What rides on the agreement all-reduce for the health guard: one row of figures per rank."""

    def health_row(self) -> list[float]:
        """This rank's figures (all >= 0; the same length on every rank)."""

    def receive_health(self, rows: list[list[float]]) -> None:
        """Every rank's row, in rank order (called on every rank after each agreement)."""


@dataclass
class CommandRequest:
    """One submitted command: its id, and once ``done`` is set, its outcome and message."""

    id: str
    name: str
    args: tuple[str, ...]
    command: Command | None = None
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str = ""
    message: str = ""

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the command was applied, rejected or failed; False on timeout."""
        return self.done.wait(timeout)

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "args": list(self.args), "done": self.done.is_set(),
                "outcome": self.outcome, "message": self.message}


class ControlQueue:
    """The run's command queue: submitted from any thread, applied in the training thread.

    Args:
        run: the run the commands act on.
    """

    def __init__(self, run: RunContext) -> None:
        self.run = run
        self.commands = CommandSet()
        self._queue: deque[CommandRequest] = deque()
        self.requests: dict[str, CommandRequest] = {}  # the recent ones, for outcome look-ups
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self.paused = False
        self.closed_reason: str | None = None
        for command in builtin_commands():
            self.add(command)

    def add(self, command: Command) -> None:
        """Make ``command`` available (hooks' commands are added when hooks register)."""
        self.commands.add(command)
        self.run.message_hub.update_info("commands", self.commands.describe())

    def submit(self, name: str, args: Sequence[str] = ()) -> CommandRequest:
        """Queue a command and return its request at once (from any thread).

        An unknown name or bad arguments are rejected on the spot: the returned request is
        already done, with ``outcome='rejected'`` and the reason, and nothing is queued.
        """
        args = tuple(str(a) for a in args)
        with self._lock:
            request = CommandRequest(f"{os.getpid()}-{next(self._ids)}", str(name), args)
            self.requests[request.id] = request
            while len(self.requests) > 1000:
                self.requests.pop(next(iter(self.requests)))
        command = self.commands.get(name)
        try:
            if self.closed_reason is not None:
                raise CommandRejected(self.closed_reason)
            if command is None:
                known = ", ".join(sorted(self.commands.commands))
                raise CommandRejected(f"unknown command {name!r}; this run understands: {known}")
            request.args = command.check(args)
        except CommandRejected as reason:
            self._finish(request, "rejected", str(reason))
            return request
        request.command = command
        self.run.message_hub.publish(ev.CommandAccepted, request.id, request.name, request.args)
        with self._lock:
            self._queue.append(request)
            self._wakeup.notify_all()
        return request

    def drain(self, stopping: Any = lambda: False) -> None:
        """Apply every queued command; then, while paused, wait for more (training thread only).

        While paused, commands declared ``while_paused=False`` stay queued until ``continue``.
        """
        if not self.has_work():
            return  # the common case, every iteration: no lock taken
        self._apply_pending()
        while self.paused and not stopping():
            with self._lock:
                if not any(r.command.while_paused for r in self._queue):
                    self._wakeup.wait(timeout=0.2)
            self._apply_pending()

    def has_work(self) -> bool:
        """Whether ``drain`` has anything to do: a queued command, or the run is paused (no lock taken)."""
        return bool(self._queue) or self.paused

    def open(self) -> None:
        """Accept commands (a run starts)."""
        self.closed_reason = None

    def close(self, reason: str) -> None:
        """Refuse new commands, and reject those still queued with ``reason`` (a run ended)."""
        self.closed_reason = reason
        for request in self.take_pending():
            self._finish(request, "rejected", reason)

    def pending_count(self) -> int:
        with self._lock:
            return len(self._queue)

    def take_pending(self) -> list[CommandRequest]:
        """Everything queued, removed from the queue (rank 0, before broadcasting it)."""
        with self._lock:
            taken = list(self._queue)
            self._queue.clear()
        return taken

    def apply_requests(self, requests: list[CommandRequest]) -> None:
        """Apply commands taken from this queue, reporting their outcomes (rank 0).

        In a distributed run every rank applies every command, paused or not: the ranks must
        stay in step, so ``while_paused=False`` is not honoured there.
        """
        for request in requests:
            self._apply(request)

    def apply_mirrored(self, specs: list[tuple[str, str, tuple[str, ...]]]) -> None:
        """Apply rank 0's commands on another rank, silently (rank 0 reports the outcomes)."""
        for _, name, args in specs:
            command = self.commands.get(name)
            if command is None:
                continue
            try:
                command.handler(self.run, *args)
            except CommandRejected:
                pass
            except Exception:  # noqa: BLE001 - rank 0 reports it; this rank goes on like rank 0
                self.run.logger.exception(f"command {name} failed on rank {self.run.rank}")

    def wait_for_commands(self, timeout: float) -> None:
        """Block until a command is queued or ``timeout`` passes."""
        with self._lock:
            if not self._queue:
                self._wakeup.wait(timeout=timeout)

    def wake(self) -> None:
        """Wake a paused training thread (after a stop request, say)."""
        with self._lock:
            self._wakeup.notify_all()

    def _apply_pending(self) -> None:
        held = []
        while True:
            with self._lock:
                if not self._queue:
                    self._queue.extendleft(reversed(held))
                    return
                request = self._queue.popleft()
            if self.paused and not request.command.while_paused:
                held.append(request)
                continue
            self._apply(request)

    def _apply(self, request: CommandRequest) -> None:
        try:
            message = request.command.handler(self.run, *request.args) or "done"
            self._finish(request, "applied", message)
        except CommandRejected as reason:
            self._finish(request, "rejected", str(reason))
        except Exception as error:  # noqa: BLE001 - a failed command must not end the run
            self.run.logger.exception(f"command {request.name} failed")
            self._finish(request, "failed", f"{type(error).__name__}: {error}")

    def _finish(self, request: CommandRequest, outcome: str, message: str) -> None:
        run = self.run
        request.outcome, request.message = outcome, message
        level = run.logger.info if outcome == "applied" else run.logger.warning
        shown = " ".join((request.name, *request.args))
        level(f"command {shown!r} {outcome}: {message}")
        run.message_hub.publish(ev.CommandFinished, request.id, request.name, outcome, message)
        request.done.set()


class Steering:
    """The flags that steer a run, and the safe point that serves them.

    Flags are set from anywhere (commands, signal handlers, other threads) and read only in
    the training thread, at ``safe_point``.

    Args:
        run: the run it steers.
        agreement: whether distributed runs agree on commands (switchable only to measure its cost).
    """

    def __init__(self, run: RunContext, agreement: bool = True) -> None:
        self.run = run
        self.control = ControlQueue(run)
        self.agreement = agreement
        self.save_requested: str | None = None
        self.stop_requested: str | None = None
        self.stop_saves = True
        self.stop_reason: str | None = None
        self.signal_note: str | None = None
        # Set by a stop signal and never cleared: a second one, even during the stop's own
        # save (after ``stop_requested`` was taken), exits at once.
        self.stop_signalled = False
        # Seconds the training thread spent held at safe points (paused, applying commands,
        # serving saves): the IterTimerHook leaves them out of data time, iteration time and the ETA.
        self.held_seconds = 0.0
        # Distributed runs agree on commands every few iterations (about every 100 ms).
        self._sync_countdown = 1
        self._sync_clock = (time.perf_counter(), 0)
        self.health: HealthProbe | None = None
        # Whether the run is distributed, noted when it starts (``open``): the safe point asks at
        # every iteration, and torch.distributed's answer cannot change while the run goes on.
        self._distributed: bool | None = None

    def open(self) -> None:
        """A run starts: accept commands, and note whether it is distributed."""
        self._distributed = is_distributed()
        self.control.open()

    def attach_health(self, probe: HealthProbe | None) -> None:
        """Carry ``probe``'s per-rank row on the agreement all-reduce (None detaches it)."""
        self.health = probe

    @property
    def paused(self) -> bool:
        return self.control.paused

    def set_paused(self, paused: bool) -> None:
        self.control.paused = paused
        self.run.message_hub.set_status(ev.Status.PAUSED if paused else ev.Status.RUNNING)

    def request_save(self, reason: str = "requested") -> None:
        """Save a checkpoint at the next safe point (thread- and signal-safe)."""
        self.save_requested = reason

    def request_stop(self, reason: str = "requested", save: bool = True) -> None:
        """Stop after the current iteration, saving a checkpoint first unless ``save=False``."""
        self.stop_saves = save
        self.stop_requested = reason
        self.control.paused = False
        self.control.wake()

    def stopping(self) -> bool:
        return self.stop_requested is not None or self.run.stopping

    # --- the safe point -------------------------------------------------------------------
    def safe_point(self) -> None:
        """Apply commands, serve save and stop requests (training thread, between iterations)."""
        if self._distributed or (self._distributed is None and is_distributed()):
            if self.agreement:
                self._agree()
            return
        if not self.control.has_work() and self.save_requested is None and self.stop_requested is None \
                and self.signal_note is None:
            return  # the common case, every iteration: nothing to time
        started = time.perf_counter()
        self.control.drain(self.stopping)
        self._serve_requests()
        self.held_seconds += time.perf_counter() - started

    def _serve_requests(self) -> None:
        run = self.run
        if self.signal_note is not None:
            note, self.signal_note = self.signal_note, None
            run.logger.warning(note)
        if self.save_requested is not None:
            reason, self.save_requested = self.save_requested, None
            run.logger.info(f"saved {run.checkpointer.save_now(reason)} ({reason})")
        if self.stop_requested is not None:
            reason, self.stop_requested = self.stop_requested, None
            if self.stop_saves:
                run.logger.info(f"saved {run.checkpointer.save_now(reason)} ({reason})")
            self.stop_reason = reason
            run.logger.warning(f"stopping: {reason}")
            run.stop()

    def _agree(self) -> None:
        """Every few iterations, all ranks agree on what to do: rank 0's commands, any rank's stop or save.

        One small all-reduce (plus a broadcast when there are commands) every ~100 ms of
        training, whatever the iteration time: the interval comes from rank 0's iteration
        time, which the all-reduce carries, so every rank counts down the same number.
        """
        self._sync_countdown -= 1
        if self._sync_countdown > 0:
            return
        control, main, run = self.control, is_main_process(), self.run
        while True:
            round_started = time.perf_counter()
            started, since_iter = self._sync_clock
            now = time.perf_counter()
            # Per training iteration, not per safe point (the one between epochs follows the
            # last iteration's at once); no iteration since the last agreement: no estimate.
            done = run.iter - since_iter
            per_iter = (now - started) / done if main and done > 0 else 0.0
            health, rank = self.health, run.rank
            row = health.health_row() if health is not None else []
            width = len(row)
            rows = [0.0] * (width * run.world_size)
            rows[rank * width:(rank + 1) * width] = row
            reduced = all_reduce_max([
                control.pending_count() if main else 0,
                1 if self.stop_requested is not None else 0,
                1 if self.save_requested is not None else 0,
                per_iter,
                1 if control.paused else 0,
                *rows,
            ])
            pending, stop, save, iter_time, paused = reduced[:5]
            if paused and not control.paused and not stop and not run.stopping:
                self.set_paused(True)  # another rank (its health guard) paused: every rank holds here
            if health is not None:
                health.receive_health([reduced[5 + r * width:5 + (r + 1) * width] for r in range(run.world_size)])
            if pending:
                requests = control.take_pending() if main else []
                specs = broadcast_object([(r.id, r.name, r.args) for r in requests] if main else None)
                if main:
                    control.apply_requests(requests)
                else:
                    control.apply_mirrored(specs)
            if save and self.save_requested is None:
                self.save_requested = "another rank asked to save"
            if stop and self.stop_requested is None:
                self.stop_requested = "another rank received a stop signal"
            self._serve_requests()
            self._sync_countdown = max(1, min(1000, int(0.1 / iter_time))) if iter_time > 0 else 1
            self._sync_clock = (time.perf_counter(), run.iter)
            if pending or save or stop or paused:
                self.held_seconds += time.perf_counter() - round_started
            if not control.paused or run.stopping:
                return
            if main:
                waited = time.perf_counter()
                control.wait_for_commands(0.2)  # paused: every rank waits here, in the collective
                self.held_seconds += time.perf_counter() - waited

    # --- signals ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def signal_handlers(self) -> Iterator[None]:
        """Ctrl-C / SIGTERM / SIGHUP: finish the iteration, save, stop; twice: exit at once. SIGUSR1: save."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        # Handlers only set flags: they may interrupt code holding the hub's or the queue's
        # lock, so logging or waking anything from here could deadlock. The safe point logs.
        def on_stop(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.stop_signalled or self.stop_requested is not None or self.run.stopping:
                raise KeyboardInterrupt(f"second {name}: exiting at once")
            self.signal_note = (f"received {name}: finishing this iteration, saving a checkpoint, then stopping "
                                "(send it again to exit at once)")
            self.stop_signalled = True
            self.stop_saves = True
            self.stop_requested = f"received {name}"
            self.control.paused = False

        def on_save(signum: int, frame: Any) -> None:
            self.save_requested = f"received {signal.Signals(signum).name}"

        # SIGHUP (the terminal closed under a --no-tui run) is a stop like SIGTERM: save, then end.
        wanted = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop, signal.SIGHUP: on_stop, signal.SIGUSR1: on_save}
        previous = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


__all__ = ["Command", "CommandRejected", "CommandRequest", "ControlQueue", "HealthProbe", "Steering"]
