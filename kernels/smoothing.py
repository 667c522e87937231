"""Smoothers for training curves: EMA family, rolling mean/median, Gaussian, Hampel.

Shared NaN/Inf policy (each docstring restates what applies to it): a non-finite point
(NaN, +Inf, -Inf) is treated as missing. It contributes nothing to any average or
median; the output at its position is computed from its finite neighbours. The one
exception is `debiased_ema`, which passes non-finite points through unchanged because
that is what TensorBoard does. Non-finite values are evidence, and the NONFINITE rule
reads them from the raw curve, not from a smoothed one.

Every function takes the data positionally and everything else by keyword, never
modifies its input, and returns a new float64 array of the input's length.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "ema",
    "debiased_ema",
    "time_weighted_ema",
    "rolling_mean",
    "rolling_median",
    "gaussian_smooth",
    "hampel_filter",
]

_LN2 = math.log(2.0)
# 1 / Phi^-1(3/4): scales a median absolute deviation to a standard deviation for
# Gaussian data (the constant scipy.stats.median_abs_deviation(scale="normal") uses).
MAD_TO_SD = 1.482602218505602


def _all_finite(x: np.ndarray) -> bool:
    """True for a non-empty array without NaN/Inf: a finite sum proves it in one
    vectorised pass (an overflowing sum of finite values just takes the slow path)."""
    if x.shape[0] == 0:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return math.isfinite(float(np.sum(x)))


def _as_values(values, name: str) -> np.ndarray:
    x = np.ascontiguousarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name}: values must be one-dimensional, got shape {x.shape!r}")
    return x


def _as_steps(steps, n: int, name: str) -> np.ndarray:
    s = np.asarray(steps)
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"{name}: steps has shape {s.shape!r} but values has {n} points")
    if s.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(s) | (s != np.round(s)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name}: steps[{i}] = {s[i]!r} is not an integer step")
    elif s.dtype.kind not in "iu":
        raise ValueError(f"{name}: steps must be integers, got dtype {s.dtype}")
    s = np.ascontiguousarray(s, dtype=np.int64)
    if n > 1:
        bad = np.flatnonzero(s[1:] <= s[:-1])
        if bad.size:
            i = int(bad[0]) + 1
            raise ValueError(f"{name}: steps must be strictly increasing; steps[{i}] = {int(s[i])} "
                             f"follows steps[{i - 1}] = {int(s[i - 1])}")
    return s


def _window_bounds(window, center: bool, name: str) -> tuple[int, int]:
    """(points before i, points after i) in the window at position i."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"{name}: window must be a positive integer number of points, got {window!r}")
    window = int(window)
    if center:
        # pandas' convention for rolling(center=True): an even window has one more
        # point before i than after it.
        return window // 2, (window - 1) // 2
    return window - 1, 0


def _check_min_periods(min_periods, window: int, name: str) -> int:
    if isinstance(min_periods, bool) or not isinstance(min_periods, (int, np.integer)) \
            or not 1 <= min_periods <= window:
        raise ValueError(f"{name}: min_periods must be an integer in [1, window={window}], got {min_periods!r}")
    return int(min_periods)


# ---------------------------------------------------------------------------------------
# EMA family


@njit(cache=True, nogil=True)
def _ema_lanes(values, start, level0, ref, alpha, out):
    """out[i] = ref + l_i for i >= start, l_i = l_{i-1} + alpha * ((x_i - ref) - l_{i-1}),
    l_{start-1} = level0. Returns False when a non-finite value (or an overflow) reached
    a lane: a non-finite level never turns finite again, so checking the eight final
    levels replaces a finite test per point; the caller then takes the skipping loop.

    The recurrence is latency-bound (one dependent sub-mul-add per point, ~3.5 ns).
    The range is cut into eight lanes run side by side, each started from 0; lane k's
    true level is its local level plus (1 - alpha)^j times the level it inherits, added
    in a short fix-up pass that stops once that part no longer changes the output. Sums are taken
    around ref (the first value), so a constant curve stays exactly constant and 1e9
    offsets lose nothing."""
    n = values.shape[0]
    m = n - start
    if m <= 0:
        return True
    lane = m // 8
    if lane < 64:
        level = level0
        for i in range(start, n):
            level = level + alpha * ((values[i] - ref) - level)
            out[i] = ref + level
        return np.isfinite(level)
    l0 = level0
    l1 = 0.0
    l2 = 0.0
    l3 = 0.0
    l4 = 0.0
    l5 = 0.0
    l6 = 0.0
    l7 = 0.0
    for t in range(lane):
        i0 = start + 0 * lane + t
        i1 = start + 1 * lane + t
        i2 = start + 2 * lane + t
        i3 = start + 3 * lane + t
        i4 = start + 4 * lane + t
        i5 = start + 5 * lane + t
        i6 = start + 6 * lane + t
        i7 = start + 7 * lane + t
        l0 = l0 + alpha * ((values[i0] - ref) - l0)
        l1 = l1 + alpha * ((values[i1] - ref) - l1)
        l2 = l2 + alpha * ((values[i2] - ref) - l2)
        l3 = l3 + alpha * ((values[i3] - ref) - l3)
        l4 = l4 + alpha * ((values[i4] - ref) - l4)
        l5 = l5 + alpha * ((values[i5] - ref) - l5)
        l6 = l6 + alpha * ((values[i6] - ref) - l6)
        l7 = l7 + alpha * ((values[i7] - ref) - l7)
        out[i0] = ref + l0
        out[i1] = ref + l1
        out[i2] = ref + l2
        out[i3] = ref + l3
        out[i4] = ref + l4
        out[i5] = ref + l5
        out[i6] = ref + l6
        out[i7] = ref + l7
    for i in range(start + 8 * lane, n):
        l7 = l7 + alpha * ((values[i] - ref) - l7)
        out[i] = ref + l7
    if not (np.isfinite(l0) and np.isfinite(l1) and np.isfinite(l2) and np.isfinite(l3)
            and np.isfinite(l4) and np.isfinite(l5) and np.isfinite(l6) and np.isfinite(l7)):
        return False
    beta = 1.0 - alpha
    locals_end = np.array([l0, l1, l2, l3, l4, l5, l6, l7])
    inherited = l0
    for k in range(1, 8):
        lane_start = start + k * lane
        lane_end = lane_start + lane if k < 7 else n
        factor = 1.0
        if inherited != 0.0:
            for i in range(lane_start, lane_end):
                factor *= beta
                contribution = factor * inherited
                # stop once the inherited part is below 2^-60 of the value it corrects:
                # from there it no longer changes a double (it decays further), so the
                # fix-up touches ~40/alpha points, not the lane
                if abs(contribution) < 8.673617379884035e-19 * abs(out[i]) or contribution == 0.0:
                    break
                out[i] += contribution
        inherited = locals_end[k] + beta ** (lane_end - lane_start) * inherited
    return True


