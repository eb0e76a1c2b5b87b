"""A scalar's points as a view keeps them, and the helpers that draw them.

``Series`` holds one scalar's steps and values (with each point's min and max once old
points are folded), bounded like the hub's history. ``downsample`` picks the points a plot
draws, keeping each bucket's lowest and highest value so spikes survive; ``smooth`` is
TensorBoard's debiased exponential moving average. Every view uses these, and no other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


# --- plotting helpers ---------------------------------------------------------------------------
def downsample(steps: Sequence[float], lows: Sequence[float], highs: Sequence[float] | None = None,
               max_points: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points that keep each bucket's lowest and highest value (spikes survive).

    Points come out in step order, so the line still reads left to right. A point folded from
    several (a long run's past) carries its own low and high: give them as ``lows``/``highs``;
    for plain values pass them once, as ``lows``.

    Args:
        steps: the x values, in order.
        lows: each point's lowest value.
        highs: each point's highest value (``lows`` when None).
        max_points: the most points to return (two per bucket).
    """
    xs = np.asarray(steps)
    low = np.asarray(lows, dtype=np.float64)
    high = low if highs is None else np.asarray(highs, dtype=np.float64)
    count = len(xs)
    same = highs is None or np.array_equal(low, high, equal_nan=True)
    if count == 0 or (same and count <= max_points) or 2 * count <= max_points:
        if same:
            return xs, low
        # Each folded point as its low, then its high where that differs.
        keep = np.stack([np.ones(count, dtype=bool), high != low], axis=1).ravel()
        return np.repeat(xs, 2)[keep], np.stack([low, high], axis=1).ravel()[keep]
    buckets = max(1, max_points // 2)
    bounds = (np.arange(buckets + 1) * count / buckets).astype(np.int64)
    # Non-finite values never win a bucket; a bucket of nothing else is left out.
    finite_low = np.where(np.isfinite(low), low, np.inf)
    finite_high = np.where(np.isfinite(high), high, -np.inf)
    out_x: list[Any] = []
    out_y: list[float] = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        if end <= start:
            continue
        lowest = start + int(np.argmin(finite_low[start:end]))
        highest = start + int(np.argmax(finite_high[start:end]))
        if not math.isfinite(finite_low[lowest]):
            continue
        points = [(lowest, low[lowest]), (highest, high[highest])]
        if lowest > highest:
            points.reverse()
        elif lowest == highest and low[lowest] == high[highest]:
            points.pop()
        for index, value in points:
            out_x.append(xs[index])
            out_y.append(value)
    return np.asarray(out_x), np.asarray(out_y)


def smooth(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """TensorBoard's exponential moving average, debiased at the start."""
    return smooth_on(values, weight)[0]


def smooth_on(values: Sequence[float], weight: float = 0.9,
              state: tuple[float, int] = (0.0, 0)) -> tuple[list[float], tuple[float, int]]:
    """``smooth`` of ``values`` carried on from ``state`` (the average and how many finite values it
    took, as an earlier call returned it): the smoothed values, and the state after them."""
    out: list[float] = []
    last, count = state
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        count += 1
        last = last * weight + (1 - weight) * value
        out.append(last / (1 - weight**count))
    return out, (last, count)


# --- one scalar ---------------------------------------------------------------------------------
class Series:
    """One scalar's points as the view has them, bounded like the hub's history.

    Each point has a value (the mean of what it covers), a minimum and a maximum: equal for
    a single iteration, apart for a point folded from several. Past ``limit`` points, the
    older half is folded into step ranges, so a frame never has to walk a million points and
    spikes survive in ``mins``/``maxs``.

    Args:
        limit: how many points are kept before folding.
    """

    __slots__ = ("steps", "values", "mins", "maxs", "limit")

    def __init__(self, limit: int = 8192) -> None:
        self.steps: list[int] = []
        self.values: list[float] = []
        self.mins: list[float] = []
        self.maxs: list[float] = []
        self.limit = limit

    @classmethod
    def from_snapshot(cls, data: dict[str, Any], limit: int = 8192) -> Series:
        """A series from a hub snapshot's ``{"steps", "values", "mins", "maxs"}`` (the last two optional)."""
        series = cls(limit)
        series.steps = [int(s) for s in data["steps"]]
        series.values = [_number(v) for v in data["values"]]
        series.mins = [_number(v) for v in data.get("mins", data["values"])]
        series.maxs = [_number(v) for v in data.get("maxs", data["values"])]
        while len(series.steps) > limit:
            series._fold(len(series.steps) // 2)
        return series

    def append(self, step: int, value: float) -> None:
        value = _number(value)
        if self.steps and step < self.steps[-1]:
            # The run jumped back (a live resume): its history after that point is gone.
            cut = next(i for i, s in enumerate(self.steps) if s >= step)
            del self.steps[cut:], self.values[cut:], self.mins[cut:], self.maxs[cut:]
        self.steps.append(int(step))
        self.values.append(value)
        self.mins.append(value)
        self.maxs.append(value)
        if len(self.steps) > self.limit:
            self._fold(len(self.steps) // 2)

    def _fold(self, count: int) -> None:
        """Fold the oldest ``count`` points into ``limit // 8`` step ranges (mean, min and max each).

        Ranges are by step, not by index, so folding again and again keeps the whole run's span
        evenly covered. The first point stays as it is: the plot still starts where the run did.
        A range's point sits at its last step, as in the hub's history.
        """
        first = self.steps[0]
        width = max(1.0, (self.steps[count - 1] - first + 1) / max(1, self.limit // 8))
        steps, values, mins, maxs = [first], [self.values[0]], [self.mins[0]], [self.maxs[0]]
        bucket: int | None = None
        total, size = 0.0, 0
        for i in range(1, count):
            index = int((self.steps[i] - first) / width)
            if index != bucket:
                if bucket is not None:
                    values.append(total / size)
                bucket, total, size = index, 0.0, 0
                steps.append(self.steps[i])
                mins.append(self.mins[i])
                maxs.append(self.maxs[i])
            steps[-1] = self.steps[i]
            total += self.values[i]
            size += 1
            mins[-1] = min(mins[-1], self.mins[i])
            maxs[-1] = max(maxs[-1], self.maxs[i])
        if bucket is not None:
            values.append(total / size)
        self.steps[:count] = steps
        self.values[:count] = values
        self.mins[:count] = mins
        self.maxs[:count] = maxs

    @property
    def last(self) -> float:
        """The newest value (NaN when empty)."""
        return self.values[-1] if self.values else math.nan

    def __len__(self) -> int:
        return len(self.steps)


def _number(value: Any) -> float:
    """A float from a JSON value (None, as JSON writes NaN, is NaN)."""
    return math.nan if value is None else float(value)
