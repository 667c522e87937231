"""Noise of a training curve: robust level, rolling level, oscillation, signal-to-noise.

All estimators work on first differences, so a trend (the descent of a loss) does not
count as noise, and a 1e9 offset cancels exactly before anything is summed.

Shared NaN/Inf policy: non-finite points (NaN, +Inf, -Inf) are dropped before
differencing, so a difference joins the two finite points on either side of a gap.
Too few finite points give NaN, never an exception. A constant curve has zero noise;
ratios that divide by a zero noise follow IEEE rules (c/0 = inf, 0/0 = NaN) and say so.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels.smoothing import MAD_TO_SD, _as_values, _rolling_median_mad_core, _window_bounds

__all__ = ["mad_noise", "rolling_noise", "oscillation_index", "signal_to_noise", "NOISE_SCALE"]

# white noise of sd s has differences of sd s*sqrt(2); MAD * 1.4826 estimates their sd
NOISE_SCALE = MAD_TO_SD / math.sqrt(2.0)


@njit(cache=True, nogil=True)
def _finite_diffs(values):
    n = values.shape[0]
    d = np.empty(max(n - 1, 0), dtype=np.float64)
    m = 0
    prev = np.nan
    have = False
    for i in range(n):
        x = values[i]
        if np.isfinite(x):
            if have:
                d[m] = x - prev
                m += 1
            prev = x
            have = True
    return d[:m]


@njit(cache=True, nogil=True)
def _select_inplace(a, k):
    """k-th smallest (0-based) of a, reordering a so that a[:k] <= a[k] <= a[k+1:]:
    Hoare partitioning with a median-of-three pivot, O(n) on average. (numba's
    np.median copies and selects about 1.6x slower than numpy, measured.)"""
    lo = 0
    hi = a.shape[0] - 1
    while hi > lo:
        mid = (lo + hi) >> 1
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while pivot < a[j]:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@njit(cache=True, nogil=True)
def _median_inplace(a):
    m = a.shape[0]
    k = m >> 1
    upper = _select_inplace(a, k)
    if m & 1:
        return upper
    lower = a[0]
    for i in range(1, k):
        if a[i] > lower:
            lower = a[i]
    return 0.5 * lower + 0.5 * upper


@njit(cache=True, nogil=True)
def _mad_noise_core(values, scale):
    d = _finite_diffs(values)
    m = d.shape[0]
    if m < 2:
        return np.nan
    med = _median_inplace(d)
    for i in range(m):
        d[i] = abs(d[i] - med)
    return scale * _median_inplace(d)


def mad_noise(values: np.ndarray) -> float:
    """Robust noise level: 1.4826 * MAD(first differences) / sqrt(2).

    d = differences of consecutive finite points; MAD = median(|d - median(d)|).
    For white noise of standard deviation s around any smooth trend this is ~s (the
    differences have sd s*sqrt(2); 1.4826 turns a MAD into an sd for Gaussian data);
    spikes and steps move it little (50% breakdown on the differences).

    NaN/Inf: non-finite points are dropped before differencing. Fewer than 3 finite
    points (fewer than 2 differences) give NaN. A constant curve gives 0.0.
    Cost: O(n) average (two in-place quickselect medians), one scratch array of n-1 values.
    Matches: NOISE_SCALE * np.median(np.abs(np.diff(x) - np.median(np.diff(x)))) on
    finite x; equals scipy.stats.median_abs_deviation(np.diff(x), scale="normal") / sqrt(2).
    """
    x = _as_values(values, "mad_noise")
    return float(_mad_noise_core(x, NOISE_SCALE))


@njit(cache=True, nogil=True)
def _diffs_in_place(values, out):
    prev = np.nan
    have = False
    for i in range(values.shape[0]):
        x = values[i]
        if np.isfinite(x):
            out[i] = x - prev if have else np.nan
            prev = x
            have = True
        else:
            out[i] = np.nan


def rolling_noise(values: np.ndarray, *, window: int, center: bool = False) -> np.ndarray:
    """mad_noise over a window of `window` points around each point.

    The difference at a finite point i is x_i minus the previous finite point (none for
    the first finite point and at non-finite points). rolling_noise[i] is
    1.4826 / sqrt(2) * MAD of the differences at positions i-window+1 .. i (causal) or
    i-window//2 .. i+(window-1)//2 (center=True), windows cut at the ends of the curve.
    So with window >= n, the last causal value equals mad_noise(values).

    NaN/Inf: non-finite points are skipped as in mad_noise; the output is NaN where the
    window holds fewer than 2 differences.
    Cost: O(n * window) worst case (a sorted window shifted in place; fast for windows
    up to a few thousand points), O(window) extra memory.
    """
    x = _as_values(values, "rolling_noise")
    before, after = _window_bounds(window, center, "rolling_noise")
    d = np.empty_like(x)
    _diffs_in_place(x, d)
    med = np.empty_like(x)
    mad = np.empty_like(x)
    _rolling_median_mad_core(d, before, after, 2, True, med, mad)
    mad *= NOISE_SCALE
    return mad


@njit(cache=True, nogil=True)
def _oscillation_core(values):
    d = _finite_diffs(values)
    m = d.shape[0]
    # sign changes among the non-zero differences: a steppy (accuracy-like) curve
    # whose flat runs separate rises is not oscillating
    changes = 0
    pairs = 0
    last_sign = 0
    for i in range(m):
        if d[i] > 0.0:
            s = 1
        elif d[i] < 0.0:
            s = -1
        else:
            continue
        if last_sign != 0:
            pairs += 1
            if s != last_sign:
                changes += 1
        last_sign = s
    frac = changes / pairs if pairs > 0 else np.nan
    if m < 2:
        return frac, np.nan
    mean = 0.0
    for i in range(m):
        mean += d[i]
    mean /= m
    num = 0.0
    den = 0.0
    for i in range(m):
        c = d[i] - mean
        den += c * c
        if i + 1 < m:
            num += c * (d[i + 1] - mean)
    if den == 0.0:
        return frac, np.nan
    return frac, num / den


def oscillation_index(values: np.ndarray) -> tuple[float, float]:
    """How much a curve zig-zags: (sign_change_fraction, lag1_autocorrelation).

    d = differences of consecutive finite points.
    sign_change_fraction: among the non-zero differences taken in order, the fraction of
    neighbouring pairs whose signs differ. 0 for a monotone (or steppy monotone) curve,
    ~2/3 for white noise, 1 for a strict zig-zag. NaN with fewer than 2 non-zero
    differences.
    lag1_autocorrelation: sum_k (d_k - dbar)(d_{k+1} - dbar) / sum_k (d_k - dbar)^2,
    the usual ACF estimator (statsmodels acf(d, nlags=1)[1]). ~-0.5 for white noise
    (differencing makes it so), near +1 for smooth drift, below -0.5 for oscillation.
    NaN with fewer than 2 differences or when every difference is equal (a constant or
    straight-line curve).

    NaN/Inf: non-finite points are dropped before differencing.
    Cost: O(n), one scratch array. Returns a tuple of two Python floats.
    """
    x = _as_values(values, "oscillation_index")
    frac, rho = _oscillation_core(x)
    return float(frac), float(rho)


@njit(cache=True, nogil=True)
def _signal_change_core(values):
    n = values.shape[0]
    count = 0
    for i in range(n):
        if np.isfinite(values[i]):
            count += 1
    if count < 3:
        return np.nan
    k = max(1, count // 10)
    head = np.empty(k, dtype=np.float64)
    tail = np.empty(k, dtype=np.float64)
    j = 0
    for i in range(n):
        if np.isfinite(values[i]):
            if j < k:
                head[j] = values[i]
            if j >= count - k:
                tail[j - (count - k)] = values[i]
            j += 1
    return abs(_median_inplace(tail) - _median_inplace(head))


def signal_to_noise(values: np.ndarray) -> float:
    """Total change of the curve's robust level, in units of its noise.

    With f the finite values in order, m = len(f) and k = max(1, m // 10):
    change = |median(f[m-k:]) - median(f[:k])| (median of the last tenth minus median of
    the first tenth) and signal_to_noise = change / mad_noise(values). A curve that
    fell by 40 noise levels has SNR 40; pure noise has SNR ~0-2.

    NaN/Inf: non-finite points are dropped. Fewer than 3 finite points give NaN.
    Zero noise follows IEEE division: a noiseless curve that moved gives +inf, a
    constant curve gives NaN (0/0), never an exception.
    Cost: O(n) average (medians by quickselect).
    """
    x = _as_values(values, "signal_to_noise")
    change = float(_signal_change_core(x))
    noise = float(_mad_noise_core(x, NOISE_SCALE))
    if math.isnan(change) or math.isnan(noise):
        return math.nan
    if noise == 0.0:
        return math.nan if change == 0.0 else math.inf
    return change / noise
