"""Reduce a metric series to at most ``max_points`` points for plotting.

Each output point stands for a bucket of consecutive input points and carries
its first x, the mean and the min/max of its values: the line shows the trend
and the min/max band keeps spikes visible (a mean alone would hide a loss spike).
NaN and ±inf (MLflow accepts them) are ignored within a bucket and become None
where nothing finite is left, because JSON cannot carry them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def downsample(xs: Sequence[float], ys: Sequence[float], max_points: int) -> list[dict[str, Any]]:
    """``[{"x", "value", "min", "max"}]``; the input unchanged (one point each) when it fits."""
    n = len(ys)
    if len(xs) != n:
        raise ValueError(f"xs and ys differ in length ({len(xs)} != {n})")
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    if n <= max_points:
        out = []
        for x, y in zip(xs, ys):
            v = _finite(float(y))
            out.append({"x": x, "value": v, "min": v, "max": v})
        return out
    return _bucketed(xs, ys, max_points)


def _bucketed(xs: Sequence[float], ys: Sequence[float], m: int) -> list[dict[str, Any]]:
    # numpy (an MLflow dependency) does 100k points in a few ms; imported here to keep
    # it out of the server's import time.
    import numpy as np

    y = np.asarray(ys, dtype=np.float64)
    n = len(y)
    starts = (np.arange(m, dtype=np.int64) * n) // m  # equal-count buckets, all non-empty (n > m)
    finite = np.isfinite(y)
    counts = np.add.reduceat(finite.astype(np.int64), starts)
    sums = np.add.reduceat(np.where(finite, y, 0.0), starts)
    mins = np.minimum.reduceat(np.where(finite, y, np.inf), starts)
    maxs = np.maximum.reduceat(np.where(finite, y, -np.inf), starts)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        means = sums / counts
    empty = counts == 0
    # A bucket of only NaN/inf, or a sum that overflowed, has no finite value to show.
    means = np.where(empty | ~np.isfinite(means), np.nan, means)
    mins = np.where(empty, np.nan, mins)
    maxs = np.where(empty, np.nan, maxs)
    out = []
    for i, mean, lo, hi in zip(starts.tolist(), means.tolist(), mins.tolist(), maxs.tolist()):
        out.append({"x": xs[i], "value": None if mean != mean else mean,
                    "min": None if lo != lo else lo, "max": None if hi != hi else hi})
    return out
