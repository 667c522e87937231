"""Slow twins of kernels/smoothing.py, written from the definitions (closed forms and
explicit windows), not from the kernels' loops. O(n^2) or O(n * window) is fine here.

Policy shared with the kernels: a non-finite point is missing (skipped), except in
debiased_ema_ref, which passes it through as TensorBoard does.
"""

from __future__ import annotations

import math

import numpy as np

MAD_TO_SD = 1.482602218505602


def _finite(vals) -> list[float]:
    return [float(v) for v in vals if math.isfinite(v)]


def ema_ref(values, alpha):
    """Closed form over the finite points seen so far: the first one weighs
    (1-alpha)^m, the j-th later one alpha*(1-alpha)^(m-j)."""
    out = np.full(len(values), np.nan)
    for t in range(len(values)):
        seen = _finite(values[: t + 1])
        if seen:
            m = len(seen) - 1
            out[t] = (1 - alpha) ** m * seen[0] + sum(
                alpha * (1 - alpha) ** (m - j) * seen[j] for j in range(1, m + 1))
    return out


def debiased_ema_ref(values, weight):
    """TensorBoard's smoothing as a weighted mean: after k finite points y_1..y_k,
    sum_j (1-w) w^(k-j) y_j / (1 - w^k) -- equivalently sum_j w^(k-j) y_j / sum_j w^(k-j).
    A series whose values all equal the first is returned as is; non-finite points are
    returned as is."""
    vals = [float(v) for v in values]
    if all(v == vals[0] for v in vals):
        return np.array(vals, dtype=np.float64)
    out = np.empty(len(vals))
    seen: list[float] = []
    for t, v in enumerate(vals):
        if not math.isfinite(v):
            out[t] = v
            continue
        seen.append(v)
        k = len(seen)
        weights = [weight ** (k - 1 - j) for j in range(k)]
        out[t] = sum(w * y for w, y in zip(weights, seen)) / sum(weights)
    return out


def time_weighted_ema_ref(steps, values, half_life_steps):
    """Closed form: with finite points (s_0, y_0), (s_1, y_1), ... up to t and S the
    last of their steps, level = 0.5^((S-s_0)/h) y_0 + sum_{j>=1} (1 - 0.5^(g_j/h))
    0.5^((S-s_j)/h) y_j, g_j = s_j - s_{j-1}: each point's weight is its gain times the
    decay accumulated over the steps since it was seen."""
    h = float(half_life_steps)
    out = np.full(len(values), np.nan)
    for t in range(len(values)):
        pts = [(int(steps[j]), float(values[j])) for j in range(t + 1) if math.isfinite(values[j])]
        if not pts:
            continue
        last = pts[-1][0]
        level = 0.5 ** ((last - pts[0][0]) / h) * pts[0][1]
        for j in range(1, len(pts)):
            gain = 1.0 - 0.5 ** ((pts[j][0] - pts[j - 1][0]) / h)
            level += gain * 0.5 ** ((last - pts[j][0]) / h) * pts[j][1]
        out[t] = level
    return out


def _window(n, i, window, center):
    if center:
        lo, hi = i - window // 2, i + (window - 1) // 2
    else:
        lo, hi = i - window + 1, i
    return max(lo, 0), min(hi, n - 1) + 1


def rolling_mean_ref(values, window, center=False, min_periods=1):
    n = len(values)
    out = np.full(n, np.nan)
    for i in range(n):
        lo, hi = _window(n, i, window, center)
        f = _finite(values[lo:hi])
        if len(f) >= min_periods:
            out[i] = math.fsum(f) / len(f)
    return out


def _median(f):
    s = sorted(f)
    m = len(s)
    return s[m // 2] if m % 2 else (s[m // 2 - 1] + s[m // 2]) / 2


def rolling_median_ref(values, window, center=False, min_periods=1):
    n = len(values)
    out = np.full(n, np.nan)
    for i in range(n):
        lo, hi = _window(n, i, window, center)
        f = _finite(values[lo:hi])
        if f and len(f) >= min_periods:
            out[i] = _median(f)
    return out


def gaussian_smooth_ref(steps, values, sigma_steps):
    n = len(values)
    out = np.full(n, np.nan)
    for i in range(n):
        num = den = 0.0
        for j in range(n):
            d = float(steps[j]) - float(steps[i])
            if abs(d) <= 4 * sigma_steps and math.isfinite(values[j]):
                w = math.exp(-d * d / (2 * sigma_steps ** 2))
                num += w * values[j]
                den += w
        if den > 0:
            out[i] = num / den
    return out


def hampel_filter_ref(values, window, n_sigmas=3.0):
    n = len(values)
    out = np.array(values, dtype=np.float64)
    for i in range(n):
        lo, hi = _window(n, i, window, True)
        f = _finite(values[lo:hi])
        if not f:
            continue
        med = _median(f)
        mad = _median([abs(v - med) for v in f])
        x = values[i]
        if not math.isfinite(x) or abs(x - med) > n_sigmas * MAD_TO_SD * mad:
            out[i] = med
    return out
