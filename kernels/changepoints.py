"""Changepoints of a curve: PELT, binary segmentation, automatic penalties, a CROPS
penalty path and a multi-scale PELT for curves of tens of millions of points.

Breakpoints follow ruptures' convention: the sorted ends of the segments, the last one
is n (the length of the curve), as an int64 array. A curve with no change gives [n];
an empty curve gives [].

Costs (per segment [s, e), from O(1) prefix-sum differences):
- "l2": sum of squared deviations from the segment mean (ruptures' CostL2).
- "linear": residual sum of squares of the least-squares line y ~ a + b*i over the
  segment, i the point index (ruptures' CostLinear with the design [1, i]). Segments of
  this cost have at least 2 points.

Precision: prefix sums are taken of (x - ref), ref = the mean of the curve, and carried
as compensated (Neumaier) pairs, so a difference of two prefixes keeps ~full double
precision however long the curve is: raw prefix sums lost the whole cost of short
segments on 1e9-offset curves and the t*y sums of the linear cost at 1e7 points (see
test_large_offset_* and test_linear_long_curve_precision).

NaN/Inf policy (shared by every public function here): non-finite points are dropped
and the curve is segmented on its finite points; min_size and jump count finite points.
A breakpoint is reported at the original index of the first finite point of the next
segment, so a run of non-finite values just before a change belongs to the earlier
segment; the last breakpoint is always the original length n. A curve with no finite
point gives [n] (one segment, nothing to segment) and never an exception.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

__all__ = [
    "pelt", "binseg", "pelt_multiscale", "noise_penalty", "crops", "segment_costs",
    "PenaltyPath",
]

_L2 = 0
_LINEAR = 1
_COSTS = {"l2": _L2, "linear": _LINEAR}


# --------------------------------------------------------------------------- helpers

@njit(cache=True, nogil=True)
def _mean_core(x):
    # two passes around the first value: the plain sum of 1e7 values near 1e9 drifts
    n = x.shape[0]
    if n == 0:
        return 0.0
    x0 = x[0]
    s = 0.0
    for i in range(n):
        s += x[i] - x0
    return x0 + s / n


@njit(cache=True, nogil=True)
def _two_sum_add(hi, lo, v):
    t = hi + v
    if abs(hi) >= abs(v):
        lo += (hi - t) + v
    else:
        lo += (v - t) + hi
    return t, lo


@njit(cache=True, nogil=True)
def _grid_prefix_core(x, ref, pos, want_ty, pre):
    """pre[g, :] = compensated prefix sums up to pos[g] of d, d*d and (if want_ty) i*d,
    d = x - ref. Columns: 0/1 hi/lo of sum d, 2/3 of sum d^2, 4/5 of sum i*d."""
    s1 = 0.0
    c1 = 0.0
    s2 = 0.0
    c2 = 0.0
    s3 = 0.0
    c3 = 0.0
    for k in range(6):
        pre[0, k] = 0.0
    i = 0
    for g in range(1, pos.shape[0]):
        end = pos[g]
        while i < end:
            d = x[i] - ref
            s1, c1 = _two_sum_add(s1, c1, d)
            s2, c2 = _two_sum_add(s2, c2, d * d)
            if want_ty:
                s3, c3 = _two_sum_add(s3, c3, i * d)
            i += 1
        pre[g, 0] = s1
        pre[g, 1] = c1
        pre[g, 2] = s2
        pre[g, 3] = c2
        pre[g, 4] = s3
        pre[g, 5] = c3


@njit(cache=True, nogil=True)
def _cost(kind, start, length, s1, s2, s3):
    """Cost of a segment from its sums of d, d^2, i*d (d = x - ref)."""
    if length <= 0:
        return 0.0
    n = float(length)
    syy = s2 - s1 * s1 / n
    if kind == _L2:
        c = syy
    else:
        if length < 3:
            return 0.0
        sxx = n * (n * n - 1.0) / 12.0
        sxy = s3 - (start + (n - 1.0) * 0.5) * s1
        c = syy - sxy * sxy / sxx
    return c if c > 0.0 else 0.0


@njit(cache=True, nogil=True)
def _grid_cost(kind, pos, pre, a, b):
    """Cost of the segment between grid indices a < b."""
    s1 = (pre[b, 0] - pre[a, 0]) + (pre[b, 1] - pre[a, 1])
    s2 = (pre[b, 2] - pre[a, 2]) + (pre[b, 3] - pre[a, 3])
    s3 = (pre[b, 4] - pre[a, 4]) + (pre[b, 5] - pre[a, 5])
    return _cost(kind, pos[a], pos[b] - pos[a], s1, s2, s3)


def _as_values(values, name):
    x = np.asarray(values)
    if x.ndim != 1:
        raise ValueError(f"{name}: values must be one-dimensional, got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float64)


def _finite_part(x):
    """(finite values, original index of each finite value or None when all are finite)."""
    mask = np.isfinite(x)
    if mask.all():
        return x, None
    keep = np.flatnonzero(mask).astype(np.int64)
    return np.ascontiguousarray(x[keep]), keep


def _to_original(bkps, keep, n_orig):
    """Map breakpoints on the finite points back to original indices (see module doc)."""
    out = np.asarray(bkps, dtype=np.int64).copy()
    if keep is None:
        return out
    if out.shape[0]:
        out[:-1] = keep[out[:-1]]
        out[-1] = n_orig
    return out


def _check_int(name, fn, value, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{fn}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_penalty(fn, penalty, name="penalty"):
    try:
        p = float(penalty)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: {name} must be a finite number >= 0, got {penalty!r}") from None
    if not math.isfinite(p) or p < 0.0:
        raise ValueError(f"{fn}: {name} must be a finite number >= 0, got {penalty!r}")
    return p


def _check_cost(fn, cost):
    if cost not in _COSTS:
        raise ValueError(f"{fn}: cost must be one of {sorted(_COSTS)}, got {cost!r}")
    return _COSTS[cost]


def _effective_min_size(kind, min_size):
    # ruptures: min_size = max(min_size, cost.min_size); CostLinear.min_size is 2
    return max(min_size, 2) if kind == _LINEAR else min_size


def _grid(n, min_size, jump):
    """ruptures' candidate grid: 0, the multiples of jump in [min_size, n), and n."""
    first = -(-min_size // jump) * jump
    inner = np.arange(max(first, jump), n, jump, dtype=np.int64)
    return np.concatenate((np.zeros(1, np.int64), inner, np.array([n], np.int64)))


def _prefix(x, pos, kind):
    ref = _mean_core(x)
    pre = np.empty((pos.shape[0], 6), dtype=np.float64)
    _grid_prefix_core(x, ref, pos, kind == _LINEAR, pre)
    return pre


# --------------------------------------------------------------------------- PELT

@njit(cache=True, nogil=True)
def _pelt_core(pos, pre, kind, penalty, min_size, jump, ruptures_mode, out):
    """PELT over the grid positions pos (pos[0] = 0, pos[-1] = n), costs from pre.

    F[g] = min over live candidates t of F[t] + (cost(t, g) + penalty); the first
    (smallest) t wins a tie, as min() over ruptures' ordered list does. F is the same
    left-to-right sum ruptures forms with sum(partition.values()).

    Pruning, ruptures_mode=True (ruptures.Pelt exactly): after step g keep t iff
    F[t] + cost + penalty <= F[g] + penalty; at the last step ruptures re-appends the
    last admissible point even if it had been pruned (its admissible list gets
    floor((n - min_size) / jump) * jump appended once more). With min_size > 1 this
    rule can prune a point that is still optimal for an end within min_size of g, so
    ruptures' answer is occasionally not the optimum (ruptures PR #383).
    ruptures_mode=False (optimal): a point that fails the test at g is dropped only
    from ends >= g + min_size on, where the PELT argument holds (cost(t, e) >=
    cost(t, g) + cost(g, e) needs the segment [g, e) to be allowed); the result is then
    the exact optimum over the grid with the same tie rule.

    Writes the breakpoints into out, returns their count.
    """
    G = pos.shape[0]
    n = pos[G - 1]
    F = np.empty(G, dtype=np.float64)
    prev = np.empty(G, dtype=np.int64)
    F[0] = 0.0
    prev[0] = -1
    cand = np.empty(G + 1, dtype=np.int64)
    cf = np.empty(G + 1, dtype=np.float64)
    cpre = np.empty((G + 1, 6), dtype=np.float64)
    cflag = np.empty(G + 1, dtype=np.int64)
    vals = np.empty(G + 1, dtype=np.float64)
    ncand = 0
    nxt = 0
    last_adm = (n - min_size) // jump * jump
    for g in range(1, G):
        b = pos[g]
        while nxt < g and pos[nxt] <= b - min_size:
            cand[ncand] = nxt
            cf[ncand] = F[nxt]
            for k in range(6):
                cpre[ncand, k] = pre[nxt, k]
            cflag[ncand] = -1
            ncand += 1
            nxt += 1
        if ruptures_mode and g == G - 1 and nxt > 0:
            r = nxt - 1
            if pos[r] == last_adm and (ncand == 0 or cand[ncand - 1] != r):
                cand[ncand] = r
                cf[ncand] = F[r]
                for k in range(6):
                    cpre[ncand, k] = pre[r, k]
                cflag[ncand] = -1
                ncand += 1
        if not ruptures_mode:
            m = 0
            for k in range(ncand):
                if cflag[k] >= 0 and cflag[k] + min_size <= b:
                    continue
                if m != k:
                    cand[m] = cand[k]
                    cf[m] = cf[k]
                    for c in range(6):
                        cpre[m, c] = cpre[k, c]
                    cflag[m] = cflag[k]
                m += 1
            ncand = m
        b1h = pre[g, 0]
        b1l = pre[g, 1]
        b2h = pre[g, 2]
        b2l = pre[g, 3]
        b3h = pre[g, 4]
        b3l = pre[g, 5]
        best = np.inf
        bestk = -1
        if kind == _L2:
            for k in range(ncand):
                length = b - pos[cand[k]]
                s1 = (b1h - cpre[k, 0]) + (b1l - cpre[k, 1])
                s2 = (b2h - cpre[k, 2]) + (b2l - cpre[k, 3])
                c = s2 - s1 * s1 / length
                if c < 0.0:
                    c = 0.0
                v = cf[k] + (c + penalty)
                vals[k] = v
                if v < best:
                    best = v
                    bestk = k
        else:
            for k in range(ncand):
                t = pos[cand[k]]
                s1 = (b1h - cpre[k, 0]) + (b1l - cpre[k, 1])
                s2 = (b2h - cpre[k, 2]) + (b2l - cpre[k, 3])
                s3 = (b3h - cpre[k, 4]) + (b3l - cpre[k, 5])
                v = cf[k] + (_cost(kind, t, b - t, s1, s2, s3) + penalty)
                vals[k] = v
                if v < best:
                    best = v
                    bestk = k
        F[g] = best
        prev[g] = cand[bestk]
        thr = best + penalty
        if ruptures_mode:
            m = 0
            for k in range(ncand):
                if vals[k] <= thr:
                    if m != k:
                        cand[m] = cand[k]
                        cf[m] = cf[k]
                        for c in range(6):
                            cpre[m, c] = cpre[k, c]
                    m += 1
            ncand = m
        else:
            for k in range(ncand):
                if cflag[k] < 0 and not vals[k] <= thr:
                    cflag[k] = b
    # backtrack
    cnt = 0
    g = G - 1
    while g > 0:
        out[cnt] = pos[g]
        cnt += 1
        g = prev[g]
    out[:cnt] = out[:cnt][::-1].copy()
    return cnt


def _pelt_compact(x, penalty, min_size, jump, kind, ruptures_mode):
    """PELT on an all-finite array; breakpoints in its own coordinates."""
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n < min_size:
        return np.array([n], dtype=np.int64)
    pos = _grid(n, min_size, jump)
    pre = _prefix(x, pos, kind)
    out = np.empty(pos.shape[0], dtype=np.int64)
    cnt = _pelt_core(pos, pre, kind, penalty, min_size, jump, ruptures_mode, out)
    return out[:cnt].copy()


def pelt(values: np.ndarray, *, penalty: float, min_size: int = 2, jump: int = 1,
         cost: str = "l2", pruning: str = "ruptures") -> np.ndarray:
    """Penalised changepoints by PELT: minimise sum(cost(segment) + penalty).

    Breakpoints may sit only at multiples of `jump` (and n); every segment has at least
    `min_size` points (2 for cost="linear", as in ruptures).

    pruning="ruptures" (default) returns exactly ruptures'
    Pelt(model=cost, min_size=min_size, jump=jump).fit(x).predict(pen=penalty) (for
    "linear", ruptures' signal is column_stack([x, ones, arange(n)])), including its
    admissible grid, its pruning rule and its tie-breaking; with min_size > 1 that rule
    is occasionally not optimal (ruptures PR #383). pruning="optimal" delays each prune
    until it is provably safe and returns the exact minimiser over the same grid (the
    smallest last changepoint wins ties), as an O(n^2) optimal-partitioning program would.
    Where ruptures raises for a curve shorter than min_size, this returns [n].

    NaN/Inf: dropped; see the module docstring for where breakpoints land.
    Cost: O(n) memory; time O(n) per point times the live candidates (near-linear when
    changes are frequent, up to O(n^2) on long homogeneous stretches: a loss curve of
    1e6 points takes about a minute with jump=1; use pelt_multiscale for long curves).
    Matches: ruptures.Pelt breakpoints (tests/kernels/test_changepoints.py).
    """
    fn = "pelt"
    penalty = _check_penalty(fn, penalty)
    min_size = _check_int("min_size", fn, min_size, 1)
    jump = _check_int("jump", fn, jump, 1)
    kind = _check_cost(fn, cost)
    if pruning not in ("ruptures", "optimal"):
        raise ValueError(f"pelt: pruning must be 'ruptures' or 'optimal', got {pruning!r}")
    x = _as_values(values, fn)
    xf, keep = _finite_part(x)
    bk = _pelt_compact(xf, penalty, _effective_min_size(kind, min_size), jump, kind,
                       pruning == "ruptures")
    if bk.shape[0] == 0 and x.shape[0] > 0:
        bk = np.array([xf.shape[0]], dtype=np.int64)
    return _to_original(bk, keep, x.shape[0])


# --------------------------------------------------------------------------- Binseg

@njit(cache=True, nogil=True)
def _best_split(kind, pos, pre, a, b, min_size):
    """ruptures' Binseg.single_bkp on the grid segment [a, b]: the split of largest
    gain, the larger position on a tie (max over (gain, bkp) tuples); -1 if none."""
    whole = _grid_cost(kind, pos, pre, a, b)
    best_gain = -np.inf
    best = -1
    for k in range(a + 1, b):
        if pos[k] - pos[a] < min_size:
            continue
        if pos[b] - pos[k] < min_size:
            break
        gain = (whole - _grid_cost(kind, pos, pre, a, k)) - _grid_cost(kind, pos, pre, k, b)
        if gain >= best_gain:
            best_gain = gain
            best = k
    if best < 0:
        return -1, 0.0
    return best, best_gain


@njit(cache=True, nogil=True)
def _binseg_core(pos, pre, kind, n_bkps, penalty, min_size, out):
    """Binary segmentation as ruptures.Binseg: split the segment whose best split has
    the largest gain (the leftmost segment on a tie; a segment with no admissible split
    counts as gain 0 and stops the search when it wins), while fewer than n_bkps
    changes are found (n_bkps >= 0) or the gain exceeds penalty (n_bkps < 0)."""
    G = pos.shape[0]
    cap = G + 1
    ends = np.empty(cap, dtype=np.int64)     # grid indices of segment ends, sorted
    sk = np.empty(cap, dtype=np.int64)       # best split of each segment
    sg = np.empty(cap, dtype=np.float64)     # its gain
    ends[0] = G - 1
    k0, g0 = _best_split(kind, pos, pre, 0, G - 1, min_size)
    sk[0] = k0
    sg[0] = g0
    nseg = 1
    while True:
        j = 0
        for i in range(1, nseg):
            if sg[i] > sg[j]:
                j = i
        if sk[j] < 0:
            break
        if n_bkps >= 0:
            if nseg - 1 >= n_bkps:
                break
        elif not sg[j] > penalty:
            break
        split = sk[j]
        start = 0 if j == 0 else ends[j - 1]
        stop = ends[j]
        for i in range(nseg, j, -1):
            ends[i] = ends[i - 1]
            sk[i] = sk[i - 1]
            sg[i] = sg[i - 1]
        ends[j] = split
        nseg += 1
        a, ga = _best_split(kind, pos, pre, start, split, min_size)
        sk[j] = a
        sg[j] = ga
        c, gc = _best_split(kind, pos, pre, split, stop, min_size)
        sk[j + 1] = c
        sg[j + 1] = gc
    for i in range(nseg):
        out[i] = pos[ends[i]]
    return nseg


def binseg(values: np.ndarray, *, n_bkps: int | None = None, penalty: float | None = None,
           min_size: int = 2, jump: int = 1, cost: str = "l2") -> np.ndarray:
    """Binary segmentation: split greedily where the cost drops most.

    Give exactly one stopping rule: n_bkps (stop after that many changes, or fewer when
    no admissible split is left: ruptures raises in that case) or penalty (split while
    the gain exceeds it). Candidate splits are multiples of `jump`, segments have at
    least `min_size` points.

    NaN/Inf: dropped; see the module docstring.
    Cost: O(n) memory; O(n log n) time for balanced splits (each level scans its
    segments once), O(n * changes) at worst.
    Matches: ruptures.Binseg(model=cost, min_size, jump).fit(x).predict(n_bkps=... or
    pen=...), including its tie rules (tests/kernels/test_changepoints.py).
    """
    fn = "binseg"
    if (n_bkps is None) == (penalty is None):
        raise ValueError("binseg: give exactly one of n_bkps and penalty")
    if n_bkps is not None:
        nb = _check_int("n_bkps", fn, n_bkps, 0)
        pen = 0.0
    else:
        nb = -1
        pen = _check_penalty(fn, penalty)
    min_size = _check_int("min_size", fn, min_size, 1)
    jump = _check_int("jump", fn, jump, 1)
    kind = _check_cost(fn, cost)
    m = _effective_min_size(kind, min_size)
    x = _as_values(values, fn)
    xf, keep = _finite_part(x)
    n = xf.shape[0]
    if x.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if n < 2 * m:
        return np.array([x.shape[0]], dtype=np.int64)
    pos = _grid(n, m, jump)
    pre = _prefix(xf, pos, kind)
    out = np.empty(pos.shape[0] + 1, dtype=np.int64)
    cnt = _binseg_core(pos, pre, kind, nb, pen, m, out)
    return _to_original(out[:cnt].copy(), keep, x.shape[0])


# --------------------------------------------------------------------------- costs

@njit(cache=True, nogil=True)
def _segment_costs_core(x, ends, kind, out):
    # two passes per segment (mean first): the definition, independent of prefix sums
    start = 0
    for s in range(ends.shape[0]):
        stop = ends[s]
        m = 0
        mean = 0.0
        tmean = 0.0
        for i in range(start, stop):
            m += 1
            mean += (x[i] - mean) / m
            tmean += (i - tmean) / m
        c = 0.0
        if m > 0:
            if kind == _L2:
                for i in range(start, stop):
                    c += (x[i] - mean) ** 2
            else:
                sxy = 0.0
                sxx = 0.0
                syy = 0.0
                for i in range(start, stop):
                    dt = i - tmean
                    dy = x[i] - mean
                    sxx += dt * dt
                    sxy += dt * dy
                    syy += dy * dy
                c = syy - (sxy * sxy / sxx if sxx > 0.0 else 0.0)
                if c < 0.0:
                    c = 0.0
        out[s] = c
        start = stop


def segment_costs(values: np.ndarray, breakpoints, *, cost: str = "l2") -> np.ndarray:
    """Cost of each segment of `breakpoints` (ruptures convention, last = n).

    "l2": sum of squared deviations from the segment mean; "linear": residual sum of
    squares of the least-squares line against the index of the finite points.
    NaN/Inf: non-finite points are left out of their segment (breakpoints index the
    original array). Cost: O(n), two passes per segment.
    Matches: ruptures' cost.sum_of_costs(bkps) summed, per segment cost.error(s, e).
    """
    fn = "segment_costs"
    kind = _check_cost(fn, cost)
    x = _as_values(values, fn)
    b = np.asarray(breakpoints, dtype=np.int64)
    if b.ndim != 1 or (b.shape[0] and (b[-1] != x.shape[0] or np.any(np.diff(b) <= 0) or b[0] <= 0)):
        raise ValueError(f"segment_costs: breakpoints must increase strictly from >0 to n={x.shape[0]}, got {b!r}")
    mask = np.isfinite(x)
    if not mask.all():
        counts = np.cumsum(mask)
        b = counts[b - 1].astype(np.int64)
        x = np.ascontiguousarray(x[mask])
    out = np.empty(b.shape[0], dtype=np.float64)
    _segment_costs_core(x, b, kind, out)
    return out
