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
    bounds = (np.arange(buckets + 1) * count / buckets).astype(np.int64)  # count > buckets: none is empty
    return _extremes(xs, low, high, bounds[:-1])


def downsample_by_step(steps: Sequence[float], lows: Sequence[float], highs: Sequence[float] | None = None, *,
                       origin: float, width: float, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """``downsample`` into buckets fixed on the step axis: ``[origin + k * width, origin + (k + 1) * width)``.

    Each bucket keeps its lowest and highest point, in step order, as ``downsample`` does; but a
    bucket is a range of steps, not of indexes, so a new point changes the last bucket alone and the
    points kept before stay where they were (a plot of a growing series moves only at its end).
    At most ``max_points`` points are plain points: all of them are kept.

    Args:
        steps: the x values, in order.
        lows: each point's lowest value.
        highs: each point's highest value (``lows`` when None).
        origin: where the first bucket starts.
        width: each bucket's width in steps.
        max_points: up to this many points (half as many folded ones), no bucket is made.
    """
    xs = np.asarray(steps, dtype=np.float64)
    low = np.asarray(lows, dtype=np.float64)
    high = low if highs is None else np.asarray(highs, dtype=np.float64)
    same = highs is None or np.array_equal(low, high, equal_nan=True)
    if (same and len(xs) <= max_points) or 2 * len(xs) <= max_points:
        return downsample(xs, low, None if same else high, max_points)  # every point (a folded one: low, high)
    bucket = np.floor((xs - origin) / width)
    return _extremes(xs, low, high, np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]])))


def _extremes(xs: np.ndarray, low: np.ndarray, high: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each bucket's lowest and highest point, in step order (one point when they are the same value);
    the buckets start at the indexes ``starts`` (none empty). Non-finite values never win a bucket;
    a bucket of nothing else is left out."""
    ends = np.append(starts[1:], len(xs))
    finite_low = np.where(np.isfinite(low), low, np.inf)
    finite_high = np.where(np.isfinite(high), high, -np.inf)
    segment = np.repeat(np.arange(len(starts)), ends - starts)
    lowest = _first_where(finite_low == np.repeat(np.minimum.reduceat(finite_low, starts), ends - starts), segment)
    highest = _first_where(finite_high == np.repeat(np.maximum.reduceat(finite_high, starts), ends - starts), segment)
    keep = np.isfinite(finite_low[lowest])
    lowest, highest = lowest[keep], highest[keep]
    in_order = lowest <= highest
    out_x = np.stack([xs[np.minimum(lowest, highest)], xs[np.maximum(lowest, highest)]], axis=1)
    out_y = np.stack([np.where(in_order, low[lowest], high[highest]), np.where(in_order, high[highest], low[lowest])],
                     axis=1)
    both = np.stack([np.ones(len(lowest), dtype=bool), (lowest != highest) | (low[lowest] != high[highest])], axis=1)
    return out_x[both], out_y[both]


def _first_where(hits: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """The index of the first True of ``hits`` in each segment (every segment has one)."""
    index = np.flatnonzero(hits)
    owner = segment[index]
    return index[np.concatenate([[True], owner[1:] != owner[:-1]])]


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


class RunningSmooth:
    """``smooth(values, weight)`` of a series that grows, carried on from the call before.

    A view smooths the run's list itself (up to 8192 points, folded in halves now and then) at
    every draw: smoothing all of it each time was the dearest part of drawing a long run's loss.
    The moving average's state (its value and how many values it took, for the debiasing) is kept,
    and only the new values go through it; anything else (a fold, another list, another weight)
    starts again.
    """

    __slots__ = ("_memo",)

    def __init__(self) -> None:
        self._memo: tuple = ()  # (values, weight, length, last value, EMA state, smoothed)

    def __call__(self, values: list[float], weight: float) -> list[float]:
        memo = self._memo
        if not (memo and memo[0] is values and memo[1] == weight and 0 < memo[2] <= len(values)
                and _same(values[memo[2] - 1], memo[3])):
            smoothed, state = smooth_on(values, weight)
        else:
            _, _, known, _, state, smoothed = memo
            more, state = smooth_on(values[known:], weight, state)
            smoothed.extend(more)
        self._memo = (values, weight, len(values), values[-1] if values else None, state, smoothed)
        return smoothed


def _same(a: float | None, b: float | None) -> bool:
    """Equal, or both nan."""
    return a == b or (a != a and b != b)


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
