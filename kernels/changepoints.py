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


# --------------------------------------------------------------------------- multi-scale

@njit(cache=True, nogil=True)
def _range_sums(x, ref, block, pre, a, b):
    """Sums of d and d^2 (d = x - ref) over x[a:b], from the block prefix sums plus the
    two partial blocks: O(block)."""
    ga = a // block
    gb = b // block
    pa1 = 0.0
    pa2 = 0.0
    for i in range(ga * block, a):
        d = x[i] - ref
        pa1 += d
        pa2 += d * d
    pb1 = 0.0
    pb2 = 0.0
    for i in range(gb * block, b):
        d = x[i] - ref
        pb1 += d
        pb2 += d * d
    s1 = (pre[gb, 0] - pre[ga, 0]) + (pre[gb, 1] - pre[ga, 1]) + (pb1 - pa1)
    s2 = (pre[gb, 2] - pre[ga, 2]) + (pre[gb, 3] - pre[ga, 3]) + (pb2 - pa2)
    return s1, s2


@njit(cache=True, nogil=True)
def _l2(length, s1, s2):
    if length <= 0:
        return 0.0
    c = s2 - s1 * s1 / length
    return c if c > 0.0 else 0.0


@njit(cache=True, nogil=True)
def _refine_core(x, ref, block, pre, bk, nb, min_size, radius, penalty, max_passes):
    """Local exact search around coarse breakpoints bk[0:nb] (bk[nb-1] = n).

    Repeats until nothing moves: (1) each breakpoint in turn moves to the position in
    [b - radius, b + radius] (kept min_size from its neighbours) that minimises the
    cost of its two segments, the smallest position on a tie; (2) a breakpoint whose
    removal lowers the penalised cost is removed. Returns the new count."""
    for _ in range(max_passes):
        changed = False
        for k in range(nb - 1):
            a = 0 if k == 0 else bk[k - 1]
            c = bk[k + 1]
            lo = max(a + min_size, bk[k] - radius)
            hi = min(c - min_size, bk[k] + radius)
            if lo > hi:
                continue
            t1, t2 = _range_sums(x, ref, block, pre, a, c)
            r1, r2 = _range_sums(x, ref, block, pre, a, lo)
            best = np.inf
            bt = bk[k]
            for tau in range(lo, hi + 1):
                v = _l2(tau - a, r1, r2) + _l2(c - tau, t1 - r1, t2 - r2)
                if v < best:
                    best = v
                    bt = tau
                d = x[tau] - ref
                r1 += d
                r2 += d * d
            if bt != bk[k]:
                bk[k] = bt
                changed = True
        k = 0
        while k < nb - 1:
            a = 0 if k == 0 else bk[k - 1]
            b = bk[k]
            c = bk[k + 1]
            l1, l2 = _range_sums(x, ref, block, pre, a, b)
            t1, t2 = _range_sums(x, ref, block, pre, a, c)
            split = _l2(b - a, l1, l2) + _l2(c - b, t1 - l1, t2 - l2) + penalty
            if _l2(c - a, t1, t2) < split:
                for i in range(k, nb - 1):
                    bk[i] = bk[i + 1]
                nb -= 1
                changed = True
            else:
                k += 1
        if not changed:
            break
    return nb


def _resolve_short_runs(x, bk, penalty, min_size, block, short_blocks=3):
    """Re-solve at full resolution (optimal PELT, ends fixed) every run of consecutive
    coarse segments shorter than short_blocks blocks: there the block grid is too coarse
    (the steep start of a loss curve, bursts of changes). Such runs are where changes
    are dense, which is where PELT's pruning works well."""
    starts = np.concatenate(([0], bk[:-1]))
    short = (bk - starts) <= short_blocks * block
    if not short.any():
        return bk.copy()
    pieces = []
    i = 0
    k = bk.shape[0]
    while i < k:
        if not short[i]:
            pieces.append(bk[i:i + 1])
            i += 1
            continue
        j = i
        while j + 1 < k and short[j + 1]:
            j += 1
        s, e = int(starts[i]), int(bk[j])
        sub = _pelt_compact(np.ascontiguousarray(x[s:e]), penalty, min_size, 1, _L2, False)
        pieces.append(sub + s)
        i = j + 1
    return np.ascontiguousarray(np.concatenate(pieces), dtype=np.int64)