@njit(cache=True, nogil=True)
def _ema_core(values, alpha, out):
    n = values.shape[0]
    i = 0
    # positions before the first finite point stay NaN; the loop after it has no
    # "is the level set yet" test on the dependency chain
    while i < n and not np.isfinite(values[i]):
        out[i] = np.nan
        i += 1
    if i == n:
        return
    level = values[i]
    out[i] = level
    i += 1
    while i < n:
        x = values[i]
        if np.isfinite(x):
            # the difference form keeps a constant curve exactly constant and loses
            # nothing on curves offset by 1e9
            level = level + alpha * (x - level)
        out[i] = level
        i += 1


def ema(values: np.ndarray, *, alpha: float) -> np.ndarray:
    """Causal exponential moving average (uses points up to i only).

    level_0 = first finite value; level_i = level_{i-1} + alpha * (x_i - level_{i-1}).

    NaN/Inf: non-finite points are skipped and the average carries across them
    (the output there is the last level); positions before the first finite point
    are NaN.
    Cost: O(n) time, one output array. A curve without non-finite points runs as eight
    lanes side by side (see _ema_lanes): the result equals the one-by-one recurrence to
    rounding (~1e-15 relative), not bit for bit, so a prefix of a long finite curve
    agrees with the full run to rounding; a constant curve stays exactly constant.
    Matches: pandas ewm(alpha=alpha, adjust=False).mean() and polars
    ewm_mean(alpha=alpha, adjust=False) on finite input; with NaN (no Inf) it matches
    pandas ewm(alpha, adjust=False, ignore_na=True), which also skips missing points.
    """
    if not isinstance(alpha, (int, float, np.floating)) or not 0.0 < alpha <= 1.0:
        raise ValueError(f"ema: alpha must be in (0, 1], got {alpha!r}")
    x = _as_values(values, "ema")
    out = np.empty_like(x)
    if not (x.shape[0] and math.isfinite(x[0]) and _ema_lanes(x, 1, 0.0, float(x[0]), float(alpha), out)):
        _ema_core(x, float(alpha), out)
    else:
        out[0] = x[0]
    return out


@njit(cache=True, nogil=True)
def _debiased_ema_core(values, weight, out):
    n = values.shape[0]
    first = values[0]
    constant = True
    for i in range(n):
        if not values[i] == first:  # NaN breaks constancy, as in TensorBoard
            constant = False
            break
    if constant:
        for i in range(n):
            out[i] = values[i]
        return
    last = 0.0
    keep = 1.0 - weight
    weight_pow = 1.0  # weight ** (number of finite points so far)
    for i in range(n):
        x = values[i]
        if np.isfinite(x):
            last = last * weight + keep * x
            weight_pow *= weight
            out[i] = last / (1.0 - weight_pow)
        else:
            out[i] = x


@njit(cache=True, nogil=True)
def _debiased_ema_head(values, weight, ref, out):
    """The first points of debiased_ema on an all-finite, non-constant curve, relative
    to ref: last_rel = w*last_rel + (1-w)*(x - ref), out = ref + last_rel / (1 - w^k),
    until w^k < 2^-60. Returns (last_rel, number of points done)."""
    n = values.shape[0]
    keep = 1.0 - weight
    last = 0.0
    weight_pow = 1.0
    i = 0
    while i < n:
        last = last * weight + keep * (values[i] - ref)
        weight_pow *= weight
        out[i] = ref + last / (1.0 - weight_pow)
        i += 1
        if weight_pow < 8.673617379884035e-19:
            break
    return last, i


def debiased_ema(values: np.ndarray, *, weight: float) -> np.ndarray:
    """TensorBoard's scalar smoothing: a zero-started EMA divided by its bias 1 - w^k.

    Matched: tensorboard/webapp/widgets/line_chart_v2/data_transformer.ts,
    `classicSmoothing` ("1st-order IIR low-pass filter", classic TensorBoard
    2019-2020): if every value equals the first (`==`), the series is returned
    unchanged (TensorBoard #786); otherwise last = 0, and for each finite y:
    last = last*w + (1-w)*y, k += 1, out = last / (1 - w^k). So the first finite
    point is returned as itself and a constant curve stays constant.

    NaN/Inf: non-finite points are passed through unchanged and do not advance k,
    exactly as TensorBoard does; a NaN anywhere makes the series "not constant".
    Differences from TensorBoard, on purpose: TensorBoard clamps w into [0, 1] (and at
    w = 1 draws all zeros); we reject w outside [0, 1) with ValueError. w^k is kept as a
    running product instead of Math.pow, and finite curves are computed around their
    first value (out = x_0 + last_rel / (1 - w^k), the same quantity) and, once
    w^k < 2^-60, in eight lanes as in ema: agreement is to rounding (~1e-15 relative).
    Cost: O(n) time, one output array. Also what MLflow and W&B's "TensorBoard EMA" use.
    """
    if not isinstance(weight, (int, float, np.floating)) or not 0.0 <= weight < 1.0:
        raise ValueError(f"debiased_ema: weight must be in [0, 1), got {weight!r}")
    x = _as_values(values, "debiased_ema")
    out = np.empty_like(x)
    if x.shape[0] == 0:
        return out
    if math.isfinite(x[0]):
        # the first points need the division by 1 - w^k; once w^k < 2^-60 the
        # divisor is 1.0 exactly and the rest is a plain EMA of the zero-started
        # level. Relative to ref = x[0] a constant curve gives exactly ref, which is
        # TensorBoard's "return a constant series unchanged".
        ref = float(x[0])
        level, done = _debiased_ema_head(x, float(weight), ref, out)
        if math.isfinite(level) and _ema_lanes(x, done, level, ref, 1.0 - float(weight), out):
            return out
    _debiased_ema_core(x, float(weight), out)
    return out


