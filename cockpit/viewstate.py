"""What a view knows about a run: a snapshot, kept current by the event stream.

``RunState`` is the one model behind every view (the terminal UI, the notebook
widget, the plain progress lines). It is fed a hub snapshot, then the
channel's messages (``receive``), and renderers read it. It holds plain Python
data only and imports no UI package.

The rules, the same for every view:

- A snapshot replaces everything (``load_snapshot``); log records already seen
  are not handed out again.
- Events are typed (``cockpit.events``), decoded once as they come in, and
  dispatched on their class through one table (``_APPLY``).
- A gap in the sequence numbers, or a hub that was reloaded from a checkpoint
  (runtime info ``resynced``), sets ``needs_snapshot``: whoever feeds the state
  then fetches a new snapshot.
- ``changed`` names the parts touched since a renderer last drew
  (``take_changes``), and ``changed_keys`` the scalars (``take_changed_keys``),
  so it redraws only those.
- The run's commands are data (``CommandInfo``), rendered by each view.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cockpit.events import (
    CheckpointRemoved,
    CheckpointSaved,
    CommandAccepted,
    CommandFinished,
    Event,
    GuardTripped,
    HooksChanged,
    InfoUpdated,
    LogRecorded,
    ScalarUpdated,
    StageEntered,
    StageTimed,
    Status,
    StatusChanged,
    UnknownEvent,
    decode_event,
    is_ended,
)
from cockpit.series import Series

#: Metric keys where lower is better (as MMEngine infers a rule); anything else: higher is better.
LOWER_IS_BETTER = ("loss", "error", "err", "mse", "mae", "perplexity", "ppl")


def lower_is_better(key: str) -> bool:
    """Whether a smaller value of scalar ``key`` is better (a loss, an error), from its last name part."""
    name = key.rsplit("/", 1)[-1].lower()
    return any(word in name for word in LOWER_IS_BETTER)


#: The parts of a run a renderer may redraw separately (``RunState.changed`` holds some of these).
PARTS = frozenset({"status", "info", "scalars", "hooks", "timings", "stage", "logs", "checkpoints", "markers",
                   "commands", "outcomes", "system"})


# --- the run's commands, as views read them ---------------------------------------------------------
@dataclass(frozen=True)
class CommandArg:
    """One argument of a command: ``kind`` is ``'text'``, ``'checkpoint'`` or ``'choice'``."""

    name: str
    help: str = ""
    kind: str = "text"
    choices: tuple[str, ...] = ()
    optional: bool = False


@dataclass(frozen=True)
class CommandInfo:
    """A command the run offers, as published in its ``commands`` runtime info (one dict each).

    Views render these: a key binding, a button, a palette entry, a prompt for each argument,
    a confirmation. None of them knows a command by its name.
    """

    name: str
    label: str
    description: str = ""
    key: str | None = None
    args: tuple[CommandArg, ...] = ()
    usage: str = ""
    confirm: str | None = None
    while_paused: bool = True
    when: str = "live"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CommandInfo:
        """Read one entry of the run's command list.

        A run of an older version describes arguments by name only (``["path|latest|best"]``,
        ``"[nosave]"`` for an optional one): they are read as text arguments.
        """
        args = []
        for arg in data.get("args", ()):
            if isinstance(arg, str):
                optional = arg.startswith("[") and arg.endswith("]")
                args.append(CommandArg(arg.strip("[]"), arg, optional=optional))
            else:
                args.append(CommandArg(arg["name"], arg.get("help", ""), arg.get("kind", "text"),
                                       tuple(arg.get("choices") or ()), bool(arg.get("optional", False))))
        name = data["name"]
        return cls(name=name, label=data.get("label") or name.capitalize(), description=data.get("description", ""),
                   key=data.get("key") or None, args=tuple(args), usage=data.get("usage") or name,
                   confirm=data.get("confirm") or None, while_paused=bool(data.get("while_paused", True)),
                   when=data.get("when", "live"))

    @property
    def title(self) -> str:
        """The label without the ellipsis that says "asks for more" (for a button beside its field)."""
        return self.label.rstrip("…").rstrip(".").strip()

    @property
    def required(self) -> tuple[CommandArg, ...]:
        """The arguments a view must ask for before sending."""
        return tuple(arg for arg in self.args if not arg.optional)

    @property
    def takes_checkpoint(self) -> bool:
        """Whether its first argument is a checkpoint (views offer it on their checkpoint lists)."""
        return bool(self.required) and self.required[0].kind == "checkpoint"

    def offered(self, status: str, alert: bool = False) -> bool:
        """Whether a view offers it while the run is in ``status`` (ended or not: sending is refused then).

        ``when`` says: ``'live'`` always, ``'paused'`` only while paused, ``'running'`` while not
        paused, ``'alert'`` only while the health guard holds the run (``alert``). So two commands
        sharing a key (pause, continue) never show at once.
        """
        if self.when == "alert":
            return alert and status == Status.PAUSED
        if self.when == "paused":
            return status == Status.PAUSED
        if self.when == "running":
            return status != Status.PAUSED
        return True

    def question(self, args: Sequence[str]) -> str | None:
        """The confirmation the command declares, for ``args``, or None."""
        if not self.confirm:
            return None
        try:
            return self.confirm.format(*args)
        except (IndexError, KeyError, ValueError):
            return self.confirm

    def confirmation(self, args: Sequence[str]) -> str | None:
        """What to ask before sending it with ``args``, or None: the terminal's rule.

        A command that declares a question asks it; one that takes what the user typed or picked
        (a checkpoint, a learning rate) changes the run's course with it, so it asks that back (a
        stray key must not steer the run). The rest (save, validate, pause) go at once.
        """
        question = self.question(args)
        if question is None and self.required and args:
            question = f"{self.title}: {' '.join(args)}?" + (f"\n({self.description})" if self.description else "")
        return question


# --- each rank's health, as views read it -----------------------------------------------------------
def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def short_seconds(seconds: float) -> str:
    """A short duration: ``47ms``, ``0.12s``, ``63s``, ``4m05s``, ``2h10m`` (``?`` when unknown)."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 0.1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 100:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"
    return f"{int(seconds) // 3600}h{int(seconds) % 3600 // 60:02d}m"