def pelt_multiscale(values: np.ndarray, *, penalty: float, block: int | None = None,
                    min_size: int = 2, radius: int = 2, cost: str = "l2") -> np.ndarray:
    """PELT for long curves: exact PELT on a block grid, then a local exact refinement.

    Stage 1 runs optimal-pruning PELT with breakpoints restricted to multiples of
    `block` (the full-resolution L2 cost and the same penalty, so this is the exact
    optimum over block-aligned segmentations; it equals pelt(..., jump=block)).
    Stage 2 re-solves exactly at full resolution every run of coarse segments shorter
    than 3 blocks (with its two ends fixed), then moves each breakpoint to its best
    full-resolution position within
    +/- radius blocks given its neighbours, drops breakpoints whose removal lowers
    the penalised cost, and repeats until stable. block=None picks ceil(n / 10_000).

    How close to pelt(jump=1): on changes that stand clear of the noise and segments
    longer than a few blocks it returns exactly the same breakpoints (tested); a
    segment shorter than about 2 blocks can be missed or merged, and on smooth drifts
    (a decaying loss) the breakpoints differ while the penalised cost stays within a
    small fraction of the optimum (measured in tests/kernels/test_changepoints.py:
    test_multiscale_close_on_loss_curves).
    Only cost="l2". NaN/Inf: dropped; see the module docstring.
    Cost: O(n) time for the prefix sums and the refinement, plus PELT on n / block grid
    points; O(n / block) extra memory.
    """
    fn = "pelt_multiscale"
    penalty = _check_penalty(fn, penalty)
    min_size = _check_int("min_size", fn, min_size, 1)
    radius = _check_int("radius", fn, radius, 1)
    kind = _check_cost(fn, cost)
    if kind != _L2:
        raise ValueError(f"pelt_multiscale: only cost='l2' is supported, got {cost!r}")
    x = _as_values(values, fn)
    xf, keep = _finite_part(x)
    n = xf.shape[0]
    if block is None:
        block = max(1, -(-n // 10_000))
    block = _check_int("block", fn, block, 1)
    if n < min_size or block == 1:
        bk = _pelt_compact(xf, penalty, min_size, 1, _L2, False)
    else:
        ref = _mean_core(xf)
        pos_all = np.concatenate((np.arange(0, n, block, dtype=np.int64),
                                  np.array([n], dtype=np.int64)))
        pre_all = np.empty((pos_all.shape[0], 6), dtype=np.float64)
        _grid_prefix_core(xf, ref, pos_all, False, pre_all)
        sel = np.flatnonzero((pos_all == 0) | (pos_all >= min_size))
        pos = np.ascontiguousarray(pos_all[sel])
        pre = np.ascontiguousarray(pre_all[sel])
        out = np.empty(pos.shape[0], dtype=np.int64)
        cnt = _pelt_core(pos, pre, _L2, penalty, min_size, block, False, out)
        coarse = _resolve_short_runs(xf, out[:cnt], penalty, min_size, block)
        nb = _refine_core(xf, ref, block, pre_all, coarse, coarse.shape[0], min_size,
                          radius * block, penalty, 50)
        bk = coarse[:nb].copy()
    if bk.shape[0] == 0 and x.shape[0] > 0:
        bk = np.array([n], dtype=np.int64)
    return _to_original(bk, keep, x.shape[0])


# --------------------------------------------------------------------------- penalties

def noise_penalty(values: np.ndarray, *, kind: str = "bic", cost: str = "l2") -> float:
    """A penalty for pelt/binseg from the curve's own noise level.

    sigma = 1.4826 * MAD(first differences) / sqrt(2) (kernels.noise.mad_noise; when
    more than half the differences are equal, as on quantised logs, the MAD is 0 and
    sigma = 1.2533 * mean|d - median(d)| / sqrt(2) instead). With p parameters per
    segment (1 for "l2": the mean; 2 for "linear": intercept and slope) and n finite
    points:
      kind="bic":  penalty = (p + 1) * sigma^2 * log(n)   (l2: 2 sigma^2 log n)
      kind="mbic": penalty = (p + 2) * sigma^2 * log(n)   (l2: 3 sigma^2 log n, the
                   per-change part of Zhang & Siegmund's MBIC, R changepoint's
                   pen.value; its segment-length term is left out)
    These are the Gaussian-likelihood penalties expressed in units of the L2 cost
    (-2 log L = RSS / sigma^2). Differences assume independent noise: on strongly
    autocorrelated curves sigma is underestimated and too many changes are found;
    crops() shows the whole range instead of one value.
    NaN/Inf: dropped. Fewer than 3 finite points or a constant curve give 0.0.
    """
    from kernels.noise import mad_noise

    if kind not in ("bic", "mbic"):
        raise ValueError(f"noise_penalty: kind must be 'bic' or 'mbic', got {kind!r}")
    k = _check_cost("noise_penalty", cost)
    x = _as_values(values, "noise_penalty")
    xf = x[np.isfinite(x)]
    n = xf.shape[0]
    if n < 3:
        return 0.0
    sigma = float(mad_noise(xf))
    if not sigma > 0.0:
        d = np.diff(xf)
        sigma = 1.2533141373155003 * float(np.mean(np.abs(d - np.median(d)))) / math.sqrt(2.0)
    p = 1 if k == _L2 else 2
    factor = p + 1 if kind == "bic" else p + 2
    return float(factor * sigma * sigma * math.log(n))


class PenaltyPath(NamedTuple):
    """The distinct optimal segmentations over a penalty range, fewest penalties first
    (most changepoints first). Segmentation i is optimal for every penalty in
    [penalty_low[i], penalty_high[i]]; it was computed at penalty[i]."""
    penalty: np.ndarray
    penalty_low: np.ndarray
    penalty_high: np.ndarray
    n_changepoints: np.ndarray
    cost: np.ndarray
    breakpoints: list


def crops(values: np.ndarray, *, penalty_min: float, penalty_max: float, min_size: int = 2,
          jump: int = 1, cost: str = "l2", max_runs: int = 500) -> PenaltyPath:
    """Every optimal segmentation for penalties in [penalty_min, penalty_max] (CROPS,
    Haynes, Eckley & Fearnhead 2017), so a user need not guess one penalty.

    Runs optimal-pruning PELT at both ends, then at the penalty where the
    segmentations found on either side of an interval cost the same,
    (cost_fewer - cost_more) / (changes_more - changes_fewer), and recurses while the
    interval still hides a segmentation; at most max_runs PELT runs (the path is then
    incomplete between the last penalties tried).
    Returns a PenaltyPath; cost is the unpenalised sum of segment costs.
    NaN/Inf: dropped; see the module docstring.
    Cost: one PELT per distinct segmentation plus at most as many again.
    """
    fn = "crops"
    lo = _check_penalty(fn, penalty_min, "penalty_min")
    hi = _check_penalty(fn, penalty_max, "penalty_max")
    if lo > hi:
        raise ValueError(f"crops: penalty_min {penalty_min!r} is above penalty_max {penalty_max!r}")
    min_size = _check_int("min_size", fn, min_size, 1)
    jump = _check_int("jump", fn, jump, 1)
    max_runs = _check_int("max_runs", fn, max_runs, 2)
    kind = _check_cost(fn, cost)
    m = _effective_min_size(kind, min_size)
    x = _as_values(values, fn)
    xf, keep = _finite_part(x)
    n = xf.shape[0]
    pos = pre = None
    if n >= m:
        pos = _grid(n, m, jump)
        pre = _prefix(xf, pos, kind)
    runs: dict[float, tuple] = {}

    def run(pen):
        if pos is None:
            bk = np.array([n], dtype=np.int64) if n else np.zeros(0, np.int64)
        else:
            out = np.empty(pos.shape[0], dtype=np.int64)
            cnt = _pelt_core(pos, pre, kind, pen, m, jump, False, out)
            bk = out[:cnt].copy()
        c = np.empty(bk.shape[0], dtype=np.float64)
        _segment_costs_core(xf, bk, kind, c)
        runs[pen] = (bk, max(bk.shape[0] - 1, 0), float(c.sum()))
        return runs[pen]

    run(lo)
    if hi != lo:
        run(hi)
    stack = [(lo, hi)] if hi != lo else []
    while stack and len(runs) < max_runs:
        b0, b1 = stack.pop()
        _, m0, q0 = runs[b0]
        _, m1, q1 = runs[b1]
        if m0 > m1 + 1:
            bint = (q1 - q0) / (m0 - m1)
            if not b0 < bint < b1:
                continue
            _, mi, _ = run(bint)
            if mi != m1:
                stack.append((bint, b1))
                stack.append((b0, bint))
    # one segmentation per number of changes (the first penalty that found it)
    best: dict[int, tuple] = {}
    for pen in sorted(runs):
        bk, k, q = runs[pen]
        if k not in best:
            best[k] = (pen, bk, q)
    ks = sorted(best, reverse=True)
    pens = np.array([best[k][0] for k in ks], dtype=np.float64)
    costs = np.array([best[k][2] for k in ks], dtype=np.float64)
    counts = np.array(ks, dtype=np.int64)
    low = np.empty(len(ks))
    high = np.empty(len(ks))
    for i in range(len(ks)):
        low[i] = lo if i == 0 else min(max((costs[i] - costs[i - 1]) / (counts[i - 1] - counts[i]), lo), hi)
        high[i] = hi if i == len(ks) - 1 else min(max((costs[i + 1] - costs[i]) / (counts[i] - counts[i + 1]), lo), hi)
    bks = [_to_original(best[k][1], keep, x.shape[0]) if best[k][1].shape[0] or x.shape[0] == 0
           else np.array([x.shape[0]], np.int64) for k in ks]
    return PenaltyPath(pens, low, high, counts, costs, bks)
