"""Slow twins of kernels/trend.py, written from the definitions, not from the kernels.

- mann_kendall_ref: the O(n^2) double loop over pairs, ties counted with a Counter.
- segment_fit_ref: the OLS normal equations per segment in exact rational arithmetic
  (fractions.Fraction), so it is right even for steps of 1e9 and offset values.
- theil_sen_ref: every pairwise slope in a Python list, statistics.median, Sen's
  order statistics with statistics.NormalDist.
- log_bin_ref / power_law_ref: per-point binning loop; a brute-force dense alpha grid
  with numpy.linalg.lstsq for (l_inf, a), then a bounded scalar minimiser.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from fractions import Fraction

import numpy as np


def mann_kendall_ref(values, continuity=True):
    """(S, var_s, z, p) from the definition; NaN dropped, +/-Inf ordered as extremes."""
    x = [float(v) for v in values if not math.isnan(v)]
    n = len(x)
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            s += (x[j] > x[i]) - (x[j] < x[i])
    groups = [t for t in Counter(x).values() if t > 1]
    var_s = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in groups)) / 18.0
    if n < 2 or var_s <= 0:
        return s, var_s, math.nan, math.nan
    num = s - (1 if s > 0 else -1 if s < 0 else 0) if continuity else s
    z = num / math.sqrt(var_s)
    p = 2.0 * (1.0 - statistics.NormalDist().cdf(abs(z)))
    return s, var_s, z, p


def segment_fit_ref(steps, values, breakpoints):
    """Rows (slope, intercept, slope_se, intercept_se, residual_sd, n, mean) per segment,
    OLS by the normal equations [[n, Sx], [Sx, Sxx]] (a, b) = (Sy, Sxy) in Fractions."""
    rows = []
    start = 0
    for end in breakpoints:
        pts = [(Fraction(int(s)) if isinstance(s, (int, np.integer)) else Fraction(float(s)),
                Fraction(float(v)))
               for s, v in zip(steps[start:end], values[start:end])
               if math.isfinite(float(s)) and math.isfinite(float(v))]
        start = end
        m = len(pts)
        row = [math.nan] * 7
        row[5] = m
        if m == 0:
            rows.append(row)
            continue
        sx = sum(p[0] for p in pts)
        sy = sum(p[1] for p in pts)
        sxx = sum(p[0] * p[0] for p in pts)
        sxy = sum(p[0] * p[1] for p in pts)
        row[6] = float(sy / m)
        det = m * sxx - sx * sx
        if m >= 2 and det != 0:
            slope = (m * sxy - sx * sy) / det
            intercept = (sy * sxx - sx * sxy) / det
            row[0] = float(slope)
            row[1] = float(intercept)
            if m >= 3:
                rss = sum((p[1] - intercept - slope * p[0]) ** 2 for p in pts)
                s2 = rss / (m - 2)
                # (X^T X)^-1 = [[Sxx, -Sx], [-Sx, n]] / det
                row[4] = math.sqrt(s2)
                row[2] = math.sqrt(s2 * m / det)
                row[3] = math.sqrt(s2 * sxx / det)
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(len(rows), 7)


def theil_sen_ref(steps, values, confidence=0.95):
    """(slope, intercept, low_slope, high_slope) over all finite points, no subsampling."""
    pts = [(float(s), float(v)) for s, v in zip(steps, values)
           if math.isfinite(float(s)) and math.isfinite(float(v))]
    n = len(pts)
    slopes = sorted((yj - yi) / (xj - xi) for (xi, yi) in pts for (xj, yj) in pts if xj > xi)
    if not slopes:
        return (math.nan,) * 4
    slope = statistics.median(slopes)
    intercept = statistics.median(p[1] for p in pts) - slope * statistics.median(p[0] for p in pts)

    def tie_term(seq):
        return sum(k * (k - 1) * (2 * k + 5) for k in Counter(seq).values() if k > 1)

    var = (n * (n - 1) * (2 * n + 5) - tie_term(p[0] for p in pts) - tie_term(p[1] for p in pts)) / 18
    alpha = 1 - confidence if confidence > 0.5 else confidence
    z = statistics.NormalDist().inv_cdf(alpha / 2)
    nt = len(slopes)
    if var < 0:  # ties in both steps and values can make Sen's variance negative
        return slope, intercept, math.nan, math.nan
    upper = min(round((nt - z * math.sqrt(var)) / 2), nt - 1)
    lower = max(round((nt + z * math.sqrt(var)) / 2) - 1, 0)
    return slope, intercept, slopes[lower], slopes[upper]


def log_bin_ref(t, y, nbins):
    """Mean step, mean value and count per log-spaced bin of [min t, max t] (non-empty)."""
    lo, hi = math.log(min(t)), math.log(max(t))
    width = (hi - lo) / nbins
    acc = {}
    for ti, yi in zip(t, y):
        b = min(int((math.log(ti) - lo) / width), nbins - 1) if width > 0 else 0
        s = acc.setdefault(b, [0.0, 0.0, 0])
        s[0] += ti
        s[1] += yi
        s[2] += 1
    keys = sorted(acc)
    return (np.array([acc[k][0] / acc[k][2] for k in keys]),
            np.array([acc[k][1] / acc[k][2] for k in keys]),
            np.array([float(acc[k][2]) for k in keys]))


def power_law_ref(t, y, w=None, alpha_bounds=(1e-3, 10.0), grid=4000):
    """(l_inf, a, alpha, wrss) minimising sum w (y - l_inf - a t^-alpha)^2 by brute force:
    for each alpha of a dense log grid solve the linear part with lstsq, then refine the
    best bracket with scipy's bounded scalar minimiser."""
    from scipy.optimize import minimize_scalar

    t = np.asarray(t, float)
    y = np.asarray(y, float)
    w = np.ones_like(t) if w is None else np.asarray(w, float)
    sw = np.sqrt(w)

    def solve(alpha):
        X = np.column_stack([np.ones_like(t), t ** -alpha]) * sw[:, None]
        coef, *_ = np.linalg.lstsq(X, y * sw, rcond=None)
        r = y * sw - X @ coef
        return float(r @ r), coef

    grid_a = np.geomspace(*alpha_bounds, grid)
    rss = [solve(a)[0] for a in grid_a]
    k = int(np.argmin(rss))
    lo, hi = grid_a[max(k - 1, 0)], grid_a[min(k + 1, grid - 1)]
    res = minimize_scalar(lambda la: solve(math.exp(la))[0], bounds=(math.log(lo), math.log(hi)),
                          method="bounded", options={"xatol": 1e-12})
    alpha = math.exp(res.x)
    r, (c, a) = solve(alpha)
    return c, a, alpha, r
