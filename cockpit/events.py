"""Events the message hub emits, one frozen dataclass each.

Every change to a run's state is one event with a sequence number. Events carry
plain Python values only (floats, ints, strings, tuples), so a view can ship them
across a process boundary without touching torch.

Where each fires:

=================  ==========================================================
``ScalarUpdated``  ``MessageHub.update_scalar``: a loss, lr, metric, timing...
``InfoUpdated``    ``MessageHub.update_info``: epoch, iter, max_iters, eta...
``StageEntered``   the dispatcher, as each hook stage starts
``StageTimed``     the dispatcher, after a stage ran: each hook it called, with its duration
``HooksChanged``   ``Runner.register_hook``: the hook table changed
``LogRecorded``    the run's logger, for every log record
``CheckpointSaved`` the ``Checkpointer``, once the file is complete and fsynced
``CheckpointRemoved`` the ``Checkpointer``, after rotation or a new best deleted a file
``StatusChanged``  the runner and the steering: a ``Status`` value, and why
``CommandAccepted`` ``ControlQueue.submit``: a command was queued (its id)
``CommandFinished`` the training thread, once a command was applied, rejected
                   or failed, with a message saying what happened
``GuardTripped``   the health guard (hooks/health.py): a non-finite value, a loss
                   spike, a stall or a straggler paused the run; views ring the
                   bell and show the choices (the runtime info ``guard_alert``
                   holds the active alert, None once it is resolved)
=================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Any


class Status(enum.StrEnum):
    """What a run is doing. A view that lost its run says ``DIED``; the run itself never does."""

    CONNECTING = "connecting"
    CREATED = "created"
    RUNNING = "running"
    VALIDATING = "validating"
    PAUSED = "paused"
    SAVING = "saving"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"
    DIED = "died"

    @property
    def ended(self) -> bool:
        """True once the run takes no more commands."""
        return self in ENDED


#: The statuses after which a run takes no more commands (the one list of them).
ENDED = frozenset({Status.FINISHED, Status.STOPPED, Status.FAILED, Status.DIED})


def is_ended(status: str) -> bool:
    """True for a status (``Status`` or its string) after which a run takes no more commands."""
    return status in ENDED


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all hub events: ``seq`` orders them, without gaps, per hub."""

    seq: int


@dataclass(frozen=True, slots=True)
class ScalarUpdated(Event):
    """A scalar got a new value at training iteration ``step``."""

    key: str
    value: float
    step: int


@dataclass(frozen=True, slots=True)
class InfoUpdated(Event):
    """A runtime-info entry changed (``value`` None means it was removed)."""

    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class StageEntered(Event):
    """A hook stage (``before_train_iter``...) started."""

    stage: str


@dataclass(frozen=True, slots=True)
class StageTimed(Event):
    """A stage ran: ``calls`` holds ``(hook, seconds)`` for each hook it called, in order.

    One event per stage, not one per hook call: the trace of a busy run stays cheap.
    """

    stage: str
    calls: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class HooksChanged(Event):
    """The hook table changed; ``table`` is ``MessageHub.hooks_table``'s value."""

    table: tuple


@dataclass(frozen=True, slots=True)
class LogRecorded(Event):
    """A log line: ``level`` is a logging level name."""

    level: str
    message: str
    time: float


@dataclass(frozen=True, slots=True)
class CheckpointSaved(Event):
    """A checkpoint file is complete on disk."""

    path: str
    epoch: int
    iter: int


@dataclass(frozen=True, slots=True)
class CheckpointRemoved(Event):
    """A checkpoint file was deleted (rotation, or a new best replaced the old one)."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class StatusChanged(Event):
    """The run's status changed; ``detail`` explains a failure or a stop."""

    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CommandAccepted(Event):
    """A command was queued; it will be applied at the next safe point."""

    id: str
    name: str
    args: tuple