@njit(cache=True, nogil=True)
def _evenly_spaced(steps, gap):
    for i in range(1, steps.shape[0]):
        if steps[i] - steps[i - 1] != gap:
            return False
    return True


@njit(cache=True, nogil=True)
def _time_weighted_ema_core(steps, values, rate, out):
    n = values.shape[0]
    i = 0
    while i < n and not np.isfinite(values[i]):
        out[i] = np.nan
        i += 1
    if i == n:
        return
    level = values[i]
    out[i] = level
    prev_step = steps[i]
    last_gap = -1
    alpha = 0.0
    i += 1
    while i < n:
        x = values[i]
        if np.isfinite(x):
            gap = steps[i] - prev_step
            if gap != last_gap:  # evenly logged curves pay for one expm1, not n
                alpha = -math.expm1(-rate * gap)
                last_gap = gap
            level = level + alpha * (x - level)
            prev_step = steps[i]
        out[i] = level
        i += 1


def time_weighted_ema(steps: np.ndarray, values: np.ndarray, *, half_life_steps: float) -> np.ndarray:
    """Causal EMA for unevenly logged curves: the decay depends on the step gap.

    level_i = level_prev + alpha_i * (x_i - level_prev) with
    alpha_i = 1 - 0.5 ** ((step_i - step_prev) / half_life_steps), where prev is the
    previous finite point. So an old value has half its influence after
    half_life_steps training steps, however densely the curve was logged. On evenly
    spaced steps (gap g) this equals ema(values, alpha=1 - 0.5 ** (g / half_life_steps)).

    NaN/Inf: non-finite points are skipped (the gap runs from the previous finite point)
    and the level carries across them; positions before the first finite point are NaN.
    steps must be strictly increasing integers (ValueError naming the first bad index).
    Cost: O(n) time; one expm1 per change of gap; evenly spaced finite curves take
    ema's eight-lane path.
    Matches: polars ewm_mean_by(by=steps, half_life=...) on finite input (the same
    recurrence, alpha_i = 1 - exp(-ln2 * gap / half_life)). Unlike W&B's TWEMA it is not
    debiased: the first point is the value itself, as in ema.
    """
    if not isinstance(half_life_steps, (int, float, np.integer, np.floating)) \
            or not 0.0 < half_life_steps < math.inf:
        raise ValueError(f"time_weighted_ema: half_life_steps must be a positive finite number, "
                         f"got {half_life_steps!r}")
    x = _as_values(values, "time_weighted_ema")
    s = _as_steps(steps, x.shape[0], "time_weighted_ema")
    out = np.empty_like(x)
    rate = _LN2 / float(half_life_steps)
    if x.shape[0] > 1 and math.isfinite(x[0]):
        gap = int(s[1] - s[0])
        if _evenly_spaced(s, gap):
            # evenly logged (the common case): exactly ema with the gap's alpha
            out[0] = x[0]
            if _ema_lanes(x, 1, 0.0, float(x[0]), -math.expm1(-rate * gap), out):
                return out
    _time_weighted_ema_core(s, x, rate, out)
    return out


# ---------------------------------------------------------------------------------------
# Rolling mean


@njit(cache=True, nogil=True)
def _masked_copy(values, clean, counts):
    """clean = values with each non-finite point replaced by ref (the first finite
    value, so it adds zero around ref); counts[k] = finite points among the first k.
    Returns ref. One pass (numpy's where + cumsum took 10x longer, measured)."""
    n = values.shape[0]
    ref = 0.0
    for i in range(n):
        if np.isfinite(values[i]):
            ref = values[i]
            break
    counts[0] = 0
    c = 0
    for i in range(n):
        v = values[i]
        if np.isfinite(v):
            clean[i] = v
            c += 1
        else:
            clean[i] = ref
        counts[i + 1] = c
    return ref


