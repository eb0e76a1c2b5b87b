"""Commands that steer a run, and the one queue they go through.

Views and scripts never touch the model: they ``submit`` a command, which is
checked at once (an unknown name or a bad argument is rejected on the spot),
queued, and acknowledged with an id. The training thread drains the queue at
safe points (between iterations and epochs) and reports each outcome as a
``CommandFinished`` hub event: applied, rejected with a reason, or failed with
the error. A command that fails never ends the run.

Built-in commands: ``val``, ``save``, ``resume <path|latest|best>``, ``pause``,
``continue``, ``stop [nosave]``, ``set lr=<value>`` / ``set lr*=<factor>``.
Hooks add their own by returning ``Command`` objects from ``Hook.commands()``.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cockpit import events as ev

if TYPE_CHECKING:
    from cockpit.runner import Runner


class CommandRejected(Exception):
    """A command that cannot be applied; the message says why (the run goes on untouched)."""


@dataclass(frozen=True)
class Command:
    """A command a run understands.

    Args:
        name: what a user types (``save``).
        description: one line for help listings and tooltips.
        handler: ``handler(runner, *args)``, called in the training thread at a safe point;
            returns a message describing what it did, raises ``CommandRejected`` to refuse.
        args: the names of its arguments, for help (``('path|latest|best',)``).
        check: ``check(args)`` run at submit time in the caller's thread; raises
            ``CommandRejected`` for bad arguments so they are refused at once.
        while_paused: whether it is applied while the run is paused (all built-ins are).
    """

    name: str
    description: str
    handler: Callable[..., str | None]
    args: tuple[str, ...] = ()
    check: Callable[[Sequence[str]], None] | None = None
    while_paused: bool = True

    def describe(self) -> dict[str, Any]:
        """Plain data for views and remote clients."""
        return {"name": self.name, "description": self.description, "args": list(self.args)}


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
        runner: the run it steers.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.commands: dict[str, Command] = {}
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
        if command.name in self.commands and self.commands[command.name] is not command:
            raise ValueError(f"two commands are named {command.name!r}; hook commands need unique names")
        self.commands[command.name] = command
        self.runner.message_hub.update_info("commands", [c.describe() for c in self.commands.values()])

    def submit(self, name: str, args: Sequence[str] = ()) -> CommandRequest:
        """Queue a command and return its request at once (from any thread).

        An unknown name or bad arguments are rejected on the spot: the returned request is
        already done, with ``outcome='rejected'`` and the reason, and nothing is queued.
        """
        hub = self.runner.message_hub
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
                known = ", ".join(sorted(self.commands))
                raise CommandRejected(f"unknown command {name!r}; this run understands: {known}")
            if command.check is not None:
                command.check(args)
        except CommandRejected as reason:
            self._finish(request, "rejected", str(reason))
            return request
        request.command = command
        hub.publish(ev.CommandAccepted, request.id, request.name, args)
        with self._lock:
            self._queue.append(request)
            self._wakeup.notify_all()
        return request

    def drain(self) -> None:
        """Apply every queued command; then, while paused, wait for more (training thread only).

        While paused, commands declared ``while_paused=False`` stay queued until ``continue``.
        """
        if not self._queue and not self.paused:
            return  # the common case, every iteration: no lock taken
        self._apply_pending()
        while self.paused and not self._stopping():
            with self._lock:
                if not any(r.command.while_paused for r in self._queue):
                    self._wakeup.wait(timeout=0.2)
            self._apply_pending()

    def open(self) -> None:
        """Accept commands (a run starts)."""
        self.closed_reason = None

    def close(self, reason: str) -> None:
        """Refuse new commands, and reject those still queued with ``reason`` (a run ended)."""
        self.closed_reason = reason
        for request in self.take_pending():
            self._finish(request, "rejected", reason)

    # --- distributed runs: rank 0 takes the commands, every rank applies them ------------------
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
        """Apply commands taken from this queue, reporting their outcomes (rank 0)."""
        for request in requests:
            self._apply(request)
        # (In a distributed run every rank applies every command, paused or not: the ranks
        # must stay in step, so while_paused=False is not honoured there.)

    def apply_mirrored(self, specs: list[tuple[str, str, tuple[str, ...]]]) -> None:
        """Apply rank 0's commands on another rank, silently (rank 0 reports the outcomes)."""
        for _, name, args in specs:
            command = self.commands.get(name)
            if command is None:
                continue
            try:
                command.handler(self.runner, *args)
            except CommandRejected:
                pass
            except Exception:  # noqa: BLE001 - rank 0 reports it; this rank goes on like rank 0
                self.runner.logger.exception(f"command {name} failed on rank {self.runner.rank}")

    def wait_for_commands(self, timeout: float) -> None:
        """Block until a command is queued or ``timeout`` passes."""
        with self._lock:
            if not self._queue:
                self._wakeup.wait(timeout=timeout)

    def _stopping(self) -> bool:
        loop = self.runner._train_loop
        return self.runner._stop_requested is not None or (loop is not None and loop.stop_training)

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
            message = request.command.handler(self.runner, *request.args) or "done"
            self._finish(request, "applied", message)
        except CommandRejected as reason:
            self._finish(request, "rejected", str(reason))
        except Exception as error:  # noqa: BLE001 - a failed command must not end the run
            self.runner.logger.exception(f"command {request.name} failed")
            self._finish(request, "failed", f"{type(error).__name__}: {error}")

    def _finish(self, request: CommandRequest, outcome: str, message: str) -> None:
        runner = self.runner
        request.outcome, request.message = outcome, message
        level = runner.logger.info if outcome == "applied" else runner.logger.warning
        shown = " ".join((request.name, *request.args))
        level(f"command {shown!r} {outcome}: {message}")
        runner.message_hub.publish(ev.CommandFinished, request.id, request.name, outcome, message)
        request.done.set()

    def wake(self) -> None:
        """Wake a paused training thread (after a stop request from a signal, say)."""
        with self._lock:
            self._wakeup.notify_all()


