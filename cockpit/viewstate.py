"""What a view knows about a run: a snapshot, kept current by the event stream.

``RunState`` is the one data model behind every view (terminal, notebook):
it is fed a hub snapshot and then the channel's events, and renderers read it.
It holds plain Python data only and imports no UI package.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


def downsample(steps: list[float], values: list[float], buckets: int) -> tuple[list[float], list[float]]:
    """At most ``2 * buckets`` points that keep each bucket's minimum and maximum (spikes survive).

    Points come out in step order, so the line still reads left to right.
    """
    n = len(steps)
    if n <= 2 * buckets or buckets <= 0:
        return list(steps), list(values)
    out_x: list[float] = []
    out_y: list[float] = []
    width = n / buckets
    for b in range(buckets):
        start, end = int(b * width), int((b + 1) * width)
        if end <= start:
            continue
        chunk = values[start:end]
        finite = [(v, i) for i, v in enumerate(chunk) if math.isfinite(v)]
        if not finite:
            continue
        low_value, low = min(finite)
        high_value, high = max(finite)
        for index in sorted({low, high}):
            out_x.append(steps[start + index])
            out_y.append(chunk[index])
    return out_x, out_y


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """TensorBoard's exponential moving average, debiased at the start."""
    out, last, count = [], 0.0, 0
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        count += 1
        last = last * weight + (1 - weight) * value
        out.append(last / (1 - weight**count))
    return out