@njit(cache=True, nogil=True)
def _rolling_mean_range(values, ref, use_counts, count_prefix, before, after, min_periods, i_from, i_to, out):
    """out[i_from:i_to], any window position (cut at the ends), from fresh state."""
    n = values.shape[0]
    cap = before + after + 1
    suffix = np.empty(cap, dtype=np.float64)  # sums from k to the end of lo's block
    lo0 = i_from - before
    if lo0 < 0:
        lo0 = 0
    hi0 = i_from + after
    if hi0 > n - 1:
        hi0 = n - 1
    lo_start = (lo0 // cap) * cap - cap  # the first iteration fills lo's block
    hi_start = (hi0 // cap) * cap
    prefix = 0.0  # sum from hi_start to prefix_end
    prefix_end = hi_start - 1
    for i in range(i_from, i_to):
        lo = i - before
        if lo < 0:
            lo = 0
        hi = i + after
        if hi > n - 1:
            hi = n - 1
        while prefix_end < hi:
            prefix_end += 1
            if prefix_end == hi_start + cap:
                hi_start = prefix_end
                prefix = 0.0
            prefix += values[prefix_end] - ref
        if lo >= lo_start + cap:
            lo_start += cap
            end = lo_start + cap
            if end > n:
                end = n
            acc = 0.0
            for k in range(end - 1, lo_start - 1, -1):
                acc += values[k] - ref
                suffix[k - lo_start] = acc
        if lo_start == hi_start:
            total = prefix if lo == lo_start else suffix[lo - lo_start]
        else:
            total = suffix[lo - lo_start] + prefix
        if use_counts:
            count = count_prefix[hi + 1] - count_prefix[lo]
        else:
            count = hi - lo + 1
        if count >= min_periods:
            out[i] = ref + total / count
        else:
            out[i] = np.nan


@njit(cache=True, nogil=True)
def _rolling_mean_core(values, ref, use_counts, count_prefix, before, after, min_periods, out):
    """Sliding sums without subtraction: positions are cut into blocks of `window`
    points, so a window is a suffix of one block plus a prefix of the next. A running
    sum that adds 1e300 and later subtracts it keeps none of the small values it held,
    and drifts on long curves; here every window sum is a fresh sum of its own points
    (error bounded by the window, not the curve length), with no per-point finite test
    (non-finite points arrive as `ref`, adding zero, with a prefix count of finite
    points). Values are summed around `ref` (the first finite value): no digits are
    lost on 1e9 offsets and a constant curve comes out exactly constant.
    In full blocks the prefix of the current block and the suffix sums of the same
    block (needed when it becomes lo's block) are two independent chains in one loop."""
    n = values.shape[0]
    cap = before + after + 1
    first = cap  # first block start whose windows lie wholly inside the curve
    n_blocks = n // cap - 1
    if n_blocks < 1:
        _rolling_mean_range(values, ref, use_counts, count_prefix, before, after, min_periods, 0, n, out)
        return
    _rolling_mean_range(values, ref, use_counts, count_prefix, before, after, min_periods, 0, first - after, out)
    cur = np.empty(cap + 1, dtype=np.float64)  # suffix sums of the block before hs
    nxt = np.empty(cap + 1, dtype=np.float64)
    cur[cap] = 0.0
    nxt[cap] = 0.0
    acc = 0.0
    for k in range(first - 1, first - cap - 1, -1):
        acc += values[k] - ref
        cur[k - (first - cap)] = acc
    inv = 1.0 / cap
    hs = first
    for _ in range(n_blocks):
        prefix = 0.0
        acc = 0.0
        # per-block views indexed from 0: numba adds a negative-index wrap-around
        # select to every a[hs + t], which LLVM can drop only for indices it can
        # prove non-negative; branches are hoisted out of the inner loops likewise
        block = values[hs:hs + cap]
        dest = out[hs - after:hs - after + cap]
        if use_counts:
            ends = count_prefix[hs + 1:hs + 1 + cap]
            starts = count_prefix[hs + 1 - cap:hs + 1]
            for t in range(cap):
                prefix += block[t] - ref
                acc += block[cap - 1 - t] - ref
                nxt[cap - 1 - t] = acc
                # window hi = hs + t, lo = hs + t - cap + 1: cur[t + 1] (cur[cap] = 0)
                count = ends[t] - starts[t]
                dest[t] = ref + (cur[t + 1] + prefix) / count if count >= min_periods else np.nan
        else:
            for t in range(cap):
                prefix += block[t] - ref
                acc += block[cap - 1 - t] - ref
                nxt[cap - 1 - t] = acc
                dest[t] = ref + (cur[t + 1] + prefix) * inv
        cur, nxt = nxt, cur
        hs += cap
    _rolling_mean_range(values, ref, use_counts, count_prefix, before, after, min_periods, hs - after, n, out)


def rolling_mean(values: np.ndarray, *, window: int, center: bool = False,
                 min_periods: int = 1) -> np.ndarray:
    """Mean of the finite values in a window of `window` points around each point.

    Causal (center=False): points i-window+1 .. i. Centred: i-window//2 .. i+(window-1)//2
    (pandas' rolling(center=True) convention; an odd window is symmetric). Windows are
    cut at the ends of the curve.

    NaN/Inf: non-finite points are skipped; the output is NaN where the window holds
    fewer than min_periods finite points (default 1: a value wherever any finite point
    is in reach, so the ends of the curve are smoothed over shorter windows).
    Cost: O(n) time, one output array, O(window) scratch (plus two n-arrays when the
    curve has non-finite points). No running sum: each window is summed fresh from
    block suffix and prefix sums, so a 1e300 spike leaving the window leaves no trace
    and long curves do not drift.
    Matches: bottleneck.move_mean(values, window, min_count=min_periods) and pandas
    rolling(window, min_periods, center).mean() on input whose non-finite points are NaN.
    """
    x = _as_values(values, "rolling_mean")
    before, after = _window_bounds(window, center, "rolling_mean")
    mp = _check_min_periods(min_periods, int(window), "rolling_mean")
    out = np.empty_like(x)
    if x.shape[0] == 0:
        return out
    if _all_finite(x):
        _rolling_mean_core(x, float(x[0]), False, _NO_COUNTS, before, after, mp, out)
    else:
        clean = np.empty_like(x)
        counts = np.empty(x.shape[0] + 1, dtype=np.int64)
        ref = _masked_copy(x, clean, counts)
        if counts[-1] == 0:
            out[:] = np.nan
            return out
        _rolling_mean_core(clean, ref, True, counts, before, after, mp, out)
    return out


_NO_COUNTS = np.zeros(1, dtype=np.int64)


# ---------------------------------------------------------------------------------------
# Rolling median: two indexed heaps (a max-heap of the lower half stored as negated
# keys, and a min-heap of the upper half), O(log w) per point.

# children per heap node: a wide heap is shallow (depth 2 at window 101), and the
# children of a node share a cache line; 8 measured fastest at w=101 (bottleneck uses 8)
_ARITY = 8
# heap positions are uint64 inside the sifts: signed indices get a negative-index
# wrap-around select on every access (11% of the rolling median's time, measured)
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U3 = np.uint64(3)  # log2(_ARITY)
_U8 = np.uint64(_ARITY)
# up to this window a sorted copy of the window (binary search, then shifting the
# values between the leaving and entering ranks) beat the heaps (1.4x at w=11, 0.6x at
# w=101); above it the heaps' O(log w) wins, so the cost stays O(n log w)
_SORTED_MAX_WINDOW = 16


@njit(cache=True, nogil=True)
def _sift_up(keys, slots, heap, k0, slot_pos):
    k = np.uint64(k0)
    hk = keys[heap]
    hs = slots[heap]
    key = hk[k]
    s = hs[k]
    while k > _U0:
        p = (k - _U1) >> _U3
        if hk[p] <= key:
            break
        hk[k] = hk[p]
        t = hs[p]
        hs[k] = t
        slot_pos[t] = k
        k = p
    hk[k] = key
    hs[k] = s
    slot_pos[s] = k


@njit(cache=True, nogil=True)
def _sift_down(keys, slots, heap, k0, size0, slot_pos):
    k = np.uint64(k0)
    size = np.uint64(size0)
    hk = keys[heap]
    hs = slots[heap]
    key = hk[k]
    s = hs[k]
    while True:
        first = (k << _U3) + _U1
        if first >= size:
            break
        last = first + _U8
        if last > size:
            last = size
        c = first
        best = hk[first]
        j = first + _U1
        while j < last:
            v = hk[j]
            if v < best:
                best = v
                c = j
            j += _U1
        if best >= key:
            break
        hk[k] = best
        t = hs[c]
        hs[k] = t
        slot_pos[t] = k
        k = c
    hk[k] = key
    hs[k] = s
    slot_pos[s] = k


@njit(cache=True, nogil=True)
def _heap_push(keys, slots, sizes, heap, key, s, slot_heap, slot_pos):
    k = sizes[heap]
    sizes[heap] = k + 1
    keys[heap, k] = key
    slots[heap, k] = s
    slot_heap[s] = heap
    _sift_up(keys, slots, heap, k, slot_pos)


@njit(cache=True, nogil=True)
def _heap_delete(keys, slots, sizes, heap, k, slot_heap, slot_pos):
    slot_heap[slots[heap, k]] = -1
    last = sizes[heap] - 1
    sizes[heap] = last
    if k != last:
        keys[heap, k] = keys[heap, last]
        slots[heap, k] = slots[heap, last]
        slot_pos[slots[heap, k]] = k
        if k > 0 and keys[heap, k] < keys[heap, (k - 1) >> 3]:
            _sift_up(keys, slots, heap, k, slot_pos)
        else:
            _sift_down(keys, slots, heap, k, last, slot_pos)


@njit(cache=True, nogil=True)
def _rebalance(keys, slots, sizes, slot_heap, slot_pos):
    # heap 0 (lower half, keys negated) holds as many points as heap 1 or one more
    while sizes[0] > sizes[1] + 1:
        s = slots[0, 0]
        v = -keys[0, 0]
        _heap_delete(keys, slots, sizes, 0, 0, slot_heap, slot_pos)
        _heap_push(keys, slots, sizes, 1, v, s, slot_heap, slot_pos)
    while sizes[1] > sizes[0]:
        s = slots[1, 0]
        v = keys[1, 0]
        _heap_delete(keys, slots, sizes, 1, 0, slot_heap, slot_pos)
        _heap_push(keys, slots, sizes, 0, -v, s, slot_heap, slot_pos)


@njit(cache=True, nogil=True)
def _heap_replace(keys, slots, sizes, s, v, slot_heap, slot_pos):
    """Give slot s (finite, in a heap) the finite value v without changing heap sizes:
    no delete/insert/rebalance, at most two sifts."""
    h = slot_heap[s]
    k = slot_pos[s]
    if h == 0:
        if sizes[1] > 0 and v > keys[1, 0]:
            # v belongs to the upper half: the upper root b moves down into s's place
            # (b >= every lower value, so it only rises there) and v takes the root
            sb = slots[1, 0]
            keys[0, k] = -keys[1, 0]
            slots[0, k] = sb
            slot_heap[sb] = 0
            _sift_up(keys, slots, 0, k, slot_pos)
            keys[1, 0] = v
            slots[1, 0] = s
            slot_heap[s] = 1
            _sift_down(keys, slots, 1, 0, sizes[1], slot_pos)
            return
        key = -v
    else:
        if v < -keys[0, 0]:
            sa = slots[0, 0]
            keys[1, k] = -keys[0, 0]
            slots[1, k] = sa
            slot_heap[sa] = 1
            _sift_up(keys, slots, 1, k, slot_pos)
            keys[0, 0] = -v
            slots[0, 0] = s
            slot_heap[s] = 0
            _sift_down(keys, slots, 0, 0, sizes[0], slot_pos)
            return
        key = v
    old = keys[h, k]
    keys[h, k] = key
    if key < old:
        _sift_up(keys, slots, h, k, slot_pos)
    else:
        _sift_down(keys, slots, h, k, sizes[h], slot_pos)


@njit(cache=True, nogil=True)
def _heap_insert(keys, slots, sizes, s, v, slot_heap, slot_pos):
    if sizes[0] == 0 or v <= -keys[0, 0]:
        _heap_push(keys, slots, sizes, 0, -v, s, slot_heap, slot_pos)
    else:
        _heap_push(keys, slots, sizes, 1, v, s, slot_heap, slot_pos)
    _rebalance(keys, slots, sizes, slot_heap, slot_pos)


@njit(cache=True, nogil=True)
def _rolling_median_core(values, before, after, min_periods, out):
    n = values.shape[0]
    cap = before + after + 1
    keys = np.empty((2, cap), dtype=np.float64)
    slots = np.empty((2, cap), dtype=np.int64)
    sizes = np.zeros(2, dtype=np.int64)
    slot_heap = np.full(cap, -1, dtype=np.int64)  # -1: slot empty or non-finite
    slot_pos = np.zeros(cap, dtype=np.int64)
    added = 0
    removed = 0
    add_slot = 0  # points enter and leave in order, so a ring of slots needs no modulo
    rem_slot = 0
    for i in range(n):
        lo = i - before
        hi = i + after
        if hi > n - 1:
            hi = n - 1
        while removed < lo or added <= hi:
            if removed < lo:
                if added <= hi and added - removed == cap:
                    # full ring: the point leaving and the point entering share a slot
                    v = values[added]
                    s = rem_slot
                    if slot_heap[s] >= 0:
                        if np.isfinite(v):
                            _heap_replace(keys, slots, sizes, s, v, slot_heap, slot_pos)
                        else:
                            _heap_delete(keys, slots, sizes, slot_heap[s], slot_pos[s], slot_heap, slot_pos)
                            _rebalance(keys, slots, sizes, slot_heap, slot_pos)
                    elif np.isfinite(v):
                        _heap_insert(keys, slots, sizes, s, v, slot_heap, slot_pos)
                    added += 1
                    add_slot += 1
                    if add_slot == cap:
                        add_slot = 0
                else:
                    h = slot_heap[rem_slot]
                    if h >= 0:
                        _heap_delete(keys, slots, sizes, h, slot_pos[rem_slot], slot_heap, slot_pos)
                        _rebalance(keys, slots, sizes, slot_heap, slot_pos)
                removed += 1
                rem_slot += 1
                if rem_slot == cap:
                    rem_slot = 0
            else:
                v = values[added]
                if np.isfinite(v):
                    _heap_insert(keys, slots, sizes, add_slot, v, slot_heap, slot_pos)
                else:
                    slot_heap[add_slot] = -1
                added += 1
                add_slot += 1
                if add_slot == cap:
                    add_slot = 0
        count = sizes[0] + sizes[1]
        if count < min_periods:
            out[i] = np.nan
        elif sizes[0] > sizes[1]:
            out[i] = -keys[0, 0]
        else:
            # halves first: never overflows, and equals (a + b) / 2 whenever that doesn't
            out[i] = 0.5 * (-keys[0, 0]) + 0.5 * keys[1, 0]


def rolling_median(values: np.ndarray, *, window: int, center: bool = False,
                   min_periods: int = 1) -> np.ndarray:
    """Median of the finite values in a window of `window` points around each point.

    Causal (center=False): points i-window+1 .. i. Centred: i-window//2 .. i+(window-1)//2
    (pandas' convention). Windows are cut at the ends of the curve. An even count of
    finite points gives the mean of the two middle values.

    NaN/Inf: non-finite points are skipped; the output is NaN where the window holds
    fewer than min_periods finite points (default 1).
    Cost: O(n log window) time with two indexed 8-ary heaps (windows of at most 16
    points use a sorted window instead), O(window) extra memory.
    Matches: bottleneck.move_median(values, window, min_count=min_periods) (causal) and
    pandas rolling(window, min_periods, center=True).median() on input whose non-finite
    points are NaN.
    """
    x = _as_values(values, "rolling_median")
    before, after = _window_bounds(window, center, "rolling_median")
    mp = _check_min_periods(min_periods, int(window), "rolling_median")
    out = np.empty_like(x)
    if int(window) <= _SORTED_MAX_WINDOW:
        _rolling_median_mad_core(x, before, after, mp, False, out, out)
    else:
        _rolling_median_core(x, before, after, mp, out)
    return out


# ---------------------------------------------------------------------------------------
# Gaussian


@njit(cache=True, nogil=True)
def _gaussian_core(steps, values, radius, table, offset, i_from, i_to, out):
    n = values.shape[0]
    lo = 0
    hi = 0
    for i in range(i_from, i_to):
        si = steps[i]
        while steps[lo] < si - radius:
            lo += 1
        if hi < lo:
            hi = lo
        while hi < n and steps[hi] <= si + radius:
            hi += 1
        sw = 0.0
        swx = 0.0
        for j in range(lo, hi):
            v = values[j]
            if np.isfinite(v):
                d = steps[j] - si
                if d < 0:
                    d = -d
                w = table[d]
                sw += w
                swx += w * (v - offset)
        if sw > 0.0:
            out[i] = swx / sw + offset
        else:
            out[i] = np.nan


_GAUSS_BLOCK = 2048


@njit(cache=True, nogil=True)
def _gaussian_even_core(centered, finite, has_nonfinite, weights, r, offset, out):
    """Interior points (r <= i < n - r) of evenly spaced curves: the kernel is fixed,
    so out = sum_j w_j x_{i+j} is computed offset by offset over blocks of points: each
    inner loop is an independent multiply-add per point, which the compiler vectorises
    (the per-point dot product is one serial chain of adds, 10x slower, measured)."""
    n = centered.shape[0]
    num = np.empty(_GAUSS_BLOCK, dtype=np.float64)
    den = np.empty(_GAUSS_BLOCK, dtype=np.float64)
    norm = 0.0
    for j in range(2 * r + 1):
        norm += weights[j]
    start = r
    if not has_nonfinite:
        # eight outputs at a time: eight independent chains of multiply-adds, and the
        # symmetric kernel pairs x[i-j] with x[i+j] (half the multiplies)
        w0 = weights[r]
        stop8 = start + ((n - 2 * r) // 8) * 8
        for i in range(start, stop8, 8):
            a0 = w0 * centered[i]
            a1 = w0 * centered[i + 1]
            a2 = w0 * centered[i + 2]
            a3 = w0 * centered[i + 3]
            a4 = w0 * centered[i + 4]
            a5 = w0 * centered[i + 5]
            a6 = w0 * centered[i + 6]
            a7 = w0 * centered[i + 7]
            for j in range(1, r + 1):
                w = weights[r + j]
                a0 += w * (centered[i - j] + centered[i + j])
                a1 += w * (centered[i + 1 - j] + centered[i + 1 + j])
                a2 += w * (centered[i + 2 - j] + centered[i + 2 + j])
                a3 += w * (centered[i + 3 - j] + centered[i + 3 + j])
                a4 += w * (centered[i + 4 - j] + centered[i + 4 + j])
                a5 += w * (centered[i + 5 - j] + centered[i + 5 + j])
                a6 += w * (centered[i + 6 - j] + centered[i + 6 + j])
                a7 += w * (centered[i + 7 - j] + centered[i + 7 + j])
            out[i] = a0 / norm + offset
            out[i + 1] = a1 / norm + offset
            out[i + 2] = a2 / norm + offset
            out[i + 3] = a3 / norm + offset
            out[i + 4] = a4 / norm + offset
            out[i + 5] = a5 / norm + offset
            out[i + 6] = a6 / norm + offset
            out[i + 7] = a7 / norm + offset
        for i in range(stop8, n - r):
            a0 = w0 * centered[i]
            for j in range(1, r + 1):
                a0 += weights[r + j] * (centered[i - j] + centered[i + j])
            out[i] = a0 / norm + offset
        return
    while start < n - r:
        size = min(_GAUSS_BLOCK, n - r - start)
        num[:size] = 0.0
        if has_nonfinite:
            den[:size] = 0.0
        for j in range(2 * r + 1):
            w = weights[j]
            base = start - r + j
            for t in range(size):
                num[t] += w * centered[base + t]
            if has_nonfinite:
                for t in range(size):
                    den[t] += w * finite[base + t]
        if has_nonfinite:
            for t in range(size):
                out[start + t] = num[t] / den[t] + offset if den[t] > 0.0 else np.nan
        else:
            for t in range(size):
                out[start + t] = num[t] / norm + offset
        start += size


_MAX_GAUSSIAN_TABLE = 1 << 24


def gaussian_smooth(steps: np.ndarray, values: np.ndarray, *, sigma_steps: float) -> np.ndarray:
    """Two-sided Gaussian kernel smoother with the kernel measured in training steps.

    out_i = sum_j w_ij x_j / sum_j w_ij over finite x_j with |step_j - step_i| <= 4 sigma,
    w_ij = exp(-(step_j - step_i)^2 / (2 sigma^2)). Because the weights are renormalised
    over the points present, uneven logging and the ends of the curve need no padding:
    near an end the kernel is one-sided (where scipy.ndimage.gaussian_filter1d would
    reflect the curve).

    NaN/Inf: non-finite points are skipped (weight 0); the output is NaN only where no
    finite point lies within 4 sigma. steps: strictly increasing integers.
    Cost: O(n * k) time where k is the number of points within +-4 sigma (a weight table
    over integer gaps replaces exp; evenly spaced curves take a fixed-kernel loop);
    O(4 sigma) extra memory, plus one n-array on evenly spaced curves (two with NaN).
    Matches: scipy.ndimage.gaussian_filter1d(values, sigma, truncate=4.0) on evenly
    spaced steps away from the ends, when int(4 sigma + 0.5) == floor(4 sigma) (scipy
    rounds its radius to nearest, we cut at 4 sigma exactly).
    """
    if not isinstance(sigma_steps, (int, float, np.integer, np.floating)) or not 0.0 < sigma_steps < math.inf:
        raise ValueError(f"gaussian_smooth: sigma_steps must be a positive finite number, got {sigma_steps!r}")
    x = _as_values(values, "gaussian_smooth")
    s = _as_steps(steps, x.shape[0], "gaussian_smooth")
    radius = int(math.floor(4.0 * float(sigma_steps)))
    if radius + 1 > _MAX_GAUSSIAN_TABLE:
        raise ValueError(f"gaussian_smooth: sigma_steps={sigma_steps!r} spans more than "
                         f"{_MAX_GAUSSIAN_TABLE // 4:,} steps; downsample the curve first")
    d = np.arange(radius + 1, dtype=np.float64) / float(sigma_steps)
    table = np.exp(-0.5 * d * d)
    out = np.empty_like(x)
    n = x.shape[0]
    if n == 0:
        return out
    finite = np.isfinite(x)
    any_finite = bool(finite.any())
    # sums taken around the first finite value: raw sums lose digits on 1e9 offsets
    offset = float(x[np.argmax(finite)]) if any_finite else 0.0
    gap = int(s[1] - s[0]) if n > 1 else 0
    r = radius // gap if gap > 0 else 0
    if n > 2 * r + 1 and r > 0 and _evenly_spaced(s, gap):
        weights = table[np.abs(np.arange(-r, r + 1)) * gap]
        has_nonfinite = not bool(finite.all())
        centered = np.where(finite, x - offset, 0.0) if has_nonfinite else x - offset
        mask = finite.astype(np.float64) if has_nonfinite else centered  # unread when all finite
        _gaussian_even_core(centered, mask, has_nonfinite, weights, r, offset, out)
        _gaussian_core(s, x, radius, table, offset, 0, r, out)
        _gaussian_core(s, x, radius, table, offset, n - r, n, out)
    else:
        _gaussian_core(s, x, radius, table, offset, 0, n, out)
    return out


# ---------------------------------------------------------------------------------------
# Rolling median and MAD together (Hampel, rolling noise): a sorted copy of the window.
# Insertion and removal shift O(window) contiguous doubles (cheap for windows up to a
# few thousand points); the MAD is then a k-th smallest of two sorted runs, O(log w).


@njit(cache=True, nogil=True)
def _lower_bound(buf, m, v):
    """First index p with buf[p] >= v in the sorted buf[:m]. Branch-free halving (the
    comparison feeds a conditional move): on noisy curves a branchy binary search
    mispredicts about every other step."""
    if m == 0:
        return 0
    base = 0
    size = m
    while size > 1:
        half = size >> 1
        base = base + half if buf[base + half - 1] < v else base
        size -= half
    return base + 1 if buf[base] < v else base


@njit(cache=True, nogil=True)
def _kth_abs_deviation(buf, m, p, med, k):
    """k-th smallest (0-based) of |buf[j] - med| over the sorted buf[:m]; p is the
    first index with buf[p] >= med. Left run: med - buf[p-1-t]; right: buf[p+t] - med."""
    n_left = p
    n_right = m - p
    lo = k + 1 - n_right
    if lo < 0:
        lo = 0
    hi = k + 1
    if hi > n_left:
        hi = n_left
    while lo < hi:
        i = (lo + hi) >> 1
        j = k + 1 - i
        if j > 0 and (med - buf[p - 1 - i]) < (buf[p + j - 1] - med):
            lo = i + 1
        else:
            hi = i
    i = lo
    j = k + 1 - i
    best = -np.inf
    if i > 0:
        best = med - buf[p - i]
    if j > 0:
        r = buf[p + j - 1] - med
        if r > best:
            best = r
    return best


# The shifts index with uint64: with signed indices numba adds a negative-index
# wrap-around select to every access, which stops LLVM from turning the loop into a
# block move (measured 8x slower on a 100-point shift).
_ONE = np.uint64(1)


@njit(cache=True, nogil=True)
def _shift_left(buf, start, stop):
    """buf[start:stop-1] = buf[start+1:stop]"""
    if stop <= start:
        return
    k = np.uint64(start)
    end = np.uint64(stop) - _ONE
    while k < end:
        buf[k] = buf[k + _ONE]
        k += _ONE


@njit(cache=True, nogil=True)
def _shift_right(buf, start, stop):
    """buf[start+1:stop+1] = buf[start:stop]"""
    k = np.uint64(stop)
    first = np.uint64(start)
    while k > first:
        buf[k] = buf[k - _ONE]
        k -= _ONE


@njit(cache=True, nogil=True)
def _sorted_remove(buf, m, v):
    p = _lower_bound(buf, m, v)
    _shift_left(buf, p, m)


@njit(cache=True, nogil=True)
def _sorted_insert(buf, m, v):
    p = _lower_bound(buf, m, v)
    _shift_right(buf, p, m)
    buf[p] = v


@njit(cache=True, nogil=True)
def _sorted_replace(buf, m, v_out, v_in):
    """Swap v_out (present) for v_in in the sorted buf[:m], moving only the values
    between their two ranks (about window/3 of them on a noisy curve, not window)."""
    p = _lower_bound(buf, m, v_out)
    if v_in > v_out:
        q = _lower_bound(buf, m, v_in)
        _shift_left(buf, p, q)
        buf[q - 1] = v_in
    elif v_in < v_out:
        q = _lower_bound(buf, p, v_in)
        _shift_right(buf, q, p)
        buf[q] = v_in


@njit(cache=True, nogil=True)
def _rolling_median_mad_core(values, before, after, min_count, want_mad, med_out, mad_out):
    n = values.shape[0]
    cap = before + after + 1
    buf = np.empty(cap, dtype=np.float64)
    m = 0
    added = 0
    removed = 0
    for i in range(n):
        lo = i - before
        hi = i + after
        if hi > n - 1:
            hi = n - 1
        # steady state: one point leaves and one enters
        while removed < lo and added <= hi:
            v_out = values[removed]
            v_in = values[added]
            if np.isfinite(v_out):
                if np.isfinite(v_in):
                    _sorted_replace(buf, m, v_out, v_in)
                else:
                    _sorted_remove(buf, m, v_out)
                    m -= 1
            elif np.isfinite(v_in):
                _sorted_insert(buf, m, v_in)
                m += 1
            removed += 1
            added += 1
        while removed < lo:
            v = values[removed]
            if np.isfinite(v):
                _sorted_remove(buf, m, v)
                m -= 1
            removed += 1
        while added <= hi:
            v = values[added]
            if np.isfinite(v):
                _sorted_insert(buf, m, v)
                m += 1
            added += 1
        if m < min_count or m == 0:
            med_out[i] = np.nan
            if want_mad:
                mad_out[i] = np.nan
            continue
        half = m >> 1
        if m & 1:
            med = buf[half]
        else:
            med = 0.5 * buf[half - 1] + 0.5 * buf[half]
        med_out[i] = med
        if want_mad:
            p = _lower_bound(buf, m, med)
            if m & 1:
                mad = _kth_abs_deviation(buf, m, p, med, half)
            else:
                mad = 0.5 * _kth_abs_deviation(buf, m, p, med, half - 1) \
                    + 0.5 * _kth_abs_deviation(buf, m, p, med, half)
            mad_out[i] = mad


@njit(cache=True, nogil=True)
def _hampel_core(values, med, mad, threshold, out):
    for i in range(values.shape[0]):
        x = values[i]
        if np.isnan(med[i]):
            out[i] = x
        elif not np.isfinite(x) or abs(x - med[i]) > threshold * mad[i]:
            out[i] = med[i]
        else:
            out[i] = x


def hampel_filter(values: np.ndarray, *, window: int, n_sigmas: float = 3.0) -> np.ndarray:
    """Robust spike remover: a point far from its window's median is replaced by it.

    With med_i and MAD_i the median and median absolute deviation of the finite values
    in the centred window of `window` points (i-window//2 .. i+(window-1)//2, cut at the
    ends), x_i is replaced by med_i when |x_i - med_i| > n_sigmas * 1.4826 * MAD_i, and
    kept otherwise. Where MAD_i is 0 (a flat window) any departure from the median is
    replaced: that is the textbook Hampel rule, kept as is.

    NaN/Inf: non-finite points are skipped when computing med/MAD and are themselves
    replaced by med_i (they are the heaviest spikes); a point whose window holds no
    finite value is returned unchanged.
    Cost: O(n * window) worst case (a sorted window shifted by memmove-like loops,
    fast for windows up to a few thousand points), O(window) extra memory.
    Matches: the Hampel identifier as in sktime/hampel packages with a window of
    2k+1 points and scale 1.4826.
    """
    if not isinstance(n_sigmas, (int, float, np.integer, np.floating)) or not 0.0 <= n_sigmas < math.inf:
        raise ValueError(f"hampel_filter: n_sigmas must be a non-negative finite number, got {n_sigmas!r}")
    x = _as_values(values, "hampel_filter")
    before, after = _window_bounds(window, True, "hampel_filter")
    med = np.empty_like(x)
    mad = np.empty_like(x)
    _rolling_median_mad_core(x, before, after, 1, True, med, mad)
    out = np.empty_like(x)
    _hampel_core(x, med, mad, float(n_sigmas) * MAD_TO_SD, out)
    return out