@dataclass(frozen=True, slots=True)
class CommandFinished(Event):
    """A command's outcome: ``'applied'``, ``'rejected'`` (with the reason) or ``'failed'`` (with the error)."""

    id: str
    name: str
    outcome: str
    message: str


@dataclass(frozen=True, slots=True)
class GuardTripped(Event):
    """The health guard paused the run: ``kind`` (``nonfinite``, ``spike``, ``stall``, ``straggler``),
    what it saw, the iteration, the commands that answer it, what happens with no answer, and when
    (``deadline``, a wall-clock time)."""

    kind: str
    message: str
    step: int
    choices: tuple
    fallback: str = ""
    deadline: float = 0.0


#: Every event class by name: what ``decode_event`` accepts.
EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (ScalarUpdated, InfoUpdated, StageEntered, StageTimed, HooksChanged, LogRecorded,
                CheckpointSaved, CheckpointRemoved, StatusChanged, CommandAccepted, CommandFinished, GuardTripped)
}
_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in EVENT_TYPES.values()
}
#: The keys of a row's dict by event kind: ``t``, ``seq``, then the fields, in the row's order.
_ROW_KEYS: dict[str, tuple[str, ...]] = {name: ("t", *_FIELDS[cls]) for name, cls in EVENT_TYPES.items()}


def encode_event(event: Event) -> dict[str, Any]:
    """An event as a JSON-ready dict: ``{"t": "ScalarUpdated", "seq": 12, ...}``."""
    out: dict[str, Any] = {"t": type(event).__name__}
    for name in _FIELDS[type(event)]:
        out[name] = getattr(event, name)
    return out


def row_to_dict(row: Any) -> dict[str, Any] | None:
    """``encode_event``'s dict from an event as the channel sends it (None if ``row`` is not one).

    On the wire an event is a row, its kind then its fields in order:
    ``["ScalarUpdated", 12, "train/loss", 0.5, 12]``. The hub queues events in this form already
    (``hub.Subscription``), so the channel sends a batch with one encode of the queued tuples: no
    dict per event, no field names on the wire.

    A row of a kind this version does not know keeps its ``t`` and ``seq`` (and ``decode_event``
    refuses it), so a view still follows the sequence numbers of a newer run.
    """
    rows = rows_to_dicts([row])
    return rows[0] if rows else None


def rows_to_dicts(rows: list[Any], after: float = -math.inf) -> list[dict[str, Any]]:
    """``row_to_dict`` of each row of a batch whose ``seq`` is above ``after``; rows that are not events are left out.

    A view reads every event through here: one call per batch, one ``dict(zip(...))`` per row.
    """
    keys = _ROW_KEYS
    out = []
    for row in rows:
        if type(row) is not list or len(row) < 2 or type(row[1]) is not int or row[1] <= after:
            continue
        kind = row[0]
        if type(kind) is not str:
            continue
        names = keys.get(kind)
        out.append({"t": kind, "seq": row[1]} if names is None else dict(zip(names, row, strict=False)))
    return out


class UnknownEvent(ValueError):
    """An encoded event whose kind or fields this version does not know."""


def decode_event(data: dict[str, Any]) -> Event:
    """Undo ``encode_event``: the typed event back from its dict (lists become tuples).

    Raises:
        UnknownEvent: the ``t`` names no event, or the fields do not fit it.
    """
    cls = EVENT_TYPES.get(data.get("t", ""))
    if cls is None:
        raise UnknownEvent(f"unknown event kind {data.get('t')!r}")
    try:
        values = {name: _tupled(data[name]) if name in _TUPLE_FIELDS else data[name]
                  for name in _FIELDS[cls] if name in data}
        return cls(**values)
    except TypeError as error:
        raise UnknownEvent(f"bad {cls.__name__} event: {error}") from None


_TUPLE_FIELDS = frozenset({"calls", "table", "args", "choices"})


def _tupled(value: Any) -> Any:
    """JSON turns tuples into lists; events hold tuples (hashable, frozen)."""
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value
