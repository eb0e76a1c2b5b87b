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
``CheckpointSaved`` ``Runner.save_checkpoint``, once the file is complete
``StatusChanged``  the runner: running, paused, finished, failed, stopped...
``CommandAccepted`` ``ControlQueue.submit``: a command was queued (its id)
``CommandFinished`` the training thread, once a command was applied, rejected
                   or failed, with a message saying what happened
=================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