@dataclass(frozen=True)
class RankHealth:
    """One rank of a distributed run, from the run's ``rank_health`` info (the health guard publishes
    it on rank 0; every figure rides on the steering's agreement all-reduce).

    Times are seconds; ``heartbeat`` is the unix time of the rank's last report; ``ratio`` is its own
    time per step (outside the synchronised step) over the median rank's. ``straggler`` and ``hung`` are
    the run's own verdicts (its ``straggler_factor``, 1.3 by default), not the view's.
    """

    rank: int
    iter: int = 0
    step_time: float = math.nan
    own_time: float = math.nan
    data_time: float = math.nan
    memory_mb: float = math.nan
    heartbeat: float = math.nan
    idle: float = math.nan
    ratio: float = math.nan
    alert: str = ""
    straggler: bool = False
    hung: bool = False
    where: str = ""

    @property
    def state(self) -> str:
        """``'hung'``, ``'alert'`` (its guard tripped), ``'straggler'`` or ``'ok'``, the worst first."""
        if self.hung:
            return "hung"
        if self.alert and self.alert != "straggler":
            return "alert"
        return "straggler" if self.straggler or self.alert == "straggler" else "ok"

    @property
    def note(self) -> str:
        """What the strip says of it: ``0.12s`` (its step), ``straggles 2.6x``, ``hung 63s``, ``alert nonfinite``."""
        state = self.state
        if state == "hung":
            return f"hung {short_seconds(self.idle)}" if math.isfinite(self.idle) else "hung"
        if state == "alert":
            return f"alert {self.alert}"
        if state == "straggler":
            return f"straggles {self.ratio:.1f}x" if math.isfinite(self.ratio) else "straggles"
        return short_seconds(self.step_time)

    def age(self, now: float) -> float:
        """Seconds since the rank last reported (nan when unknown)."""
        return max(0.0, now - self.heartbeat) if math.isfinite(self.heartbeat) else math.nan


