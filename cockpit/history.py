"""Scalar history with windowed statistics and bounded memory.

A run of millions of iterations must stay drawable as a whole, so a history
keeps the most recent values at full resolution and folds older ones into
buckets that hold mean, min and max (spikes survive). When the buckets fill up,
neighbours merge pairwise, halving the resolution of the far past. Memory is
``recent_size + bucket_limit`` entries whatever the run length.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any


class ScalarHistory:
    """The values of one scalar, with the statistics views and loggers ask for.

    Args:
        window_size: how many recent values ``mean()`` averages by default.
        recent_size: how many recent values are kept at full resolution.
        bucket_limit: how many folded buckets are kept for the older past.
    """

    __slots__ = (
        "window_size", "recent_size", "bucket_limit", "_recent", "_room", "_buckets", "_bucket_width",
        "_pending", "count", "total", "minimum", "maximum",
    )

    def __init__(self, window_size: int = 10, recent_size: int = 4096, bucket_limit: int = 2048) -> None:
        self.window_size = window_size
        self.recent_size = recent_size
        self.bucket_limit = bucket_limit
        self._recent: deque[tuple[int, float]] = deque()
        self._room = recent_size  # values ``_recent`` takes before each new one folds its oldest
        # Each bucket: [first_step, last_step, sum, count, min, max]
        self._buckets: list[list[float]] = []
        self._bucket_width = 1
        self._pending: list[float] | None = None
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf

    def update(self, value: float, step: int) -> None:
        """Append ``value`` observed at ``step``."""
        # Several times an iteration: attribute arithmetic only, no call but the append.
        recent = self._recent
        recent.append((step, value))
        self.count += 1
        self.total += value
        if value < self.minimum:
            self.minimum = value
        if value > self.maximum:
            self.maximum = value
        if self._room > 0:
            self._room -= 1
        else:
            self._fold(*recent.popleft())

    def _fold(self, step: int, value: float) -> None:
        pending = self._pending
        if pending is None:
            pending = self._pending = [step, step, 0.0, 0, value, value]
        pending[1] = step
        pending[2] += value
        pending[3] += 1
        if value < pending[4]:
            pending[4] = value
        if value > pending[5]:
            pending[5] = value
        if pending[3] >= self._bucket_width:
            self._buckets.append(pending)
            self._pending = None
            if len(self._buckets) > self.bucket_limit:
                self._halve()

    def _halve(self) -> None:
        merged = []
        buckets = self._buckets
        for i in range(0, len(buckets) - 1, 2):
            a, b = buckets[i], buckets[i + 1]
            merged.append([a[0], b[1], a[2] + b[2], a[3] + b[3], min(a[4], b[4]), max(a[5], b[5])])
        if len(buckets) % 2:
            merged.append(buckets[-1])
        self._buckets = merged
        self._bucket_width *= 2

    # --- statistics -------------------------------------------------------
    def current(self) -> float:
        """The latest value (NaN when empty)."""
        return self._recent[-1][1] if self._recent else math.nan

    def mean(self, window_size: int | None = None) -> float:
        """Mean of the last ``window_size`` values (default: the history's window)."""
        n = min(window_size or self.window_size, len(self._recent))
        if n == 0:
            return math.nan
        recent = self._recent
        return sum(recent[-i][1] for i in range(1, n + 1)) / n

    def global_mean(self) -> float:
        """Mean of every value ever seen."""
        return self.total / self.count if self.count else math.nan

    def min(self) -> float:
        return self.minimum if self.count else math.nan

    def max(self) -> float:
        return self.maximum if self.count else math.nan

    def last_step(self) -> int | None:
        return self._recent[-1][0] if self._recent else None

    # --- history ----------------------------------------------------------
    def series(self) -> tuple[list[int], list[float], list[float], list[float]]:
        """The whole run as ``(steps, means, mins, maxs)``: folded past, then full-resolution recent."""
        steps, means, mins, maxs = [], [], [], []
        folded = list(self._buckets)
        if self._pending is not None:
            folded.append(self._pending)
        for first, last, total, count, low, high in folded:
            steps.append(int(last if count > 1 else first))
            means.append(total / count)
            mins.append(low)
            maxs.append(high)
        for step, value in self._recent:
            steps.append(step)
            means.append(value)
            mins.append(value)
            maxs.append(value)
        return steps, means, mins, maxs

    def __len__(self) -> int:
        return len(self._recent) + len(self._buckets) + (self._pending is not None)

    # --- persistence ------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Numbers, a list and two float64 tensors, so it loads with ``weights_only=True``.

        The recent points (``[step, value]`` rows) and the folded buckets (``[first_step,
        last_step, sum, count, min, max]`` rows) are tables: a checkpoint pickles and checksums a
        history as two tensors, not as the tens of thousands of small objects of nested lists
        (``torch.save`` calls back into Python for each one: the loop benchmark's final save of 4
        histories took 34-44 ms that way, 5-7 ms as tables).
        Steps and counts are whole numbers, exact in float64 below 2**53.
        """
        return {
            "window_size": self.window_size,
            "recent_size": self.recent_size,
            "bucket_limit": self.bucket_limit,
            "recent": _table(self._recent, 2),
            "buckets": _table(self._buckets, 6),
            "pending": list(self._pending) if self._pending is not None else None,
            "bucket_width": self._bucket_width,
            "count": self.count,
            "total": self.total,
            "min": self.minimum,
            "max": self.maximum,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ScalarHistory:
        """The history ``state_dict()`` described (or the nested lists that Cockpit saved before).

        Raises:
            KeyError, TypeError, ValueError: ``state`` is malformed.
        """
        if not isinstance(state, dict):
            raise TypeError(f"a scalar history state is a dict, not a {type(state).__name__}")
        sizes = [_whole(state[key], key) for key in ("window_size", "recent_size", "bucket_limit", "bucket_width")]
        history = cls(*sizes[:3])
        history._recent = deque((_step(s), float(v)) for s, v in _rows(state["recent"], 2, "recent"))
        history._room = history.recent_size - len(history._recent)
        history._buckets = [_bucket(b) for b in _rows(state["buckets"], 6, "buckets")]
        history._pending = _bucket(state["pending"]) if state["pending"] is not None else None
        history._bucket_width = sizes[3]
        history.count = _whole(state["count"], "count", minimum=0)
        history.total = float(state["total"])
        history.minimum = float(state["min"])
        history.maximum = float(state["max"])
        return history


def _table(rows: Iterable[Sequence[float]], width: int) -> Any:
    """``rows`` as a ``(len(rows), width)`` float64 tensor, built from one flat buffer."""
    import torch  # the core's views read histories without torch; only saving a run needs it

    flat = array("d", chain.from_iterable(rows))
    if not flat:
        return torch.zeros((0, width), dtype=torch.float64)
    return torch.frombuffer(flat, dtype=torch.float64).reshape(-1, width).clone()


def _rows(table: Any, width: int, name: str) -> list:
    """The rows of a saved table: a ``(n, width)`` float64 tensor, or (older checkpoints) a list of lists."""
    if isinstance(table, list):
        return table
    import torch

    if not isinstance(table, torch.Tensor) or table.dtype != torch.float64 or table.dim() != 2 \
            or table.shape[1] != width:
        shape = f"a {tuple(table.shape)} {table.dtype} tensor" if isinstance(table, torch.Tensor) \
            else f"a {type(table).__name__}"
        raise ValueError(f"{name} must be a (n, {width}) float64 tensor or a list of {width}-number lists, "
                         f"got {shape}")
    return table.tolist()


def _step(value: Any) -> int:
    """A saved step: a whole number (a float from a table, an int from a list)."""
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"a step must be a whole number, got {value!r}")
    return int(value)


def _whole(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def _bucket(values: Any) -> list[float]:
    """``[first_step, last_step, sum, count, min, max]``, checked."""
    if not isinstance(values, (list, tuple)) or len(values) != 6:
        raise ValueError(f"a history bucket has 6 numbers, got {values!r}")
    first, last, total, count, low, high = values
    return [_step(first), _step(last), float(total), _step(count), float(low), float(high)]
