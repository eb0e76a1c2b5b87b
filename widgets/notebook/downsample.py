"""Downsampling for plots: a long run must stay drawable, and its spikes must stay visible.

``envelope`` keeps, per bucket, the lowest and the highest point in the order
they happened, so a single bad iteration among a million still shows up as a
spike. ``bucket_means`` is for lines that are smooth already.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def envelope(steps: Sequence[int], mins: Sequence[float], maxs: Sequence[float],
             max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points that keep each bucket's minimum and maximum, in step order.

    Args:
        steps: the x values, in order.
        mins: each point's lowest value (a folded history point covers several values).
        maxs: each point's highest value (equal to ``mins`` for a plain point).
        max_points: the most points to return (two per bucket).
    """
    xs = np.asarray(steps, dtype=np.int64)
    low = np.asarray(mins, dtype=np.float64)
    high = np.asarray(maxs, dtype=np.float64)
    count = len(xs)
    if count == 0 or (count <= max_points and np.array_equal(low, high, equal_nan=True)):
        return xs, high
    size = math.ceil(count / max(1, max_points // 2))
    buckets = math.ceil(count / size)
    pad = buckets * size - count
    starts = np.arange(buckets) * size
    lowest = np.concatenate([low, np.full(pad, np.inf)]).reshape(buckets, size).argmin(axis=1) + starts
    highest = np.concatenate([high, np.full(pad, -np.inf)]).reshape(buckets, size).argmax(axis=1) + starts
    # Each bucket gives its minimum and its maximum, whichever happened first going first.
    first_is_low = lowest <= highest
    first = np.where(first_is_low, lowest, highest)
    second = np.where(first_is_low, highest, lowest)
    order = np.stack([first, second], axis=1).ravel()
    is_low = np.stack([first_is_low, ~first_is_low], axis=1).ravel()
    return xs[order], np.where(is_low, low[order], high[order])


def bucket_means(steps: Sequence[int], values: Sequence[float], max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points: the mean of each bucket at its last step."""
    xs = np.asarray(steps, dtype=np.int64)
    ys = np.asarray(values, dtype=np.float64)
    count = len(xs)
    if count <= max_points:
        return xs, ys
    size = math.ceil(count / max_points)
    starts = np.arange(0, count, size)
    ends = np.minimum(starts + size, count)
    return xs[ends - 1], np.add.reduceat(ys, starts) / (ends - starts)
