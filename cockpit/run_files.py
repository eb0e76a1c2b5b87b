"""A run as its folder tells it, for views that show many runs at once (the dashboard, ``compare``).

A run folder holds ``vis_data/scalars.json`` (MMEngine's JSON lines, written as the run goes)
and, for a fork, ``lineage.json``. ``read_scalars`` turns the lines into series named as the hub
names them (``train/loss``, ``val/accuracy/top1``) against the training iteration, so a finished
run, a live one and a fork overlay on one axis. Validation lines carry the epoch as their step
(MMEngine's ``log_metric_by_epoch``): they are placed at the last training iteration logged before
them. ``best_metric`` is the best value of the first validation metric. Nothing here needs torch.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.rundir import read_lineage

SCALARS_FILE = Path("vis_data") / "scalars.json"
#: Keys of a line that say where it is, not what was measured.
_POSITION_KEYS = frozenset({"epoch", "iter", "step"})
#: Timing keys of a validation line (the metrics are the rest).
_TIMING_KEYS = frozenset({"data_time", "time"})
#: Metric names whose lower values are better.
_LOWER_IS_BETTER = ("loss", "error", "err", "mse", "mae", "rmse", "perplexity", "ppl")


@dataclass
class RunScalars:
    """A run's scalars from its file: ``{key: (steps, values)}``, steps being training iterations."""

    folder: Path
    series: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    size: int = 0  # bytes read, so a refresh reads only what was appended
    last_iter: int = 0  # the newest training iteration read (where a validation line goes)


def read_scalars(folder: str | os.PathLike, previous: RunScalars | None = None) -> RunScalars:
    """The scalars in ``folder/vis_data/scalars.json``; with ``previous``, only the lines added since.

    A line that is not JSON (one being written) is left for the next read.
    """
    folder = Path(folder)
    scalars = previous if previous is not None and previous.folder == folder else RunScalars(folder)
    try:
        with open(folder / SCALARS_FILE, "rb") as file:
            file.seek(scalars.size)
            data = file.read()
    except OSError:
        return scalars
    complete = data[: data.rfind(b"\n") + 1]
    for raw in complete.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(line, dict):
            continue
        training = "iter" in line
        if training and isinstance(line["iter"], int):
            scalars.last_iter = line["iter"]
        mode = "train" if training else "val"
        for key, value in line.items():
            if key in _POSITION_KEYS or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            steps, values = scalars.series.setdefault(f"{mode}/{key}", ([], []))
            steps.append(scalars.last_iter)
            values.append(float(value))
    scalars.size += len(complete)
    return scalars


def lower_is_better(key: str) -> bool:
    """Whether a metric improves downwards (a loss, an error), by its name."""
    name = key.rsplit("/", 1)[-1].lower()
    return any(word in name for word in _LOWER_IS_BETTER)


def best_metric(scalars: RunScalars) -> tuple[str, float] | None:
    """``(key, best value)`` of the run's first validation metric, or None before any validation."""
    for key, (_, values) in scalars.series.items():
        if not key.startswith("val/") or key.removeprefix("val/") in _TIMING_KEYS:
            continue
        finite = [value for value in values if math.isfinite(value)]
        if finite:
            return key, (min(finite) if lower_is_better(key) else max(finite))
    return None


def run_label(folder: str | os.PathLike, lineage: dict[str, Any] | None = None) -> str:
    """A run's name in a legend: ``<work dir>/<run folder>``, and for a fork ``(fork of <parent> @ <iter>)``."""
    folder = Path(folder)
    label = f"{folder.parent.name}/{folder.name}"
    lineage = read_lineage(folder) if lineage is None else lineage
    if lineage:
        parent = Path(lineage["parent"]) if lineage.get("parent") else Path(lineage["checkpoint"])
        label += f" (fork of {parent.parent.name}/{parent.name} @ {lineage.get('forked_at', '?')})"
    return label


__all__ = ["SCALARS_FILE", "RunScalars", "best_metric", "lower_is_better", "read_lineage", "read_scalars", "run_label"]
