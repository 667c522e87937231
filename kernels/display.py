"""Display kernels: choose which points of a long curve to draw.

`lttb` keeps the visual shape (Largest-Triangle-Three-Buckets, Steinarsson 2013) and picks
exactly the points tsdownsample's LTTBDownsampler picks. `minmax_downsample` and
`m4_downsample` keep the extremes of every bucket, so no spike can vanish from a plot.
All three return sorted, unique int64 indices into the input, and keep non-finite
points as evidence (see each docstring).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def _prepare(name: str, steps, values, n_out: int, min_out: int):
    if isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer)) or n_out < min_out:
        raise ValueError(f"{name}: n_out must be an integer >= {min_out}, got {n_out!r}")
    y = np.ascontiguousarray(values, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"{name}: values must be one-dimensional, got shape {y.shape}")
    s = np.asarray(steps)
    if s.ndim != 1 or s.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: steps has shape {s.shape}, values has {y.shape[0]} points; they must match")
    if not np.issubdtype(s.dtype, np.integer):
        if s.size and not (np.all(np.isfinite(s)) and np.all(s == np.round(s))):
            raise ValueError(f"{name}: steps must be integers (training steps), got dtype {s.dtype}")
    s = np.ascontiguousarray(s, dtype=np.int64)
    if s.shape[0] > 1:
        bad = np.flatnonzero(np.diff(s) <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise ValueError(f"{name}: steps must be strictly increasing; step[{i}] = {int(s[i])} "
                             f"after step[{i - 1}] = {int(s[i - 1])}")
    return s, y


def _nonfinite_run_ends(y: np.ndarray, all_finite: bool = False) -> np.ndarray:
    """First and last index of every maximal run of non-finite points of one kind
    (NaN, +Inf, -Inf): enough to draw where a curve broke, without keeping millions of them."""
    if all_finite:
        return np.empty(0, dtype=np.int64)
    kind = np.where(np.isnan(y), 1, np.where(y == np.inf, 2, np.where(y == -np.inf, 3, 0))).astype(np.int8)
    bad = np.flatnonzero(kind)
    if bad.size == 0:
        return bad.astype(np.int64)
    k = kind[bad]
    starts = np.ones(bad.size, dtype=bool)
    starts[1:] = (np.diff(bad) != 1) | (k[1:] != k[:-1])
    ends = np.ones(bad.size, dtype=bool)
    ends[:-1] = starts[1:]
    return bad[starts | ends].astype(np.int64)


def _finish(selected_finite: np.ndarray, fin: np.ndarray, y: np.ndarray, keep_ends: bool) -> np.ndarray:
    all_finite = fin.shape[0] == y.shape[0]
    parts = [selected_finite if all_finite else fin[selected_finite], _nonfinite_run_ends(y, all_finite)]
    if keep_ends and y.shape[0]:
        parts.append(np.array([0, y.shape[0] - 1], dtype=np.int64))
    return np.unique(np.concatenate(parts)).astype(np.int64)


# --------------------------------------------------------------------------------------
# LTTB
# --------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _unrolled_mean(y, lo, hi):
    """ndarray's ArrayView1::mean (eight-fold unrolled sum / len), which tsdownsample's LTTB
    uses for the bucket average; the same summation order keeps the picks bit-identical."""
    p0 = p1 = p2 = p3 = p4 = p5 = p6 = p7 = 0.0
    i = lo
    while hi - i >= 8:
        p0 += y[i]
        p1 += y[i + 1]
        p2 += y[i + 2]
        p3 += y[i + 3]
        p4 += y[i + 4]
        p5 += y[i + 5]
        p6 += y[i + 6]
        p7 += y[i + 7]
        i += 8
    acc = 0.0
    acc += p0 + p4
    acc += p1 + p5
    acc += p2 + p6
    acc += p3 + p7
    while i < hi:
        acc += y[i]
        i += 1
    return acc / (hi - lo)


@njit(cache=True, nogil=True)
def _lttb_core(x, y, n_out, out):
    n = x.shape[0]
    every = (n - 2) / (n_out - 2)
    a = 0
    out[0] = 0
    for i in range(n_out - 2):
        avg_start = int(every * (i + 1)) + 1
        avg_end = int(every * (i + 2)) + 1
        if avg_end > n:
            avg_end = n
        avg_y = _unrolled_mean(y, avg_start, avg_end)
        avg_x = (float(x[avg_end - 1]) + float(x[avg_start])) / 2.0
        range_offs = int(every * i) + 1
        ax = float(x[a])
        ay = y[a]
        d1 = ax - avg_x
        d2 = avg_y - ay
        offset = d1 * ay + d2 * ax
        best = -1.0
        best_is_nan = False
        pick = a
        for j in range(range_offs, avg_start):
            area = abs(d1 * y[j] + d2 * float(x[j]) - offset)
            # tsdownsample compares the bit patterns of |area| as integers: the same order
            # as the values for non-NaN areas, and a NaN (from overflow) beats everything
            if np.isnan(area):
                if not best_is_nan:
                    best_is_nan = True
                    pick = j
            elif not best_is_nan and area > best:
                best = area
                pick = j
        a = pick
        out[i + 1] = a
    out[n_out - 1] = n - 1


def lttb(steps: np.ndarray, values: np.ndarray, *, n_out: int) -> np.ndarray:
    """Largest-Triangle-Three-Buckets: indices of about `n_out` points that keep a curve's
    visual shape. The first and last points are kept; the n - 2 points between are cut
    into n_out - 2 buckets of (n - 2) / (n_out - 2) points, and from each the point making
    the largest triangle with the previous pick and the next bucket's mean is kept.

    Matches: tsdownsample.LTTBDownsampler().downsample(steps, values, n_out=n_out),
    index for index, on finite values (same bucket arithmetic, same summation order for
    the bucket mean, same first-wins tie rule). When n <= n_out every index is returned.
    NaN/Inf: LTTB runs on the finite points only; then the first and last index of every
    run of non-finite points of one kind (NaN, +Inf, -Inf) are added, so the output can
    exceed n_out by two per run. (tsdownsample lets a NaN poison a bucket's mean instead.)
    Steps: int64, strictly increasing. Cost: O(n) time, O(n_out) output.
    """
    s, y = _prepare("lttb", steps, values, n_out, 3)
    fin = np.flatnonzero(np.isfinite(y))
    m = fin.shape[0]
    if m <= n_out:
        sel = np.arange(m, dtype=np.int64)
    else:
        all_finite = m == y.shape[0]  # skip the compacting copies on clean curves
        xs = s if all_finite else np.ascontiguousarray(s[fin])
        ys = y if all_finite else np.ascontiguousarray(y[fin])
        sel = np.empty(n_out, dtype=np.int64)
        _lttb_core(xs, ys, int(n_out), sel)
    return _finish(sel, fin, y, keep_ends=False)


# --------------------------------------------------------------------------------------
# Min/max per bucket (MinMax, M4)
# --------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _bin_end(x, lo, v):
    """Bisect-right of v in x[lo:], as tsdownsample's binary_search_with_mid (steps are
    strictly increasing, so its 'arr[left] <= value' fix-up is exactly bisect-right)."""
    hi = x.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if x[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _bucket_extremes_core(x, y, nb_bins, m4, out):
    """Equal-width step buckets exactly as tsdownsample's get_equidistant_bin_idx_iterator:
    edge i = trunc(x[0] + (x[-1]/nb - x[0]/nb) * (i + 1)) as an integer step, a bucket holds
    the points after the previous edge up to and including its own; it is empty when its
    first point is already at or past its edge. (The float edge can fall one ulp away from
    tsdownsample's when it lands on an integer step; see test_display.) Per non-empty bucket: all of
    its points when it holds <= 2 (MinMax) or <= 4 (M4); else argmin and argmax (first
    occurrence), plus the bucket's first and last point for M4."""
    m = x.shape[0]
    val_step = float(x[m - 1]) / nb_bins - float(x[0]) / nb_bins
    arr0 = float(x[0])
    idx = 0
    c = 0
    small = 4 if m4 else 2
    for i in range(nb_bins):
        start = idx
        if start >= m:
            break
        edge = int(arr0 + val_step * (i + 1))
        if x[start] >= edge:
            continue
        end = _bin_end(x, idx, edge)
        idx = end
        if end - start <= small:
            for j in range(start, end):
                out[c] = j
                c += 1
            continue
        imin = start
        imax = start
        vmin = y[start]
        vmax = y[start]
        for j in range(start + 1, end):
            v = y[j]
            if v < vmin:
                vmin = v
                imin = j
            if v > vmax:
                vmax = v
                imax = j
        if m4:
            out[c] = start
            c += 1
        out[c] = min(imin, imax)
        out[c + 1] = max(imin, imax)
        c += 2
        if m4:
            out[c] = end - 1
            c += 1
    return c


def _extremes(name, steps, values, n_out, per_bin, min_out):
    s, y = _prepare(name, steps, values, n_out, min_out)
    fin = np.flatnonzero(np.isfinite(y))
    m = fin.shape[0]
    if m <= n_out:
        sel = np.arange(m, dtype=np.int64)
    else:
        nb = int(n_out) // per_bin
        buf = np.empty(per_bin * nb + 8, dtype=np.int64)
        all_finite = m == y.shape[0]
        xs = s if all_finite else np.ascontiguousarray(s[fin])
        ys = y if all_finite else np.ascontiguousarray(y[fin])
        c = _bucket_extremes_core(xs, ys, nb, per_bin == 4, buf)
        sel = buf[:c]
    return _finish(sel, fin, y, keep_ends=True)


def minmax_downsample(steps: np.ndarray, values: np.ndarray, *, n_out: int) -> np.ndarray:
    """Min and max of every bucket, plus the first and last point: a plot drawn from these
    indices shows every spike and every dip (the extremes of each bucket are kept).

    Buckets: n_out // 2 equal-width step ranges, exactly tsdownsample's equidistant binning
    (see `_bucket_extremes_core`); from each, the first index of its minimum and of its
    maximum (a bucket of <= 2 points is kept whole).
    Matches: np.unique(tsdownsample.MinMaxDownsampler().downsample(steps, values,
    n_out=n_out) + [0, n - 1]) on finite values: the same picks, plus the curve's first and
    last point, which tsdownsample's float bucket edges can leave out. Exception: when a
    bucket edge x0 + (x[-1]/nb - x[0]/nb) * k lands on an integer step, the two float
    evaluations can differ by an ulp and put that one point in the neighbouring bucket
    (measured: 4 of 5,443 random curves for M4).
    NaN/Inf: extremes are taken over finite values; non-finite points are kept as
    evidence: the first and last index of every run of one kind (NaN, +Inf, -Inf).
    Output: at most n_out + 2 (+ 2 per non-finite run) sorted unique indices; every index
    when the curve has <= n_out finite points. Steps: int64, strictly increasing.
    Cost: O(n) time.
    """
    return _extremes("minmax_downsample", steps, values, n_out, 2, 4)


def m4_downsample(steps: np.ndarray, values: np.ndarray, *, n_out: int) -> np.ndarray:
    """M4 (Jugel et al. 2014): the first, last, min and max point of every bucket, plus the
    curve's first and last point. Drawn as lines, these reproduce the pixel image of the
    full curve at n_out / 4 columns.

    Buckets: n_out // 4 equal-width step ranges, as `minmax_downsample` (a bucket of <= 4
    points is kept whole).
    Matches: np.unique(tsdownsample.M4Downsampler().downsample(steps, values, n_out=n_out)
    + [0, n - 1]) on finite values.
    NaN/Inf: as `minmax_downsample`. Steps: int64, strictly increasing. Cost: O(n) time.
    """
    return _extremes("m4_downsample", steps, values, n_out, 4, 8)