def rank_health(value: Any) -> tuple[RankHealth, ...]:
    """Read the run's ``rank_health`` info (a list with one dict per rank); rows that are not dicts
    are skipped, missing figures are nan. Empty unless the run has more than one rank."""
    rows = [row for row in value if isinstance(row, dict)] if isinstance(value, (list, tuple)) else []
    if len(rows) < 2:
        return ()
    own = [_number(row.get("own_time")) for row in rows]
    known = [t for t in own if math.isfinite(t)]
    median = statistics.median(known) if known else math.nan
    out = []
    for index, (row, own_time) in enumerate(zip(rows, own, strict=True)):
        rank = row.get("rank", index)
        out.append(RankHealth(
            rank=int(rank) if isinstance(rank, (int, float)) else index,
            iter=int(_number(row.get("iter"))) if math.isfinite(_number(row.get("iter"))) else 0,
            step_time=_number(row.get("step_time")), own_time=own_time, data_time=_number(row.get("data_time")),
            memory_mb=_number(row.get("memory_mb")), heartbeat=_number(row.get("heartbeat")),
            idle=_number(row.get("idle")), ratio=own_time / median if median > 0 else math.nan,
            alert=str(row.get("alert") or ""), straggler=bool(row.get("straggler")), hung=bool(row.get("hung")),
            where=str(row.get("where") or "")))
    return tuple(sorted(out, key=lambda r: r.rank))