# --- built-in commands ------------------------------------------------------------------
def _no_args(name: str) -> Callable[[Sequence[str]], None]:
    def check(args: Sequence[str]) -> None:
        if args:
            raise CommandRejected(f"{name} takes no arguments, got {' '.join(args)!r}")

    return check


def _val(runner: Runner) -> str:
    if runner.val_loop is None:
        raise CommandRejected("this run has no validation (val_dataloader, val_evaluator and val_cfg are not set)")
    metrics = runner.val_loop.run()
    return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def _save(runner: Runner) -> str:
    path = runner.save_now("command 'save'")
    if path is None:
        raise CommandRejected("this run has no CheckpointHook, so it cannot save checkpoints")
    return f"saved {path}"


def _resolve_checkpoint(runner: Runner, which: str) -> Path:
    from cockpit.checkpoint import read_pointer

    hub = runner.message_hub
    if which == "latest":
        path = read_pointer(runner.work_dir)
        if path is None:
            raise CommandRejected(f"no checkpoint yet: {runner.work_dir / 'last_checkpoint'} does not exist")
    elif which == "best":
        best = hub.get_info("best_ckpt") or next(
            (v for k, v in hub.runtime_info.items() if k.startswith("best_ckpt_") and v), None)
        if not best:
            raise CommandRejected("no best checkpoint yet (set CheckpointHook(save_best=...) and validate)")
        path = Path(best)
    else:
        path = Path(which)
        if not path.is_absolute():
            path = runner.work_dir / path if (runner.work_dir / path).exists() else path.resolve()
    if not path.is_file():
        raise CommandRejected(f"checkpoint {path} does not exist")
    return path


def _check_resume(args: Sequence[str]) -> None:
    if len(args) != 1:
        raise CommandRejected("resume takes one argument: a checkpoint path, 'latest' or 'best'")


