"""The message hub: the one source of truth about a run, and its event stream.

Training code writes scalars and runtime info into it; views take a
``snapshot()`` and then follow ``subscribe()``'s events, re-syncing from a new
snapshot when they see a gap in the sequence numbers. Publishing never blocks:
each subscriber has a bounded queue that drops its oldest events when full, and
with no subscriber an update costs a dict lookup and a few additions.

There is no global hub: each runner owns one. Code that cannot reach the runner
asks ``current_hub()``, which the runner sets while it runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from cockpit import events as ev
from cockpit.history import ScalarHistory

_current: contextvars.ContextVar[MessageHub | None] = contextvars.ContextVar("cockpit_hub", default=None)


def current_hub() -> MessageHub:
    """The hub of the run going on in this thread.

    Raises:
        RuntimeError: outside a run.
    """
    hub = _current.get()
    if hub is None:
        raise RuntimeError(
            "no Cockpit run is active in this thread; current_hub() works inside Runner.train(), "
            "val() or test(), or inside `with hub.activated():`"
        )
    return hub


def to_float(value: Any) -> float:
    """A Python float from a number, a one-element tensor or array."""
    if type(value) is float:
        return value
    item = getattr(value, "item", None)
    if item is not None:
        return float(item())
    return float(value)


def _plain(value: Any) -> Any:
    """``value`` if it is made of plain Python data (what events and checkpoints may hold)."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # numpy and torch scalars
        return value.item()
    if isinstance(value, (bool, int, float, str)):  # other subclasses (enums...)
        return next(t for t in (bool, int, float, str) if isinstance(value, t))(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


class Subscription:
    """A view's bounded queue of hub events.

    The queue holds each event as a plain tuple, ``(event class name, seq, *fields)``: building
    the frozen dataclass costs the training thread three times what the tuple does, so it is
    built by whoever reads the event (``poll``), or never (the channel sends the tuples as
    they are, see ``events.row_to_dict``).

    Args:
        hub: the hub it listens to.
        maxlen: how many unread events it keeps before dropping the oldest.
    """

    def __init__(self, hub: MessageHub, maxlen: int) -> None:
        self.hub = hub
        self.queue: deque[tuple] = deque(maxlen=maxlen)
        #: Called, in the emitting thread, after an event its reader should not wait a batch for (a command's
        #: acknowledgement or outcome, a new status): a reader that drains the queue at intervals wakes now.
        self.wake: Callable[[], None] | None = None

    def poll(self, limit: int | None = None) -> list[ev.Event]:
        """Take the events received since the last poll (at most ``limit``)."""
        types = ev.EVENT_TYPES
        return [types[item[0]](*item[1:]) for item in self.poll_raw(limit)]

    def poll_raw(self, limit: int | None = None) -> list[tuple]:
        """Like ``poll``, as the queued ``(event class name, seq, *fields)`` tuples."""
        queue = self.queue
        # Only this reader takes from the queue; the writer only adds (dropping the oldest when
        # full keeps its length), so this many items are there to take.
        count = len(queue) if limit is None else min(limit, len(queue))
        take = queue.popleft
        return [take() for _ in range(count)]

    def close(self) -> None:
        """Stop receiving events."""
        self.hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MessageHub:
    """Scalars, runtime info, hook table and trace, logs and status of one run.

    Args:
        name: a label for the run (its experiment name).
        window_size: the default window of ``ScalarHistory.mean``.
        log_limit: how many recent log records are kept for snapshots.
    """

    def __init__(self, name: str = "", window_size: int = 10, log_limit: int = 2000) -> None:
        self.name = name
        self.window_size = window_size
        self._lock = threading.Lock()
        self._seq = 0
        self._subscribers: tuple[Subscription, ...] = ()
        self._scalars: dict[str, ScalarHistory] = {}
        self._info: dict[str, Any] = {}
        self._hooks_table: tuple = ()
        self._hook_stats: dict[tuple[str, str], list[float]] = {}
        self._stage: str = ""
        self._logs: deque[tuple[float, str, str]] = deque(maxlen=log_limit)
        self._checkpoints: list[dict[str, Any]] = []
        self._markers: list[dict[str, Any]] = []
        self._status = ev.Status.CREATED
        self._status_detail = ""
        # The series each scalar had in the last snapshot: key -> (history, its count, max_points, series).
        self._rendered: dict[str, tuple[ScalarHistory, int, int | None, dict[str, Any]]] = {}

    # --- events -------------------------------------------------------------
    @property
    def seq(self) -> int:
        """The sequence number of the newest event."""
        return self._seq

    def subscribe(self, maxlen: int = 100_000) -> Subscription:
        """A new bounded queue that receives every event from now on."""
        sub = Subscription(self, maxlen)
        with self._lock:
            self._subscribers = (*self._subscribers, sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not sub)

    def publish(self, cls: type[ev.Event], *args: Any) -> None:
        """Emit an event that changes no stored state (command acknowledgements and outcomes).

        Someone waits for these: subscribers are woken (``Subscription.wake``).
        """
        with self._lock:
            self._emit(cls.__name__, *args)
        self._wake()

    def _wake(self) -> None:
        for sub in self._subscribers:
            wake = sub.wake
            if wake is not None:
                wake()

    def _emit(self, kind: str, *args: Any) -> None:
        # Called with the lock held. Events are only queued when someone listens.
        self._seq += 1
        if self._subscribers:
            item = (kind, self._seq, *args)
            for sub in self._subscribers:
                sub.queue.append(item)

    # --- scalars ------------------------------------------------------------
    def update_scalar(self, key: str, value: Any, step: int | None = None) -> None:
        """Record ``value`` (a number or one-element tensor) for ``key`` at ``step``.

        ``step`` defaults to the runtime info ``iter``.
        """
        if type(value) is not float:
            value = to_float(value)
        # This runs several times an iteration: ``_emit`` is written out here, and lookups are
        # subscripts rather than calls to ``get``.
        if step is None:
            try:
                step = self._info["iter"]
            except KeyError:
                step = 0
        with self._lock:
            try:
                history = self._scalars[key]
            except KeyError:
                history = self._scalars[key] = ScalarHistory(self.window_size)
            history.update(value, step)
            self._seq = seq = self._seq + 1
            if self._subscribers:
                item = ("ScalarUpdated", seq, key, value, step)
                for sub in self._subscribers:
                    sub.queue.append(item)

    def update_scalars(self, values: dict[str, Any], step: int | None = None) -> None:
        for key, value in values.items():
            self.update_scalar(key, value, step)

    def get_scalar(self, key: str) -> ScalarHistory:
        """The history of ``key``.

        Raises:
            KeyError: naming the scalars that do exist.
        """
        try:
            return self._scalars[key]
        except KeyError:
            known = ", ".join(sorted(self._scalars)) or "none yet"
            raise KeyError(f"no scalar {key!r} in the message hub (known: {known})") from None

    @property
    def log_scalars(self) -> dict[str, ScalarHistory]:
        """All scalar histories by key (MMEngine's name)."""
        return self._scalars

    # --- runtime info -------------------------------------------------------
    def update_info(self, key: str, value: Any) -> None:
        """Set a runtime-info entry (epoch, iter, max_iters, lr, eta, ...)."""
        # Every iteration sets ``iter``: ``_emit`` is written out here too.
        with self._lock:
            self._info[key] = value
            self._seq = seq = self._seq + 1
            if self._subscribers:
                item = ("InfoUpdated", seq, key, value)
                for sub in self._subscribers:
                    sub.queue.append(item)

    def update_info_dict(self, info: dict[str, Any]) -> None:
        for key, value in info.items():
            self.update_info(key, value)

    def get_info(self, key: str, default: Any = None) -> Any:
        return self._info.get(key, default)

    def pop_info(self, key: str, default: Any = None) -> Any:
        with self._lock:
            value = self._info.pop(key, default)
            self._emit("InfoUpdated", key, None)
        return value

    @property
    def runtime_info(self) -> dict[str, Any]:
        return self._info

    # --- hooks --------------------------------------------------------------
    def set_hooks_table(self, table: tuple) -> None:
        """Publish the hook order: ``((stage, ((priority_name, priority, hook), ...)), ...)``."""
        with self._lock:
            self._hooks_table = table
            self._emit("HooksChanged", table)

    @property
    def hooks_table(self) -> tuple:
        return self._hooks_table

    def enter_stage(self, stage: str) -> None:
        """A hook stage starts (the dispatcher calls this for every stage while someone listens)."""
        with self._lock:
            self._stage = stage
            self._emit("StageEntered", stage)

    def note_stage(self, stage: str) -> None:
        """Remember the current stage without an event (nobody is listening)."""
        self._stage = stage

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    def hook_counter(self, stage: str, hook: str) -> list[float]:
        """The ``[calls, seconds]`` counter of one hook at one stage, for the dispatcher to add to."""
        with self._lock:
            return self._hook_stats.setdefault((stage, hook), [0, 0.0])

    @property
    def stage(self) -> str:
        """The hook stage that started last."""
        return self._stage

    def record_stage(self, stage: str, calls: list[tuple[str, float]]) -> None:
        """Count the hook calls of one run of ``stage`` and publish them as one event."""
        calls = tuple(calls)
        hook_stats = self._hook_stats
        with self._lock:
            for hook, seconds in calls:
                stats = hook_stats.get((stage, hook))
                if stats is None:
                    stats = hook_stats[stage, hook] = [0, 0.0]
                stats[0] += 1
                stats[1] += seconds
            self._emit("StageTimed", stage, calls)

    def hook_timings(self) -> dict[tuple[str, str], tuple[int, float]]:
        """``(stage, hook) -> (calls, total seconds)`` for hooks that were called."""
        with self._lock:
            return {key: (int(c), t) for key, (c, t) in self._hook_stats.items() if c}

    # --- logs, checkpoints, markers, status ----------------------------------
    def log(self, level: str, message: str, when: float | None = None) -> None:
        """Record a log line (the run's logger calls this for every record)."""
        when = time.time() if when is None else when
        with self._lock:
            self._logs.append((when, level, message))
            self._emit("LogRecorded", level, message, when)

    def logs(self) -> list[tuple[float, str, str]]:
        with self._lock:
            return list(self._logs)

    def record_checkpoint(self, path: str, epoch: int, iteration: int) -> None:
        """Note a checkpoint that is complete on disk."""
        with self._lock:
            self._checkpoints.append({"path": path, "epoch": epoch, "iter": iteration, "time": time.time()})
            self._emit("CheckpointSaved", path, epoch, iteration)

    def record_checkpoint_removed(self, path: str, reason: str) -> None:
        """Note that a checkpoint file was deleted (rotation, a replaced best)."""
        with self._lock:
            self._checkpoints = [c for c in self._checkpoints if c["path"] != path]
            self._emit("CheckpointRemoved", path, reason)

    @property
    def checkpoints(self) -> list[dict[str, Any]]:
        return list(self._checkpoints)

    def add_marker(self, kind: str, step: int, detail: str = "") -> None:
        """Mark an event on the run's timeline (a resume, a jump) so plots can show it."""
        with self._lock:
            self._markers.append({"kind": kind, "step": step, "detail": detail})
            self._emit("InfoUpdated", "markers", list(self._markers))

    @property
    def markers(self) -> list[dict[str, Any]]:
        return list(self._markers)

    def set_status(self, status: str, detail: str = "") -> None:
        """Set the run status: created, running, paused, finished, failed, stopped..."""
        status = ev.Status(status)  # a typo is an error here, not a view showing nonsense
        with self._lock:
            self._status = status
            self._status_detail = detail
            self._emit("StatusChanged", status, detail)
        self._wake()

    @property
    def status(self) -> str:
        return self._status

    @property
    def status_detail(self) -> str:
        """Why the run failed or stopped (empty otherwise)."""
        return self._status_detail

    # --- views --------------------------------------------------------------
    def snapshot(self, max_points: int | None = None, shared: bool = False) -> dict[str, Any]:
        """Everything a view needs to draw the run now, as plain data.

        Args:
            max_points: if given, each scalar series is cut to its newest ``max_points``.
            shared: the caller only reads the series (the channel encodes them): a series that has
                not changed since the last snapshot comes back as the very same dict as then, so
                the caller can tell it has not changed; without it every series is the caller's own.

        The ``seq`` in the result is the last event the snapshot includes: a view
        applies only events with a larger sequence number on top of it.

        Only copying the state holds the hub's lock (well under a millisecond for a long run),
        so training, which takes the lock for every update, is not held up by a view that asks
        for snapshots; turning the copies into series and plain data happens after. A series
        is built again only when its history changed since the last snapshot (its ``count``):
        the long past of a long run is not rebuilt for every snapshot.
        """
        with self._lock:
            copied = self._copy_state(max_points)
        rendered = self._rendered
        scalars = {}
        for key, (history, count, built) in copied["scalars"].items():
            if isinstance(built, ScalarHistory):  # changed since the last snapshot: a copy to build it from
                built = _series(built, max_points)
                # Another thread's snapshot may store an older one meanwhile: the next snapshot sees the
                # count differ and builds it again.
                rendered[key] = (history, count, max_points, built)
            scalars[key] = built if shared else _own(built)
        for key in [key for key in list(rendered) if key not in scalars]:  # scalars a resume replaced
            rendered.pop(key, None)
        copied["scalars"] = scalars
        copied["info"] = {key: _plain(value) for key, value in copied["info"].items()}
        return copied

    def _copy_state(self, max_points: int | None) -> dict[str, Any]:
        """What ``snapshot`` returns, with each scalar as ``(history, count, built)`` (lock held).

        ``built`` is the series built for an earlier snapshot when it still holds (same history, same
        ``count``: every update adds one, same ``max_points``), else a copy of the history to build it from.
        """
        rendered = self._rendered
        scalars = {}
        for key, history in self._scalars.items():
            done = rendered.get(key)
            if done is not None and done[0] is history and done[1] == history.count and done[2] == max_points:
                scalars[key] = (history, history.count, done[3])
            else:
                scalars[key] = (history, history.count, _copy_history(history))
        return {
            "seq": self._seq,
            "name": self.name,
            "status": self._status,
            "status_detail": self._status_detail,
            "info": dict(self._info),
            "scalars": scalars,
            "hooks": self._hooks_table,
            "hook_timings": {f"{s}/{h}": (int(c), t) for (s, h), (c, t) in self._hook_stats.items() if c},
            "stage": self._stage,
            "logs": list(self._logs),
            "checkpoints": list(self._checkpoints),
            "markers": list(self._markers),
        }

    @contextlib.contextmanager
    def activated(self) -> Iterator[MessageHub]:
        """Make this hub ``current_hub()`` inside the block."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    # --- persistence --------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The hub's state in MMEngine's layout, as plain data that loads with ``weights_only=True``.

        ``log_scalars`` (each history as ``ScalarHistory.state_dict()``, not MMEngine's
        ``HistoryBuffer`` object), ``runtime_info`` and ``resumed_keys`` (every saved key, True),
        plus Cockpit's ``name``, ``checkpoints`` and ``markers``.
        """
        with self._lock:
            scalars = {k: h.state_dict() for k, h in self._scalars.items()}
            info = {k: _plain(v) for k, v in self._info.items() if k not in _TRANSIENT_INFO}
            return {
                "log_scalars": scalars,
                "runtime_info": info,
                "resumed_keys": dict.fromkeys([*scalars, *info], True),
                "name": self.name,
                "checkpoints": [dict(c) for c in self._checkpoints],
                "markers": [dict(m) for m in self._markers],
            }

    @staticmethod
    def check_state_dict(state: Any) -> dict[str, Any]:
        """``state`` (this layout, or the one before it: ``scalars``/``info``) parsed and checked.

        The result is what ``load_state_dict`` installs; building it changes nothing, so a
        resume can check the hub's state before it changes anything.

        Raises:
            ValueError: naming what is malformed.
        """
        if not isinstance(state, dict):
            raise ValueError(f"the message hub state is a {type(state).__name__}, not a dict")
        new_layout = "log_scalars" in state
        scalars = state.get("log_scalars" if new_layout else "scalars")
        info = state.get("runtime_info" if new_layout else "info", {})
        if not isinstance(scalars, dict) or not isinstance(info, dict):
            raise ValueError("the message hub state has no dict of scalars (log_scalars) and runtime info")
        histories = {}
        for key, history in scalars.items():
            try:
                histories[str(key)] = ScalarHistory.from_state_dict(history)
            except (KeyError, TypeError, ValueError, IndexError) as error:
                raise ValueError(f"the history of scalar {key!r} is malformed ({type(error).__name__}: {error})"
                                 ) from None
        records = {}
        for name in ("checkpoints", "markers"):
            items = state.get(name, [])
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise ValueError(f"the message hub's {name} are not a list of dicts")
            records[name] = [dict(item) for item in items]
        return {"scalars": histories, "info": {str(k): v for k, v in info.items() if k not in _TRANSIENT_INFO},
                **records}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (plots continue where they were).

        Raises:
            ValueError: the state is malformed; then nothing changed.
        """
        checked = self.check_state_dict(state)
        with self._lock:
            self._scalars = checked["scalars"]
            self._info.update(checked["info"])
            self._checkpoints = checked["checkpoints"]
            self._markers = checked["markers"]
            self._emit("InfoUpdated", "resynced", True)

    def __repr__(self) -> str:
        return f"MessageHub(name={self.name!r}, scalars={len(self._scalars)}, seq={self._seq})"


def _copy_history(history: ScalarHistory) -> ScalarHistory:
    """A copy of ``history`` that later updates leave alone, made at C speed (the hub's lock is held).

    Folded buckets are never changed once they are in the bucket list (halving builds new ones),
    so the list is copied and the buckets shared; the pending bucket is still growing: copied.
    """
    copy = ScalarHistory.__new__(ScalarHistory)
    for name in ScalarHistory.__slots__:
        setattr(copy, name, getattr(history, name))
    copy._recent = history._recent.copy()
    copy._buckets = list(history._buckets)
    copy._pending = None if history._pending is None else list(history._pending)
    return copy


def _own(series: dict[str, Any]) -> dict[str, Any]:
    """A copy of a built series that its receiver may change (its lists copied, at C speed)."""
    return {**series, "steps": series["steps"][:], "values": series["values"][:], "mins": series["mins"][:],
            "maxs": series["maxs"][:]}


def _series(history: ScalarHistory, max_points: int | None) -> dict[str, Any]:
    """One scalar as a snapshot holds it: the series (its newest ``max_points``) and its statistics.

    The points are ``history.series()``'s, built at C speed where they can be (the full-resolution
    part is most of a long run's points): a view that asks for snapshots costs the run little.
    """
    folded = list(history._buckets)
    if history._pending is not None:
        folded.append(history._pending)
    steps = [int(last if count > 1 else first) for first, last, _, count, _, _ in folded]
    means = [total / count for _, _, total, count, _, _ in folded]
    mins = [bucket[4] for bucket in folded]
    maxs = [bucket[5] for bucket in folded]
    if history._recent:
        recent_steps, recent_values = zip(*history._recent, strict=True)
        steps += recent_steps
        for part in (means, mins, maxs):
            part += recent_values
    if max_points is not None:
        steps, means, mins, maxs = (s[-max_points:] for s in (steps, means, mins, maxs))
    return {
        "steps": steps,
        "values": means,
        "mins": mins,
        "maxs": maxs,
        "current": history.current(),
        "mean": history.mean(),
        "global_mean": history.global_mean(),
        "min": history.min(),
        "max": history.max(),
        "count": history.count,
    }


# Info that describes this process rather than the run, so it is not restored.
_TRANSIENT_INFO = frozenset({"loop_stage", "pid", "cfg", "system"})

__all__ = ["MessageHub", "Subscription", "current_hub", "to_float"]
