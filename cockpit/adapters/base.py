"""What every adapter shares: a run of another framework, served to Cockpit's views.

An adapter (MMEngine's ``CockpitHook``, Lightning's or Hugging Face's ``CockpitCallback``)
makes one ``AdaptedRun`` when training starts. It owns what a Cockpit ``Runner`` would own: a
``MessageHub``, the run folder ``work_dir/<timestamp>/``, a logger feeding the hub, a
``ControlQueue`` and, on rank 0, a ``ChannelServer``. The channel sees it through the
``RunContext`` attributes it needs (``log_dir``, ``message_hub``, ``experiment_name``,
``work_dir``, ``epoch``, ``iter``, ``cfg.filename``, ``logger``).

The framework calls the adapter; the adapter publishes what happened and calls ``safe_point()``
at the framework's iteration end, in the training thread. Commands are applied there and nowhere
else; a paused run waits there. What happens every iteration (its scalars, each hook call's
duration) is only kept, and published by ``tick()`` a few times a second (and before a safe point
applies a command): a view redraws no faster, and an event costs the training thread far more than
keeping a value. The built-in commands keep their
declaration (label, key, arguments, confirmation: ``cockpit.commands.builtin_commands``) and
get handlers that call what each framework fills in:

- ``validate()``, ``save_checkpoint(reason)``, ``resume(which, *trust)``, ``end_training(reason)``;
- ``lr_targets()``: each optimizer's parameter groups and the schedulers that drive them (``set``
  scales the schedulers' base values too, as ``cockpit.commands`` does for a Cockpit run);
- ``broadcast(obj)``: rank 0's object on every rank (the framework's own collective).

Pause, continue and stop are Cockpit's own handlers, acting on ``steering``.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from cockpit import events as ev
from cockpit.adapters import ANNOUNCE_VARIABLE
from cockpit.channel.server import ChannelServer
from cockpit.commands import (
    RESUME,
    SAVE,
    SET,
    VAL,
    Command,
    CommandRejected,
    CommandSet,
    builtin_commands,
)
from cockpit.hooks.trace import SHOW_INTERVAL, HookEntry, HookTrace
from cockpit.hub import MessageHub
from cockpit.rundir import unique_timestamp
from cockpit.steering import ControlQueue


class HubLogHandler(logging.Handler):
    """Copies a framework logger's records into the hub, so views show the run's log."""

    def __init__(self, hub: MessageHub) -> None:
        super().__init__()
        self.hub = hub

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.hub.log(record.levelname, record.getMessage(), record.created)
        except Exception:  # noqa: BLE001 - a bad log record must not end the training
            self.handleError(record)


def read_floats(tensors: list[torch.Tensor]) -> Iterator[float]:
    """One-element tensors (the steps' losses kept since the last tick) as floats, read from the
    device at once: one wait, not one per tensor."""
    if not tensors:
        return iter(())
    try:
        return iter(torch.stack(tensors).reshape(-1).tolist())
    except RuntimeError:  # mixed shapes or devices: one by one
        return iter([t.item() for t in tensors])


#: ``SHOW_INTERVAL`` (``cockpit.hooks.trace``) is also the least time between two events that say which
#: iteration an adapted run is at, and between two ticks (``AdaptedRun.tick``).
#: Seconds between two passes of the channel thread (``ChannelServer(batch_interval=...)``; a Cockpit run's is
#: 0.05). A pass takes the GIL from the training thread even when it has nothing to send, and an adapter's events
#: come in batches, about every ``SHOW_INTERVAL``: a pass every 20 ms would find nothing four times out of five.
#: Requests are answered as they come, whatever the interval.
CHANNEL_INTERVAL = 0.1


@dataclasses.dataclass
class OfferedCommands(CommandSet):
    """The run's commands, of which views are offered all but ``unlisted``.

    An unlisted command is still understood when sent (``cockpit ctl resume latest`` gets its
    answer: how to resume with this framework), but no view shows a key or button for a
    command the run would only refuse.
    """

    unlisted: frozenset[str] = frozenset()

    def describe(self) -> list[dict[str, Any]]:
        return [c.describe() for c in self.commands.values() if c.name not in self.unlisted]


@dataclasses.dataclass
class Steering:
    """The flags commands set (``cockpit.interface.Steer``); the training thread serves them at the safe point."""

    run: AdaptedRun
    stop_requested: str | None = None
    stop_saves: bool = True
    save_requested: str | None = None

    @property
    def paused(self) -> bool:
        return self.run.control.paused

    def set_paused(self, paused: bool) -> None:
        self.run.control.paused = paused
        self.run.message_hub.set_status(ev.Status.PAUSED if paused else ev.Status.RUNNING)

    def request_stop(self, reason: str = "requested", save: bool = True) -> None:
        self.stop_saves = save
        self.stop_requested = reason
        self.run.control.paused = False
        self.run.control.wake()

    def request_save(self, reason: str = "requested") -> None:
        self.save_requested = reason


class AdaptedRun:
    """A run of another framework, as Cockpit's channel, commands and views see it.

    Subclasses set ``framework`` (``mmengine``, ``lightning``, ``hf``: shown in the run info).

    Args:
        work_dir: where the framework's checkpoints go, and the run folder's parent by default.
        log_dir: the run folder; ``work_dir/<timestamp>`` by default.
        experiment_name: the run's name; ``<script>_<timestamp>`` by default.
        logger: the logger for Cockpit's own messages (command outcomes).
        hub_loggers: the loggers whose records views show (``[logger]`` by default; the framework's
            logger when ``logger`` writes through it).
        rank: this process's rank; only rank 0 serves views and writes files.
        world_size: the number of processes; above 1, commands reach every rank through ``broadcast``.
        listen: ``'HOST:PORT'`` to serve over TCP (CURVE-encrypted) instead of private Unix sockets.
        timestamp: the run folder's name (a new ``YYYYmmdd_HHMMSS`` by default; every rank must agree on it).
    """

    framework = "adapter"
    #: Whether ``resume`` loads a checkpoint into the running training. Where it cannot, ``resume``
    #: only says how to resume instead, and views are not offered it (``OfferedCommands``).
    resumes_in_place = False

    def __init__(self, *, work_dir: str | Path, log_dir: str | Path | None = None,
                 experiment_name: str | None = None, logger: logging.Logger | None = None,
                 hub_loggers: Sequence[logging.Logger] | None = None,
                 rank: int = 0, world_size: int = 1, listen: str | None = None,
                 timestamp: str | None = None) -> None:
        self._work_dir = Path(work_dir).resolve()
        self.main = rank == 0
        self._timestamp = timestamp or unique_timestamp(self._work_dir)
        self._log_dir = Path(log_dir).resolve() if log_dir is not None else self._work_dir / self._timestamp
        # The training script (``python train.py``, ``python -m pkg.train``); none in a notebook.
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        self.script = Path(main_file).resolve() if main_file and Path(main_file).is_file() else None
        stem = self.script.stem if self.script is not None else self.framework
        self._experiment_name = experiment_name or f"{stem}_{self._timestamp}"
        self.cfg = SimpleNamespace(filename=str(self.script) if self.script else None)
        self.rank, self.world_size, self.listen = rank, world_size, listen

        self.message_hub = MessageHub(self._experiment_name)
        self.logger = logger or logging.getLogger(f"cockpit.adapters.{self.framework}")
        self._stack = contextlib.ExitStack()
        for each in (hub_loggers if hub_loggers is not None else [self.logger]):
            handler = HubLogHandler(self.message_hub)
            each.addHandler(handler)
            self._stack.callback(each.removeHandler, handler)
        self.trace = HookTrace(self.message_hub, SHOW_INTERVAL)
        self.steering = Steering(self)
        self.control = ControlQueue(self)
        # The framework's handlers replace the built-ins below.
        self.control.commands = OfferedCommands(unlisted=frozenset() if self.resumes_in_place else {RESUME})
        for command in self.builtin_commands():
            self.control.add(command)
        self.stop_reason: str | None = None
        self.held_seconds = 0.0  # time spent in safe points, not to be counted as a hook's
        self._finished = False
        self._speed_shown = 0.0
        self._iter_pending: int | None = None
        self.next_tick = 0.0  # when ``tick`` is due (``time.perf_counter()``)
        self._sync_countdown = 1
        self._sync_clock = (time.perf_counter(), 0)

    # --- what the channel reads (RunContext) ---------------------------------------------------
    work_dir = property(lambda self: self._work_dir, doc="Where the framework's checkpoints go.")
    log_dir = property(lambda self: self._log_dir, doc="The run folder: connection file, run.json, log.")
    timestamp = property(lambda self: self._timestamp)
    experiment_name = property(lambda self: self._experiment_name)
    is_main_process = property(lambda self: self.main)
    finished = property(lambda self: self._finished, doc="True once the run ended (``finish``).")

    @property
    def epoch(self) -> int:
        """Epochs done."""
        return 0

    @property
    def iter(self) -> int:
        """Training iterations (optimizer steps) done."""
        return 0

    @property
    def max_epochs(self) -> int | None:
        return None

    @property
    def max_iters(self) -> int | None:
        return None

    # --- what each framework fills in -----------------------------------------------------------
    def validate(self) -> str:
        """Run validation now or at the framework's next chance; say what happened."""
        raise CommandRejected(f"validation on demand is not supported with {self.framework}")

    def save_checkpoint(self, reason: str) -> str:
        """Save a resumable checkpoint (on every rank, if the framework wants that); say where."""
        raise CommandRejected(f"saving on demand is not supported with {self.framework}")

    def resume(self, which: str, *trust: str) -> str:
        """Load checkpoint ``which`` into the live run, or say why not and how to resume instead."""
        raise CommandRejected(f"resuming in place is not supported with {self.framework}")

    def end_training(self, reason: str) -> None:
        """Make the framework stop training after this iteration."""

    def lr_targets(self) -> list[tuple[list[dict[str, Any]], list[Any]]]:
        """Per optimizer: its parameter groups, and the schedulers whose base values follow ``set``."""
        return []

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (identity in one process)."""
        return obj

    def resume_description(self) -> str:
        """The ``resume`` command's help line (frameworks that cannot resume in place say so)."""
        return "load a checkpoint into the live run and continue from it"

    def extra_commands(self) -> Iterable[Command]:
        """Commands the framework's hooks or callbacks declare."""
        return ()

    # --- commands -------------------------------------------------------------------------------
    def builtin_commands(self) -> list[Command]:
        """Cockpit's built-in commands, as declared for a Cockpit run, with this framework's handlers."""
        handlers: dict[str, Callable[..., str | None]] = {
            VAL: lambda run: run.validate(),
            SAVE: lambda run: run.save_checkpoint("command 'save'"),
            RESUME: lambda run, which, *trust: run.resume(which, *trust),
            SET: _set_lr,
        }
        out = []
        for command in builtin_commands():
            if command.name in handlers:
                command = dataclasses.replace(command, handler=handlers[command.name])
            if command.name == RESUME and not self.resumes_in_place:
                # Resuming is refused here (the description says how to resume instead): nothing to confirm, and
                # no file is loaded, so nothing to trust.
                command = dataclasses.replace(command, description=self.resume_description(), confirm=None,
                                              args=command.args[:1])
            out.append(command)
        return out

    def add_commands(self, commands: Iterable[Command], owner: str) -> None:
        """Offer the commands a hook or callback declares (a clash is logged, not fatal)."""
        for command in commands:
            try:
                self.control.add(command)
            except ValueError as error:
                self.logger.error(f"cockpit: {owner}'s command {command.name!r} is not offered: {error}")

    # --- the lifecycle --------------------------------------------------------------------------
    def start(self, info: dict[str, Any] | None = None) -> None:
        """Publish the run's identity, start serving views (rank 0), mark the run running."""
        hub = self.message_hub
        hub.update_info_dict({"experiment_name": self.experiment_name, "framework": self.framework,
                              "work_dir": str(self.work_dir), "log_dir": str(self.log_dir),
                              "pid": os.getpid(), "started": time.time(), **(info or {})})
        self.control.open()
        self.add_commands(self.extra_commands(), "a hook or callback")
        hub.set_status(ev.Status.RUNNING)
        atexit.register(self._at_exit)
        if not self.main:
            return
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._stack.enter_context(ChannelServer(self, self.control, listen=self.listen,
                                                    batch_interval=CHANNEL_INTERVAL))
        except Exception as error:  # noqa: BLE001 - no view is no reason to stop someone's training
            self.logger.error(f"cockpit: cannot serve views ({type(error).__name__}: {error}); training goes on")
        else:
            self.logger.info(f"cockpit: serving views: cockpit attach {self.log_dir}")
            self._announce()

    def _announce(self) -> None:
        """Tell whoever started this script where the run is served (``$COCKPIT_ANNOUNCE``, if set).

        ``cockpit run --script train.py`` sets it to a file path and waits for the file: it holds
        ``{"run_dir": ..., "pid": ...}``, written whole (a temporary file renamed into place).
        """
        target = os.environ.get(ANNOUNCE_VARIABLE)
        if not target:
            return
        path = Path(target)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            tmp.write_text(json.dumps({"run_dir": str(self.log_dir), "pid": os.getpid(),
                                       "experiment_name": self.experiment_name, "framework": self.framework}))
            os.replace(tmp, path)
        except OSError as error:
            self.logger.error(f"cockpit: cannot announce the run in {path}: {error}")

    def finish(self, error: BaseException | None = None) -> None:
        """The run ended: publish its final status, refuse further commands, stop serving (idempotent)."""
        if self._finished:
            return
        self._finished = True
        atexit.unregister(self._at_exit)
        hub = self.message_hub
        try:
            self.publish_batched()
        except Exception as failure:  # noqa: BLE001 - the run's own end (or error) is what must be told
            self.logger.error(f"cockpit: the last steps' values could not be published: {failure}")
        self.trace.flush()
        if error is None:
            status, detail = (ev.Status.STOPPED, self.stop_reason) if self.stop_reason else (ev.Status.FINISHED, "")
        elif isinstance(error, KeyboardInterrupt):
            status, detail = ev.Status.STOPPED, "interrupted (KeyboardInterrupt)"
        elif type(error).__name__ == "SIGTERMException" and self.stop_reason:
            status, detail = ev.Status.STOPPED, self.stop_reason  # Lightning's way to end a fit on SIGTERM
        else:
            status, detail = ev.Status.FAILED, f"{type(error).__name__}: {error}"
            hub.update_info("error_traceback", "".join(traceback.format_exception(error)))
        self._iter_pending = None
        hub.update_info_dict({"epoch": self.epoch, "iter": self.iter})
        hub.set_status(status, detail)
        self.control.close("the run ended before the command could be applied")
        self._stack.close()

    def _at_exit(self) -> None:
        # The process is ending and the framework never said the run ended (it raised, say).
        error = getattr(sys, "last_value", None)
        self.finish(error if error is not None else RuntimeError("the process exited while training"))

    def patch(self, owner: Any, name: str, value: Any) -> None:
        """Set ``owner.name`` on this instance until the run ends (then the original comes back)."""
        had_own = name in vars(owner)
        previous = vars(owner).get(name)
        setattr(owner, name, value)

        def restore() -> None:
            if had_own:
                setattr(owner, name, previous)
            else:
                with contextlib.suppress(AttributeError):
                    delattr(owner, name)

        self._stack.callback(restore)

    def keep_log_file(self, header: str = "", logger: logging.Logger | None = None) -> None:
        """Write ``logger``'s records (``self.logger``'s by default) to ``<run folder>/<timestamp>.log`` until the
        run ends (rank 0); a new file starts with ``header`` (which goes to no console)."""
        if not self.main:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / f"{self.timestamp}.log"
        if header and not path.exists():
            path.write_text(header.rstrip("\n") + "\n")
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
        logger = logger or self.logger
        logger.addHandler(handler)
        self._stack.callback(handler.close)
        self._stack.callback(logger.removeHandler, handler)

    # --- what the framework reports ---------------------------------------------------------------
    def show_iter(self, value: int) -> None:
        """The iteration under way, for the views: sent by the next ``tick`` (or safe point that applies
        commands, so a paused run shows where it stands)."""
        self._iter_pending = value

    def _show_pending_iter(self) -> None:
        if self._iter_pending is not None:
            value, self._iter_pending = self._iter_pending, None
            self.message_hub.update_info("iter", value)

    def tick(self, now: float | None = None) -> None:
        """Publish what the training thread keeps between ticks: the values of its steps (``publish_batched``),
        the hooks' timings, the iteration, the speed.

        Frameworks call it when ``next_tick`` has passed, about every ``SHOW_INTERVAL``: a view redraws a few times
        a second, and what is published once per tick instead of once per step costs each step far less.
        """
        now = time.perf_counter() if now is None else now
        self.next_tick = now + SHOW_INTERVAL
        self.publish_batched()
        self.trace.flush(now)
        self._show_pending_iter()
        self.show_speed()

    def publish_batched(self) -> None:
        """Publish the per-step values kept since the last tick (each framework keeps its own)."""

    def progress(self, **info: Any) -> None:
        """Update runtime info (``epoch``, ``iter``, ``max_iters``...) that changed."""
        hub = self.message_hub
        current = hub.runtime_info
        for key, value in info.items():
            if current.get(key, _MISSING) != value:
                hub.update_info(key, value)

    def scalars(self, values: dict[str, Any], step: int) -> None:
        """Publish scalars at training iteration ``step``; values that are not numbers are skipped."""
        hub = self.message_hub
        for key, value in values.items():
            try:
                hub.update_scalar(key, value, step)
            except (TypeError, ValueError, RuntimeError):
                continue

    def show_speed(self) -> None:
        """Iterations per second and ETA from the recent ``train/time`` (a few times a second at most)."""
        now = time.monotonic()
        if now - self._speed_shown < 0.5:
            return
        self._speed_shown = now
        hub = self.message_hub
        history = hub.log_scalars.get("train/time")
        mean = history.mean() if history is not None else 0.0
        if mean > 0:
            total = self.max_iters
            hub.update_info("iters_per_sec", 1.0 / mean)
            if total:
                hub.update_info("eta", mean * max(0, total - self.iter))

    def checkpoint_saved(self, path: str | Path, epoch: int | None = None, iteration: int | None = None) -> None:
        """A checkpoint is complete on disk (rank 0)."""
        path = str(Path(path).resolve())
        self.message_hub.record_checkpoint(path, self.epoch if epoch is None else epoch,
                                           self.iter if iteration is None else iteration)
        self.message_hub.update_info("last_ckpt", path)

    def forget_removed_checkpoints(self) -> None:
        """Tell views about checkpoints the framework deleted (rotation)."""
        for entry in self.message_hub.checkpoints:
            if not Path(entry["path"]).exists():
                self.message_hub.record_checkpoint_removed(entry["path"], "deleted by the framework")

    def validating(self, active: bool) -> None:
        """Validation started (True) or ended (False)."""
        hub = self.message_hub
        if active and hub.status == ev.Status.RUNNING:
            hub.set_status(ev.Status.VALIDATING)
        elif not active and hub.status == ev.Status.VALIDATING:
            hub.set_status(ev.Status.RUNNING)

    # --- the safe point ----------------------------------------------------------------------------
    def safe_point(self) -> None:
        """Apply commands and serve stop and save requests (training thread, at an iteration's end).

        A paused run waits here. With several processes, rank 0's commands reach every rank through
        ``broadcast``, about every 100 ms of training, and every rank applies them at the same step.
        """
        control, steering = self.control, self.steering
        if (self.world_size == 1 and not control.has_work() and steering.save_requested is None
                and steering.stop_requested is None):
            return  # nearly every iteration: nothing to apply, nothing to wait for
        self.serve_safe_point()

    def serve_safe_point(self) -> None:
        """``safe_point`` when there is something to do."""
        control, steering = self.control, self.steering
        began = time.perf_counter()
        if control.has_work():
            self.tick(began)  # views see where the run stands before it waits or acts
        if self.world_size > 1:
            self._agree()
        else:
            control.drain(lambda: steering.stop_requested is not None)
        self._serve_requests()
        self.held_seconds += time.perf_counter() - began

    def _serve_requests(self) -> None:
        steering = self.steering
        say = self.logger.info if self.main else lambda message: None  # every rank acts; rank 0 says so
        if steering.save_requested is not None:
            reason, steering.save_requested = steering.save_requested, None
            say(f"cockpit: {self.save_checkpoint(reason)} ({reason})")
        if steering.stop_requested is not None:
            reason, steering.stop_requested = steering.stop_requested, None
            self.stop_reason = reason
            if steering.stop_saves:
                say(f"cockpit: {self.save_checkpoint(reason)} ({reason})")
            say(f"cockpit: stopping: {reason}")
            self.end_training(reason)

    def _agree(self) -> None:
        """Rank 0 takes the queued commands and broadcasts them; every rank applies them."""
        self._sync_countdown -= 1
        if self._sync_countdown > 0:
            return
        control = self.control
        while True:
            requests = control.take_pending() if self.main else []
            message = None
            if self.main:
                started, since = self._sync_clock
                done = self.iter - since
                per_iter = (time.perf_counter() - started) / done if done > 0 else 0.0
                countdown = max(1, min(1000, int(0.1 / per_iter))) if per_iter > 0 else 1
                message = ([(r.id, r.name, r.args) for r in requests], countdown)
            specs, self._sync_countdown = self.broadcast(message)
            self._sync_clock = (time.perf_counter(), self.iter)
            if self.main:
                control.apply_requests(requests)
            else:
                control.apply_mirrored(specs)
            if not control.paused or self.steering.stop_requested is not None:
                return
            if self.main:
                control.wait_for_commands(0.2)  # paused: every rank waits in the next broadcast


_MISSING = object()


def _set_lr(run: AdaptedRun, assignment: str) -> str:
    """``set``: Cockpit's handler, per optimizer, on its groups and the schedulers that drive them."""
    targets = run.lr_targets()
    if not targets:
        raise CommandRejected("this run has no optimizer yet")
    set_lr = next(c for c in builtin_commands() if c.name == SET).handler
    messages = []
    for groups, schedulers in targets:
        view = SimpleNamespace(optim_wrapper=SimpleNamespace(param_groups=groups), param_schedulers=list(schedulers),
                               iter=run.iter, message_hub=run.message_hub)
        messages.append(set_lr(view, assignment))
    return "; ".join(messages)


def resolve_checkpoint(which: str, known: Iterable[str | Path], latest: str | Path | None = None,
                       best: str | Path | None = None, folders: Sequence[Path] = ()) -> Path:
    """The checkpoint a user means: ``latest``, ``best``, a path, or a file or folder name in ``folders``.

    Raises:
        CommandRejected: nothing by that name, with the names that exist.
    """
    known = [Path(k) for k in known]
    if which == "latest":
        if latest is None or not Path(latest).exists():
            raise CommandRejected("no checkpoint has been saved yet" if latest is None
                                  else f"the latest checkpoint {latest} is gone")
        return Path(latest).resolve()
    if which == "best":
        if not best or not Path(best).exists():
            raise CommandRejected("there is no best checkpoint (save_best / monitor not set, or none saved yet)")
        return Path(best).resolve()
    path = Path(which).expanduser()
    candidates = [path] if path.is_absolute() else [*(folder / path for folder in folders), path]
    candidates += [k for k in known if k.name == which]
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    names = sorted({k.name for k in known if k.exists()})
    raise CommandRejected(f"no checkpoint {which!r}; "
                          + (f"known: {', '.join(names)}, 'latest' or 'best'" if names else "none saved yet"))


__all__ = ["ANNOUNCE_VARIABLE", "AdaptedRun", "HookEntry", "HookTrace", "HubLogHandler", "OfferedCommands", "Steering",
           "resolve_checkpoint"]