def _resume(runner: Runner, which: str) -> str:
    from cockpit.checkpoint import check_cockpit_checkpoint, load_checkpoint
    from cockpit.errors import CheckpointError

    path = _resolve_checkpoint(runner, which)
    try:
        # Read and check the whole file before touching the live run: a bad file changes nothing.
        checkpoint = check_cockpit_checkpoint(load_checkpoint(path, trusted=runner.trust_checkpoints), path)
    except CheckpointError as error:
        raise CommandRejected(str(error)) from None
    before = runner.iter
    try:
        runner.resume(path, checkpoint=checkpoint)  # checks the fit before it changes anything
    except CheckpointError as error:
        raise CommandRejected(str(error)) from None
    runner.train_loop.jump()
    return f"resumed from {path.name}: iter {before} -> {runner.iter} (epoch {runner.epoch})"


def _pause(runner: Runner) -> str:
    control = runner.control
    if control.paused:
        raise CommandRejected("the run is already paused")
    control.paused = True
    runner.message_hub.set_status("paused")
    return f"paused at iter {runner.iter}"


def _continue(runner: Runner) -> str:
    control = runner.control
    if not control.paused:
        raise CommandRejected("the run is not paused")
    control.paused = False
    runner.message_hub.set_status("running")
    return f"continuing from iter {runner.iter}"


def _check_stop(args: Sequence[str]) -> None:
    if args not in ((), ("nosave",)):
        raise CommandRejected("stop takes no argument, or 'nosave' to stop without saving a checkpoint")


def _stop(runner: Runner, *args: str) -> str:
    save = "nosave" not in args
    runner.request_stop("command 'stop'", save=save)
    runner.control.paused = False
    return "stopping after this iteration" + (" (checkpoint saved)" if save else " (no checkpoint)")


def _parse_set(args: Sequence[str]) -> tuple[str, float]:
    if len(args) != 1:
        raise CommandRejected("set takes one assignment: lr=<value> or lr*=<factor>")
    text = args[0].replace(" ", "")
    for operator in ("*=", "="):
        key, found, value = text.partition(operator)
        if found:
            break
    if key != "lr":
        raise CommandRejected(f"cannot set {key!r}; only lr can be set (lr=0.01 or lr*=0.5)")
    try:
        number = float(value)
    except ValueError:
        raise CommandRejected(f"{value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise CommandRejected(f"the learning rate must be a finite number >= 0, got {value}")
    return operator, number


def _check_set(args: Sequence[str]) -> None:
    _parse_set(args)


def _set(runner: Runner, assignment: str) -> str:
    if runner.optim_wrapper is None:
        raise CommandRejected("this run has no optimizer")
    operator, number = _parse_set([assignment])
    groups = runner.optim_wrapper.param_groups
    before = [group["lr"] for group in groups]
    for group in groups:
        group["lr"] = group["lr"] * number if operator == "*=" else number
    after = [group["lr"] for group in groups]
    runner.message_hub.update_info("lr_override", {"at_iter": runner.iter, "assignment": assignment})
    runner.message_hub.add_marker("lr", runner.iter, f"lr {before[0]:.4g} -> {after[0]:.4g}")
    return f"lr {', '.join(f'{b:.4g}' for b in before)} -> {', '.join(f'{a:.4g}' for a in after)}"


def builtin_commands() -> list[Command]:
    """The commands every run understands."""
    return [
        Command("val", "run validation now (mid-epoch too)", _val, check=_no_args("val")),
        Command("save", "save a checkpoint now", _save, check=_no_args("save")),
        Command("resume", "load a checkpoint into the live run and continue from it", _resume,
                args=("path|latest|best",), check=_check_resume),
        Command("pause", "pause training (the process and its memory stay)", _pause, check=_no_args("pause")),
        Command("continue", "continue a paused run", _continue, check=_no_args("continue")),
        Command("stop", "stop after this iteration, saving a checkpoint ('stop nosave' skips it)", _stop,
                args=("[nosave]",), check=_check_stop),
        Command("set", "set the learning rate of every param group: lr=<value> or lr*=<factor>", _set,
                args=("lr=<value>|lr*=<factor>",), check=_check_set),
    ]
