"""Slow twins of kernels/noise.py, written from the definitions with the statistics
module and plain lists (no numba, no shared helpers with the kernels)."""

from __future__ import annotations

import math
import statistics

import numpy as np

NOISE_SCALE = 1.482602218505602 / math.sqrt(2.0)


def _finite_diffs(values) -> list[float]:
    f = [float(v) for v in values if math.isfinite(v)]
    return [b - a for a, b in zip(f, f[1:])]


def mad_noise_ref(values):
    d = _finite_diffs(values)
    if len(d) < 2:
        return math.nan
    med = statistics.median(d)
    return NOISE_SCALE * statistics.median([abs(v - med) for v in d])


def rolling_noise_ref(values, window, center=False):
    """Differences are attached to the later point of each finite pair; the window
    selects differences by that position."""
    n = len(values)
    diff_at = {}
    prev = None
    for i, v in enumerate(values):
        if math.isfinite(v):
            if prev is not None:
                diff_at[i] = float(v) - prev
            prev = float(v)
    out = np.full(n, np.nan)
    for i in range(n):
        if center:
            lo, hi = i - window // 2, i + (window - 1) // 2
        else:
            lo, hi = i - window + 1, i
        d = [diff_at[j] for j in range(lo, hi + 1) if j in diff_at]
        if len(d) >= 2:
            med = statistics.median(d)
            out[i] = NOISE_SCALE * statistics.median([abs(v - med) for v in d])
    return out


def oscillation_index_ref(values):
    d = _finite_diffs(values)
    signs = [1 if v > 0 else -1 for v in d if v != 0]
    pairs = list(zip(signs, signs[1:]))
    frac = sum(a != b for a, b in pairs) / len(pairs) if pairs else math.nan
    if len(d) < 2:
        return frac, math.nan
    mean = math.fsum(d) / len(d)
    c = [v - mean for v in d]
    den = math.fsum(v * v for v in c)
    if den == 0:
        return frac, math.nan
    return frac, math.fsum(a * b for a, b in zip(c, c[1:])) / den


def signal_to_noise_ref(values):
    f = [float(v) for v in values if math.isfinite(v)]
    if len(f) < 3:
        return math.nan
    k = max(1, len(f) // 10)
    change = abs(statistics.median(f[-k:]) - statistics.median(f[:k]))
    noise = mad_noise_ref(values)
    if noise == 0:
        return math.nan if change == 0 else math.inf
    return change / noise
