"""``RunState``: the notebook's copy of a run, built from a snapshot and kept by the event stream.

The widget never reads the run's objects: a thread feeds this copy with what a
``RunClient`` receives (a snapshot, then events as dicts with ``"t"`` naming
the event class), and the widget draws from it. ``changed`` names the parts
touched since the last drawing, so a refresh redraws only those.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

ENDED = ("finished", "failed", "stopped", "died")
"""Statuses after which a run takes no more commands."""

PARTS = ("status", "info", "scalars", "hooks", "timings", "stage", "logs", "checkpoints", "markers", "commands")


class Series:
    """One scalar's points, bounded: past ``limit`` points the older half is folded pairwise.

    Folding keeps each pair's mean, minimum and maximum, so spikes survive in ``mins``/``maxs``.

    Args:
        limit: how many points are kept before folding.
    """

    __slots__ = ("steps", "values", "mins", "maxs", "limit")

    def __init__(self, limit: int = 20_000) -> None:
        self.steps: list[int] = []
        self.values: list[float] = []
        self.mins: list[float] = []
        self.maxs: list[float] = []
        self.limit = limit

    @classmethod
    def from_snapshot(cls, data: dict[str, Any], limit: int = 20_000) -> Series:
        """A series from a hub snapshot's ``{"steps", "values", "mins", "maxs"}``."""
        series = cls(limit)
        series.steps = [int(s) for s in data["steps"]]
        series.values = [_number(v) for v in data["values"]]
        series.mins = [_number(v) for v in data.get("mins", data["values"])]
        series.maxs = [_number(v) for v in data.get("maxs", data["values"])]
        while len(series.steps) > limit:
            series._fold()
        return series

    def append(self, step: int, value: float) -> None:
        value = _number(value)
        self.steps.append(int(step))
        self.values.append(value)
        self.mins.append(value)
        self.maxs.append(value)
        if len(self.steps) > self.limit:
            self._fold()

    def _fold(self) -> None:
        half = (len(self.steps) // 2) & ~1
        steps, values, mins, maxs = [], [], [], []
        for i in range(0, half, 2):
            steps.append(self.steps[i + 1])
            values.append((self.values[i] + self.values[i + 1]) / 2)
            mins.append(min(self.mins[i], self.mins[i + 1]))
            maxs.append(max(self.maxs[i], self.maxs[i + 1]))
        self.steps[:half] = steps
        self.values[:half] = values
        self.mins[:half] = mins
        self.maxs[:half] = maxs

    @property
    def last(self) -> float:
        """The newest value (NaN when empty)."""
        return self.values[-1] if self.values else math.nan

    def __len__(self) -> int:
        return len(self.steps)


class RunState:
    """What a view knows about a run: status, runtime info, scalars, hooks, checkpoints, logs, commands."""

    def __init__(self) -> None:
        self.seq = 0
        self.name = ""
        self.status = "connecting"
        self.status_detail = ""
        self.info: dict[str, Any] = {}
        self.scalars: dict[str, Series] = {}
        self.hooks: tuple = ()
        self.hook_timings: dict[tuple[str, str], list[float]] = {}
        self.stage = ""
        self.checkpoints: list[dict[str, Any]] = []
        self.markers: list[dict[str, Any]] = []
        self.commands: dict[str, dict[str, Any]] = {}
        self.last_command: dict[str, Any] | None = None
        self.logs: list[tuple[float, str, str]] = []
        self.needs_snapshot = False
        self.snapshots = 0
        self.changed: set[str] = set(PARTS)
        self._last_log_time = -math.inf

    # --- reading ----------------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def take_changes(self) -> set[str]:
        """The parts changed since the last call."""
        changed, self.changed = self.changed, set()
        return changed

    def take_logs(self) -> list[tuple[float, str, str]]:
        """The log records received since the last call, oldest first."""
        logs, self.logs = self.logs, []
        return logs

    def pending_commands(self) -> list[str]:
        """The ids of commands accepted but not yet reported applied, rejected or failed."""
        # A copy first: the thread that sends a command notes it here too.
        return [key for key, entry in list(self.commands.items()) if entry["outcome"] == "queued"]

    def mean_hook_time(self, stage: str, hook: str) -> float | None:
        """Mean seconds per call of ``hook`` at ``stage`` (None before its first call)."""
        calls, total = self.hook_timings.get((stage, hook), (0, 0.0))
        return total / calls if calls else None

    # --- writing ----------------------------------------------------------------------------
    def load_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Replace everything with a hub snapshot (log records already seen are not repeated)."""
        self.seq = int(snapshot.get("seq", 0))
        self.name = snapshot.get("name", "")
        self.status = snapshot.get("status", "")
        self.status_detail = snapshot.get("status_detail", "")
        self.info = dict(snapshot.get("info", {}))
        self.scalars = {key: Series.from_snapshot(data) for key, data in snapshot.get("scalars", {}).items()}
        self.hooks = _tuples(snapshot.get("hooks", ()))
        self.hook_timings = {}
        for key, (calls, total) in snapshot.get("hook_timings", {}).items():
            stage, _, hook = key.partition("/")
            self.hook_timings[(stage, hook)] = [int(calls), float(total)]
        self.stage = snapshot.get("stage", "")
        self.checkpoints = [dict(c) for c in snapshot.get("checkpoints", [])]
        self.markers = [dict(m) for m in snapshot.get("markers", [])]
        # A snapshot repeats the recent log; keep only what is newer than what was shown.
        for when, level, message in snapshot.get("logs", []):
            if when > self._last_log_time:
                self.logs.append((when, level, message))
                self.changed.add("logs")
        self._last_log_time = max([self._last_log_time, *(record[0] for record in snapshot.get("logs", []))])
        self.needs_snapshot = False
        self.snapshots += 1
        self.changed.update(PARTS)

    def apply_all(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: dict[str, Any]) -> None:
        """Apply one event from ``RunClient.poll_events``."""
        kind = event["t"]
        self.seq = max(self.seq, int(event.get("seq", 0)))
        if kind == "ScalarUpdated":
            series = self.scalars.get(event["key"])
            if series is None:
                series = self.scalars[event["key"]] = Series()
            series.append(event["step"], event["value"])
            self.changed.add("scalars")
        elif kind == "InfoUpdated":
            self._info(event["key"], event["value"])
        elif kind == "StageEntered":
            self.stage = event["stage"]
            self.changed.add("stage")
        elif kind == "StageTimed":  # one run of a stage: each hook it called, with its seconds
            for hook, seconds in event["calls"]:
                timing = self.hook_timings.setdefault((event["stage"], hook), [0, 0.0])
                timing[0] += 1
                timing[1] += seconds
            self.changed.add("timings")
        elif kind == "HooksChanged":
            self.hooks = _tuples(event["table"])
            self.changed.add("hooks")
        elif kind == "LogRecorded":
            self.logs.append((event["time"], event["level"], event["message"]))
            self._last_log_time = max(self._last_log_time, event["time"])
            self.changed.add("logs")
        elif kind == "CheckpointSaved":
            self.checkpoints.append({"path": event["path"], "epoch": event["epoch"], "iter": event["iter"],
                                     "time": time.time()})
            self.changed.add("checkpoints")
        elif kind == "StatusChanged":
            self.set_status(event["status"], event.get("detail", ""))
        elif kind == "CommandAccepted":
            self.note_command(event["id"], event["name"], event["args"])
        elif kind == "CommandFinished":
            known = self.commands.get(event["id"], {})
            self._command(event["id"], event["name"], known.get("args", ()), event["outcome"], event["message"])
        elif kind == "Snapshot":
            self.load_snapshot(event["snapshot"])

    def set_status(self, status: str, detail: str = "") -> None:
        self.status, self.status_detail = status, detail
        self.changed.add("status")

    def _info(self, key: str, value: Any) -> None:
        if key == "resynced":
            # The hub was reloaded from a checkpoint (a live resume): its histories were
            # replaced, which no single event describes. Only a new snapshot shows them.
            self.needs_snapshot = True
            return
        if key == "markers":  # the hub keeps markers apart from the runtime info
            self.markers = [dict(m) for m in value or []]
            self.changed.add("markers")
            return
        if value is None:
            self.info.pop(key, None)
        else:
            self.info[key] = value
        self.changed.add("info")

    def note_command(self, command_id: str, name: str, args: Iterable[str]) -> None:
        """A command was queued (its outcome follows); never undoes an outcome already known."""
        if command_id not in self.commands:
            self._command(command_id, name, args, "queued", "")

    def _command(self, command_id: str, name: str, args: Iterable[str], outcome: str, message: str) -> None:
        entry = {"id": command_id, "name": name, "args": tuple(args), "outcome": outcome, "message": message}
        self.commands[command_id] = entry
        while len(self.commands) > 200:
            self.commands.pop(next(iter(self.commands)))
        self.last_command = entry
        self.changed.add("commands")


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _tuples(value: Any) -> Any:
    """JSON turned the hook table's tuples into lists; turn them back."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value