@dataclass
class Series:
    """One scalar's points as the view has them, bounded like the hub's history.

    Past ``limit`` points, the older half is folded into min/max pairs (spikes survive),
    so a frame never has to walk a million points.
    """

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    limit: int = 8192

    def append(self, step: int, value: float) -> None:
        if self.steps and step < self.steps[-1]:
            # The run jumped back (a live resume): the history after that point is gone.
            cut = next(i for i, s in enumerate(self.steps) if s >= step)
            del self.steps[cut:], self.values[cut:]
        self.steps.append(step)
        self.values.append(value)
        if len(self.steps) > self.limit:
            self._fold(len(self.steps) // 2)

    def bound(self) -> Series:
        """Fold until at most ``limit`` points remain (for series loaded whole, from a snapshot)."""
        while len(self.steps) > self.limit:
            self._fold(len(self.steps) // 2)
        return self

    def _fold(self, count: int) -> None:
        """Fold the oldest ``count`` points into ``limit // 8`` step ranges, keeping each range's min and max.

        Ranges are by step, not by index, so folding again and again keeps the whole run's
        span evenly covered (and its first point), at most ``limit // 4`` points for the past.
        """
        steps, values = self.steps[:count], self.values[:count]
        first, last = steps[0], steps[-1]
        width = max(1.0, (last - first + 1) / max(1, self.limit // 8))
        out_steps, out_values = [first], [values[0]]
        bucket, low, high = None, None, None
        for step, value in zip(steps[1:], values[1:], strict=True):
            index = int((step - first) / width)
            if index != bucket:
                for point in sorted({low, high} - {None}):
                    out_steps.append(point[0])
                    out_values.append(point[1])
                bucket, low, high = index, (step, value), (step, value)
            elif value < low[1]:
                low = (step, value)
            elif value > high[1]:
                high = (step, value)
        for point in sorted({low, high} - {None}):
            out_steps.append(point[0])
            out_values.append(point[1])
        self.steps[:count] = out_steps
        self.values[:count] = out_values

    @property
    def last(self) -> float:
        return self.values[-1] if self.values else math.nan


class RunState:
    """A view's model of one run.

    Args:
        max_logs: how many log lines are kept.
    """

    def __init__(self, max_logs: int = 2000) -> None:
        self.seq = 0
        self.name = ""
        self.status = "connecting"
        self.status_detail = ""
        self.info: dict[str, Any] = {}
        self.scalars: dict[str, Series] = {}
        self.hooks: list[tuple[str, list[tuple[str, int, str]]]] = []
        self.hook_stats: dict[tuple[str, str], list[float]] = {}
        self.stage = ""
        self.logs: deque[tuple[float, str, str]] = deque(maxlen=max_logs)
        self.new_logs: list[tuple[float, str, str]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.markers: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.outcomes: list[dict[str, Any]] = []
        self.started = time.time()
        self.version = 0  # bumped on every change, so renderers can skip idle frames

    # --- feeding ------------------------------------------------------------------------------
    def load_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Replace everything with a hub snapshot."""
        self.seq = snapshot["seq"]
        self.name = snapshot.get("name", "")
        self.status = snapshot["status"]
        self.status_detail = snapshot.get("status_detail", "")
        self.info = dict(snapshot.get("info", {}))
        self.scalars = {k: Series(list(v["steps"]), list(v["values"])).bound() for k, v in snapshot["scalars"].items()}
        self.hooks = [(stage, [tuple(entry) for entry in entries]) for stage, entries in snapshot.get("hooks", [])]
        self.hook_stats = {}
        for key, (count, total) in snapshot.get("hook_timings", {}).items():
            stage, _, hook = key.partition("/")
            self.hook_stats[(stage, hook)] = [count, total]
        self.stage = snapshot.get("stage", "")
        self.logs.clear()
        self.logs.extend(tuple(entry) for entry in snapshot.get("logs", []))
        self.new_logs = list(self.logs)
        self.checkpoints = [dict(c) for c in snapshot.get("checkpoints", [])]
        self.markers = [dict(m) for m in snapshot.get("markers", [])]
        self.commands = list(self.info.get("commands", []))
        started = self.info.get("started")
        if isinstance(started, (int, float)):
            self.started = started
        self.version += 1

    def apply(self, event: dict[str, Any]) -> None:
        """Apply one channel event (a dict with ``t`` naming its kind)."""
        kind = event["t"]
        self.seq = max(self.seq, event.get("seq", 0))
        if kind == "ScalarUpdated":
            series = self.scalars.get(event["key"])
            if series is None:
                series = self.scalars[event["key"]] = Series()
            series.append(event["step"], event["value"])
        elif kind == "InfoUpdated":
            key, value = event["key"], event["value"]
            if key == "markers":
                self.markers = list(value or [])
            elif value is None:
                self.info.pop(key, None)
            else:
                self.info[key] = value
                if key == "commands":
                    self.commands = list(value)
        elif kind == "StageEntered":
            self.stage = event["stage"]
        elif kind == "StageTimed":
            for hook, seconds in event["calls"]:
                stats = self.hook_stats.setdefault((event["stage"], hook), [0, 0.0])
                stats[0] += 1
                stats[1] += seconds
        elif kind == "HooksChanged":
            self.hooks = [(stage, [tuple(e) for e in entries]) for stage, entries in event["table"]]
        elif kind == "LogRecorded":
            entry = (event["time"], event["level"], event["message"])
            self.logs.append(entry)
            self.new_logs.append(entry)
        elif kind == "CheckpointSaved":
            self.checkpoints.append({"path": event["path"], "epoch": event["epoch"], "iter": event["iter"],
                                     "time": time.time()})
        elif kind == "StatusChanged":
            self.status, self.status_detail = event["status"], event.get("detail", "")
        elif kind == "CommandFinished":
            self.outcomes.append(event)
        elif kind == "Snapshot":
            self.load_snapshot(event["snapshot"])
            return
        self.version += 1

    def take_new_logs(self) -> list[tuple[float, str, str]]:
        logs, self.new_logs = self.new_logs, []
        return logs

    # --- derived values -----------------------------------------------------------------------
    def scalar(self, key: str) -> float:
        series = self.scalars.get(key)
        return series.last if series else math.nan

    def window_mean(self, key: str, window: int = 20) -> float:
        series = self.scalars.get(key)
        if not series or not series.values:
            return math.nan
        tail = [v for v in series.values[-window:] if math.isfinite(v)]
        return sum(tail) / len(tail) if tail else math.nan

    def hook_rows(self) -> list[dict[str, Any]]:
        """One row per (stage, hook) in execution order, with mean time per call and share of training time."""
        train_time = self.scalars.get("train/time")
        total_train = sum(train_time.values) if train_time else 0.0
        rows = []
        for stage, entries in self.hooks:
            for priority_name, priority, hook in entries:
                count, total = self.hook_stats.get((stage, hook), (0, 0.0))
                rows.append({
                    "stage": stage,
                    "hook": hook,
                    "priority": priority_name,
                    "priority_value": priority,
                    "calls": int(count),
                    "mean_ms": 1000 * total / count if count else math.nan,
                    "share": 100 * total / total_train if total_train and "train_iter" in stage else math.nan,
                    "running": stage == self.stage,
                })
        return rows

    def checkpoint_rows(self) -> list[dict[str, Any]]:
        """Saved checkpoints, newest first, with the metric at their iteration and best/latest flags."""
        best = {v for k, v in self.info.items() if k.startswith("best_ckpt") and v}
        latest = self.info.get("last_ckpt")
        metric_key = next((k for k in self.scalars if k.startswith("val/") and not k.endswith("time")), None)
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

    @property
    def ended(self) -> bool:
        return self.status in ("finished", "failed", "stopped", "died")