# --- the run ----------------------------------------------------------------------------------------
class RunState:
    """A view's model of one run.

    Attributes:
        seq: the newest event applied (or the snapshot's).
        status, status_detail: what the run does (a ``Status``), and why it stopped or failed.
        info: the hub's runtime info (epoch, iter, max_iters, eta, ...).
        scalars: a ``Series`` per scalar key.
        hooks: the hook table, ``((stage, ((priority_name, priority, hook), ...)), ...)``.
        hook_timings: ``(stage, hook) -> [calls, seconds]``.
        stage: the hook stage that started last.
        logs: the recent log records ``(time, level, message)``, bounded.
        checkpoints: ``{'path', 'epoch', 'iter', 'time'}`` of each checkpoint saved and not removed.
        removed_checkpoints: ``(path, reason)`` of each checkpoint the run deleted.
        markers: points on the timeline (a live resume, a learning-rate change).
        commands: the commands the run offers (``CommandInfo``).
        requests: commands this view knows were sent: id -> ``{'id', 'name', 'args', 'outcome', 'message'}``
            (``outcome`` is ``'queued'`` until the run reports it).
        outcomes: the recent finished ones, oldest first.
        last_command: the request that changed last.
        rank_health: each rank's ``RankHealth`` in a distributed run (empty otherwise).
        guard_alert: the health guard's active alert (``kind``, ``message``, ``step``, ``choices``,
            ``fallback``, ``deadline``), or None; views show it as a banner and ring the bell once
            (``take_guard_bell``).
        needs_snapshot: set when events were missed or the hub was reloaded; the feeder takes a snapshot.
        snapshots: how many snapshots were loaded.
        changed: the parts (``PARTS``) changed since ``take_changes``.
        version: bumped on every change, so a renderer can tell an idle frame.

    Args:
        max_logs: how many log records are kept.
        max_requests: how many sent commands (and outcomes) are remembered.
    """

    def __init__(self, max_logs: int = 2000, max_requests: int = 200) -> None:
        self.seq = 0
        self.name = ""
        self.status: Status | str = Status.CONNECTING
        self.status_detail = ""
        self.info: dict[str, Any] = {}
        self.scalars: dict[str, Series] = {}
        self.hooks: tuple = ()
        self.hook_timings: dict[tuple[str, str], list[float]] = {}
        self.stage = ""
        self.logs: deque[tuple[float, str, str]] = deque(maxlen=max_logs)
        self.checkpoints: list[dict[str, Any]] = []
        self.removed_checkpoints: list[tuple[str, str]] = []
        self.markers: list[dict[str, Any]] = []
        self.commands: tuple[CommandInfo, ...] = ()
        self.requests: dict[str, dict[str, Any]] = {}
        self.outcomes: deque[dict[str, Any]] = deque(maxlen=max_requests)
        self.last_command: dict[str, Any] | None = None
        self.guard_alert: dict[str, Any] | None = None
        self._guard_bell = False
        self.needs_snapshot = False
        self.snapshots = 0
        self.changed: set[str] = set(PARTS)
        self.changed_keys: set[str] = set()
        self.version = 0
        self._max_requests = max_requests
        self._new_logs: list[tuple[float, str, str]] = []
        self._new_outcomes: list[dict[str, Any]] = []
        self._last_log_time = -math.inf
        self._ranks_read: tuple[Any, tuple[RankHealth, ...]] = (None, ())

    # --- reading ----------------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        """True once the run takes no more commands."""
        return is_ended(self.status)

    def take_changes(self) -> set[str]:
        """The parts changed since the last call."""
        changed, self.changed = self.changed, set()
        return changed

    def take_changed_keys(self) -> set[str]:
        """The scalars that got a value (or were replaced by a snapshot) since the last call, so a
        renderer redraws only the plots that show one of them."""
        keys, self.changed_keys = self.changed_keys, set()
        return keys

    def take_logs(self) -> list[tuple[float, str, str]]:
        """The log records received since the last call, oldest first."""
        logs, self._new_logs = self._new_logs, []
        return logs

    def take_outcomes(self) -> list[dict[str, Any]]:
        """The commands finished since the last call (applied, rejected or failed), oldest first."""
        outcomes, self._new_outcomes = self._new_outcomes, []
        return outcomes

    def pending_requests(self) -> list[str]:
        """The ids of commands accepted but not yet reported applied, rejected or failed."""
        # A copy first: the thread that sends a command notes it here too.
        return [key for key, entry in list(self.requests.items()) if entry["outcome"] == "queued"]

    def take_guard_bell(self) -> bool:
        """True once per new guard alert: the view rings the terminal bell (or its equivalent)."""
        ring, self._guard_bell = self._guard_bell, False
        return ring

    @property
    def rank_health(self) -> tuple[RankHealth, ...]:
        """Each rank's health in a distributed run (its ``rank_health`` info), by rank; empty otherwise.

        Read once per published list (the run sends a new one with each all-reduce)."""
        value = self.info.get("rank_health")
        if value is not self._ranks_read[0]:
            self._ranks_read = (value, rank_health(value))
        return self._ranks_read[1]

    def command(self, name: str) -> CommandInfo | None:
        """The run's command called ``name`` (None when it offers none)."""
        return next((c for c in self.commands if c.name == name), None)

    def scalar(self, key: str) -> float:
        series = self.scalars.get(key)
        return series.last if series else math.nan

    def best(self, key: str) -> float:
        """The best finite value of scalar ``key`` so far (the lowest of a loss, else the highest), or nan."""
        series = self.scalars.get(key)
        if not series or not series.values:
            return math.nan
        values = np.asarray(series.values, dtype=np.float64)  # a plot's title asks every draw: 8192 points at most
        values = values[np.isfinite(values)]
        if not values.size:
            return math.nan
        return float(values.min() if lower_is_better(key) else values.max())

    @property
    def metric_key(self) -> str | None:
        """The validation metric views show first: the first ``val/`` scalar by name that is not a time."""
        return next((k for k in sorted(self.scalars) if k.startswith("val/") and not k.endswith("time")), None)

    def window_mean(self, key: str, window: int = 20) -> float:
        series = self.scalars.get(key)
        if not series or not series.values:
            return math.nan
        tail = [v for v in series.values[-window:] if math.isfinite(v)]
        return sum(tail) / len(tail) if tail else math.nan

    def hook_rows(self) -> list[dict[str, Any]]:
        """One row per (stage, hook) in execution order, with calls, mean time per call and, for the
        stages that run once an iteration, their share of an iteration's time."""
        iteration = _mean_per_step(self.scalars.get("train/time"))
        rows = []
        for stage, entries in self.hooks:
            for priority_name, priority, hook in entries:
                count, total = self.hook_timings.get((stage, hook), (0, 0.0))
                rows.append({
                    "stage": stage,
                    "hook": hook,
                    "priority": priority_name,
                    "priority_value": priority,
                    "calls": int(count),
                    "mean_ms": 1000 * total / count if count else math.nan,
                    "share": 100 * total / count / iteration if count and iteration and "train_iter" in stage
                    else math.nan,
                    "running": stage == self.stage,
                })
        return rows

    def checkpoint_rows(self) -> list[dict[str, Any]]:
        """Checkpoints still on disk, newest first (a path saved twice is one row), with the metric at
        their iteration and best/latest flags."""
        best = {v for k, v in self.info.items() if k.startswith("best_ckpt") and v}
        latest = self.info.get("last_ckpt")
        metric_key = self.metric_key
        metric = self.scalars.get(metric_key) if metric_key else None
        rows, seen = [], set()
        for entry in reversed(self.checkpoints):
            path = entry["path"]
            if path in seen:
                continue
            seen.add(path)
            value = math.nan
            if metric is not None:
                at = [v for s, v in zip(metric.steps, metric.values, strict=True) if s <= entry["iter"]]
                value = at[-1] if at else math.nan
            rows.append({**entry, "name": path.rsplit("/", 1)[-1], "metric": value,
                         "metric_key": metric_key or "", "best": path in best, "latest": path == latest})
        return rows

    # --- feeding ----------------------------------------------------------------------------
    def receive(self, messages: Iterable[dict[str, Any]]) -> None:
        """Take what ``RunClient.poll_events`` returned: encoded events, and the snapshots the client
        took after a gap (``{"t": "Snapshot", "snapshot": ...}``).

        Each event is decoded once, here; one of a kind this version does not know is skipped
        (a newer run may send more kinds).
        """
        for message in messages:
            if message.get("t") == "Snapshot":
                self.load_snapshot(message["snapshot"])
                continue
            try:
                event = decode_event(message)
            except UnknownEvent:
                continue
            self.apply(event)

    def load_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Replace everything with a hub snapshot (log records already seen are not handed out again)."""
        self.seq = int(snapshot.get("seq", 0))
        self.name = snapshot.get("name", "")
        self.status = _status(snapshot.get("status", ""))
        self.status_detail = snapshot.get("status_detail", "")
        self.info = dict(snapshot.get("info", {}))
        self.scalars = {key: Series.from_snapshot(data) for key, data in snapshot.get("scalars", {}).items()}
        self.changed_keys.update(self.scalars)
        self.hooks = _tuples(snapshot.get("hooks", ()))
        self.hook_timings = {}
        for key, (calls, total) in snapshot.get("hook_timings", {}).items():
            stage, _, hook = key.partition("/")
            self.hook_timings[(stage, hook)] = [int(calls), float(total)]
        self.stage = snapshot.get("stage", "")
        self.checkpoints = [dict(c) for c in snapshot.get("checkpoints", [])]
        self.removed_checkpoints = []
        self.markers = [dict(m) for m in snapshot.get("markers", [])]
        self.commands = _commands(self.info.get("commands"))
        alert = self.info.get("guard_alert")
        self._set_guard_alert(dict(alert) if isinstance(alert, dict) else None)
        records = [tuple(record) for record in snapshot.get("logs", [])]
        self.logs.clear()
        self.logs.extend(records)
        # A snapshot repeats the recent log: hand out only what is newer than what was seen.
        self._new_logs += [record for record in records if record[0] > self._last_log_time]
        self._last_log_time = max([self._last_log_time, *(record[0] for record in records)])
        self.needs_snapshot = False
        self.snapshots += 1
        self._touch(*PARTS)

    def apply(self, event: Event) -> None:
        """Apply one decoded event; one the state holds already (from a snapshot) is skipped."""
        if event.seq:  # 0: made up by the view (an outcome it asked for), never part of the stream
            if event.seq <= self.seq:
                # A snapshot carries no command outcomes: one finished while the snapshot was taken
                # (a live resume reloads the hub, and views take a new one) still counts, once.
                if isinstance(event, CommandFinished) and self.requests.get(event.id, {}).get("outcome",
                                                                                             "queued") == "queued":
                    self._command_finished(event)
                return
            if self.seq and event.seq > self.seq + 1:
                self.needs_snapshot = True  # events were missed: only a snapshot has them
            self.seq = event.seq
        handler = _APPLY.get(type(event))
        if handler is not None:
            handler(self, event)

    def set_status(self, status: str, detail: str = "") -> None:
        """Set the status as the view sees it (``Status.DIED`` when the run's process is gone)."""
        self.status, self.status_detail = _status(status), detail
        self._touch("status")

    def note_request(self, command_id: str, name: str, args: Iterable[str]) -> None:
        """A command was queued (its outcome follows); never undoes an outcome already known."""
        if command_id not in self.requests:
            self._request(command_id, name, args, "queued", "")

    def record_outcome(self, command_id: str, name: str, outcome: str, message: str) -> None:
        """A command was applied, rejected or failed (from its ``CommandFinished`` event, or asked for)."""
        known = self.requests.get(command_id, {})
        entry = self._request(command_id, name, known.get("args", ()), outcome, message)
        self.outcomes.append(entry)
        self._new_outcomes.append(entry)

    # --- one method per event class -----------------------------------------------------------
    def _scalar(self, event: ScalarUpdated) -> None:
        series = self.scalars.get(event.key)
        if series is None:
            series = self.scalars[event.key] = Series()
        series.append(event.step, event.value)
        self.changed_keys.add(event.key)
        self._touch("scalars")

    def _info(self, event: InfoUpdated) -> None:
        key, value = event.key, event.value
        if key == "resynced":
            # The hub was reloaded from a checkpoint (a live resume): its histories were
            # replaced, which no single event describes. Only a new snapshot shows them.
            self.needs_snapshot = True
            return
        if key == "markers":  # the hub keeps markers apart from the runtime info
            self.markers = [dict(m) for m in value or []]
            self._touch("markers")
            return
        if value is None:
            self.info.pop(key, None)
        else:
            self.info[key] = value
        if key == "commands":
            self.commands = _commands(value)
            self._touch("commands")
        if key == "guard_alert":
            self._set_guard_alert(dict(value) if isinstance(value, dict) else None)
        # The system samples (once a second) concern the system panels only: a paused run's view
        # must not redraw its tables for them.
        self._touch("system" if key == "system" else "info")

    def _stage_entered(self, event: StageEntered) -> None:
        self.stage = event.stage
        self._touch("stage")

    def _stage_timed(self, event: StageTimed) -> None:
        for hook, seconds in event.calls:
            timing = self.hook_timings.setdefault((event.stage, hook), [0, 0.0])
            timing[0] += 1
            timing[1] += seconds
        self._touch("timings")

    def _hooks_changed(self, event: HooksChanged) -> None:
        self.hooks = _tuples(event.table)
        self._touch("hooks")

    def _log(self, event: LogRecorded) -> None:
        record = (event.time, event.level, event.message)
        self.logs.append(record)
        self._new_logs.append(record)
        self._last_log_time = max(self._last_log_time, event.time)
        self._touch("logs")

    def _checkpoint_saved(self, event: CheckpointSaved) -> None:
        self.checkpoints.append({"path": event.path, "epoch": event.epoch, "iter": event.iter, "time": time.time()})
        self._touch("checkpoints")

    def _checkpoint_removed(self, event: CheckpointRemoved) -> None:
        self.checkpoints = [c for c in self.checkpoints if c["path"] != event.path]
        self.removed_checkpoints.append((event.path, event.reason))
        self._touch("checkpoints")

    def _status_changed(self, event: StatusChanged) -> None:
        self.set_status(event.status, event.detail)

    def _command_accepted(self, event: CommandAccepted) -> None:
        self.note_request(event.id, event.name, event.args)

    def _command_finished(self, event: CommandFinished) -> None:
        self.record_outcome(event.id, event.name, event.outcome, event.message)

    def _guard_tripped(self, event: GuardTripped) -> None:
        self._set_guard_alert({"kind": event.kind, "message": event.message, "step": event.step,
                               "choices": list(event.choices), "fallback": event.fallback,
                               "deadline": event.deadline})

    # --- inside -----------------------------------------------------------------------------
    def _request(self, command_id: str, name: str, args: Iterable[str], outcome: str,
                 message: str) -> dict[str, Any]:
        entry = {"id": command_id, "name": name, "args": tuple(args), "outcome": outcome, "message": message}
        self.requests[command_id] = entry
        while len(self.requests) > self._max_requests:
            self.requests.pop(next(iter(self.requests)))
        self.last_command = entry
        self._touch("outcomes")
        return entry

    def _set_guard_alert(self, alert: dict[str, Any] | None) -> None:
        """A new alert rings the bell once; the same alert again (a snapshot) does not; None clears it."""
        known = self.guard_alert
        if alert is not None and (known is None or (known.get("kind"), known.get("step"))
                                  != (alert.get("kind"), alert.get("step"))):
            self._guard_bell = True
        if alert is None:
            self._guard_bell = False
        if alert != known:
            self.guard_alert = alert
            self._touch("status")  # views show the alert with the status (a banner)

    def _touch(self, *parts: str) -> None:
        self.changed.update(parts)
        self.version += 1


#: How each event class changes a ``RunState``: the one dispatch table.
_APPLY: dict[type[Event], Callable[[RunState, Any], None]] = {
    ScalarUpdated: RunState._scalar,
    InfoUpdated: RunState._info,
    StageEntered: RunState._stage_entered,
    StageTimed: RunState._stage_timed,
    HooksChanged: RunState._hooks_changed,
    LogRecorded: RunState._log,
    CheckpointSaved: RunState._checkpoint_saved,
    CheckpointRemoved: RunState._checkpoint_removed,
    StatusChanged: RunState._status_changed,
    CommandAccepted: RunState._command_accepted,
    CommandFinished: RunState._command_finished,
    GuardTripped: RunState._guard_tripped,
}


def _status(value: str) -> Status | str:
    """A ``Status``; a status this version does not know stays the run's own word."""
    try:
        return Status(value)
    except ValueError:
        return value


def _commands(value: Any) -> tuple[CommandInfo, ...]:
    return tuple(CommandInfo.from_dict(entry) for entry in value or ())


def _tuples(value: Any) -> Any:
    """JSON turned the hook table's tuples into lists; turn them back."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


def _mean_per_step(series: Series | None) -> float:
    """The mean of a per-iteration scalar over the iterations its points cover.

    A point folded from several iterations (the hub's buckets, the view's own folds) is weighted by
    the steps since the point before it: a plain mean of the points, or their sum, would count each
    folded point as one iteration.
    """
    if series is None or not series.steps:
        return 0.0
    total = weight = 0.0
    previous = series.steps[0] - 1
    for step, value in zip(series.steps, series.values, strict=True):
        span = step - previous
        previous = step
        if span > 0 and math.isfinite(value):
            total += value * span
            weight += span
    return total / weight if weight else 0.0
