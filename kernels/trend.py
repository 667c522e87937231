"""Trend kernels: per-segment least squares, Mann-Kendall, Theil-Sen, power-law fit.

Every public function takes the data positionally (`steps`, `values`) and everything
else keyword-only. Compiled cores (`_*_core`) only compute; the wrappers validate,
make inputs contiguous and allocate outputs.

Common NaN/Inf policy: a point whose value (or step) is NaN is dropped from every
statistic here. +/-Inf values are dropped by the least-squares fits (segment_fit,
theil_sen, fit_power_law), which cannot use them, but kept by mann_kendall, where they
are ordinary ranks (a curve that diverges to +Inf is trending up). The number of points
actually used is always returned, so a caller can tell how much was dropped.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

__all__ = [
    "SEGMENT_FIT_COLUMNS",
    "segment_fit",
    "MannKendall",
    "mann_kendall",
    "kendall_tau",
    "TheilSen",
    "theil_sen",
    "POWER_LAW_STATUS",
    "PowerLawFit",
    "fit_power_law",
    "power_law_predict",
    "extrapolation_gain",
]


def _as_steps(steps, name: str, n: int) -> tuple[np.ndarray, float]:
    """Steps as float64 *relative to the first step*, plus that first step.

    The subtraction is done in int64 when the steps are integers, so steps of 1e12 or
    more keep every unit: float64 sums of raw 1e9-sized steps lose the slope's digits
    (see test_segment_fit_large_step_offset).
    """
    s = np.asarray(steps)
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"{name}: steps must be 1-D with the same length as values "
                         f"({n}), got shape {s.shape}")
    if n == 0:
        return np.zeros(0), 0.0
    if np.issubdtype(s.dtype, np.integer):
        s = s.astype(np.int64, copy=False)
        first = int(s[0])
        return np.ascontiguousarray(s - s[0], dtype=np.float64), float(first)
    s = np.asarray(s, dtype=np.float64)
    finite = np.isfinite(s)
    first = float(s[finite][0]) if finite.any() else 0.0
    return np.ascontiguousarray(s - first), first


def _as_values(values, name: str) -> np.ndarray:
    v = np.ascontiguousarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name}: values must be 1-D, got shape {v.shape}")
    return v


# ---------------------------------------------------------------------------------
# segment_fit

SEGMENT_FIT_COLUMNS = ("slope", "intercept", "slope_se", "intercept_se",
                       "residual_sd", "n", "mean")


@njit(cache=True, nogil=True)
def _segment_fit_core(x, y, ends, step0, out):
    start = 0
    for k in range(ends.shape[0]):
        end = ends[k]
        # Three passes per segment (means, centred cross-products, residuals). Raw
        # one-pass sums cancel catastrophically for steps near 1e9 or values with a
        # large offset; centring per segment keeps full precision at O(n) total.
        m = 0
        sx = 0.0
        sy = 0.0
        for i in range(start, end):
            if np.isfinite(x[i]) and np.isfinite(y[i]):
                m += 1
                sx += x[i]
                sy += y[i]
        for c in range(7):
            out[k, c] = np.nan
        out[k, 5] = m
        if m == 0:
            start = end
            continue
        xbar = sx / m
        ybar = sy / m
        # second-order correction of the mean (sum of deviations is ~0 in exact math)
        cx = 0.0
        cy = 0.0
        for i in range(start, end):
            if np.isfinite(x[i]) and np.isfinite(y[i]):
                cx += x[i] - xbar
                cy += y[i] - ybar
        xbar += cx / m
        ybar += cy / m
        out[k, 6] = ybar
        sxx = 0.0
        sxy = 0.0
        for i in range(start, end):
            if np.isfinite(x[i]) and np.isfinite(y[i]):
                dx = x[i] - xbar
                sxx += dx * dx
                sxy += dx * (y[i] - ybar)
        if m >= 2 and sxx > 0.0:
            slope = sxy / sxx
            xabs = xbar + step0
            out[k, 0] = slope
            out[k, 1] = ybar - slope * xabs
            if m >= 3:
                rss = 0.0
                for i in range(start, end):
                    if np.isfinite(x[i]) and np.isfinite(y[i]):
                        r = (y[i] - ybar) - slope * (x[i] - xbar)
                        rss += r * r
                s2 = rss / (m - 2)
                out[k, 4] = math.sqrt(s2)
                out[k, 2] = math.sqrt(s2 / sxx)
                out[k, 3] = math.sqrt(s2 * (1.0 / m + xabs * xabs / sxx))
        start = end


def segment_fit(steps, values, breakpoints) -> np.ndarray:
    """Ordinary least squares line per segment.

    Segments follow ruptures' convention: `breakpoints` are the (exclusive) end indices
    of consecutive segments, strictly increasing, the last one equal to len(values);
    segment k is values[breakpoints[k-1]:breakpoints[k]] (the first starts at 0).

    Returns a float64 array of shape (len(breakpoints), 7); the columns are
    SEGMENT_FIT_COLUMNS: slope (value per step), intercept (value at step 0, as
    numpy.polyfit gives it), slope_se and intercept_se (classical OLS standard errors
    with n-2 degrees of freedom, as scipy.stats.linregress / statsmodels OLS), residual_sd
    (sqrt(RSS/(n-2))), n (points used) and mean (mean value of the points used).

    NaN/Inf: points whose value or step is not finite are dropped (n counts the rest).
    A segment with no usable point gives NaN everywhere but n = 0; with one point only
    the mean; with two, slope and intercept but NaN standard errors; a segment whose
    usable points all share one step gives NaN slope.
    Precision: steps are taken relative to the first step (exactly, in int64) and each
    segment is centred on its own means, so steps of 1e9 and values with large offsets
    keep full precision.
    Cost: O(n) time (three passes per segment), O(k) extra memory.
    Matches: numpy.polyfit(x, y, 1) for slope/intercept and scipy.stats.linregress /
    statsmodels OLS for slope, intercept and their standard errors, per segment.
    """
    y = _as_values(values, "segment_fit")
    n = y.shape[0]
    x, step0 = _as_steps(steps, "segment_fit", n)
    b = np.asarray(breakpoints)
    if b.ndim != 1:
        raise ValueError(f"segment_fit: breakpoints must be 1-D, got shape {b.shape}")
    if b.size and not np.issubdtype(b.dtype, np.integer):
        if not np.all(np.isfinite(b)) or np.any(b != np.round(b)):
            raise ValueError(f"segment_fit: breakpoints must be integers, got {b[:5]!r}")
    ends = np.ascontiguousarray(b, dtype=np.int64)
    if n == 0 and ends.size == 0:
        return np.zeros((0, 7))
    if ends.size == 0 or ends[-1] != n:
        raise ValueError(f"segment_fit: the last breakpoint must equal len(values) = {n} "
                         f"(ruptures' convention), got {ends[-1:]!r}")
    bad = np.flatnonzero(np.diff(np.r_[0, ends]) <= 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"segment_fit: breakpoints must be strictly increasing and "
                         f"positive; breakpoint {i} is {int(ends[i])}")
    out = np.empty((ends.shape[0], 7))
    _segment_fit_core(x, y, ends, step0, out)
    return out


# ---------------------------------------------------------------------------------
# Mann-Kendall

class MannKendall(NamedTuple):
    """Mann-Kendall trend test of values against their order (time)."""
    s: int        # S = concordant - discordant pairs (pairs (i<j) with x_j > x_i minus x_j < x_i)
    var_s: float  # variance of S under no trend, with the tie correction
    z: float      # (S - sign(S)) / sqrt(var_s) with continuity=True, else S / sqrt(var_s)
    p: float      # two-sided p-value, erfc(|z| / sqrt(2))


_INSERTION_BLOCK = 32


@njit(cache=True, nogil=True)
def _inversions_core(x, buf):
    """Sort x in place (ascending, result left in x) and return the number of pairs
    i < j with x[i] > x[j] strictly: equal values are taken from the left run first,
    so ties are never counted as discordant."""
    n = x.shape[0]
    inv = 0
    # insertion sort of small blocks: each shift is exactly one strict inversion
    for lo in range(0, n, _INSERTION_BLOCK):
        hi = min(lo + _INSERTION_BLOCK, n)
        for i in range(lo + 1, hi):
            v = x[i]
            j = i - 1
            while j >= lo and x[j] > v:
                x[j + 1] = x[j]
                j -= 1
            x[j + 1] = v
            inv += i - 1 - j
    src = x
    dst = buf
    in_buf = False
    width = _INSERTION_BLOCK
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            k = lo
            if mid < hi and src[mid - 1] <= src[mid]:
                # already in order: the whole run pair is concordant
                for t in range(lo, hi):
                    dst[t] = src[t]
                continue
            # branch-free merge (a select instead of a jump): noisy curves make the
            # comparison unpredictable; ties go left, so equal values are not inversions
            while i < mid and j < hi:
                a = src[i]
                b = src[j]
                r = 1 if b < a else 0
                dst[k] = b if r else a
                inv += (mid - i) * r
                j += r
                i += 1 - r
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
        tmp = src
        src = dst
        dst = tmp
        in_buf = not in_buf
        width *= 2
    if in_buf:
        for t in range(n):
            x[t] = buf[t]
    return inv


@njit(cache=True, nogil=True)
def _tie_terms_core(sorted_x):
    """(sum t(t-1)/2, sum t(t-1)(2t+5)) over groups of equal values in a sorted array.
    The second term overflows int64 near n = 1.7e6 per group, so it is float64."""
    n = sorted_x.shape[0]
    pairs = 0
    vterm = 0.0
    i = 0
    while i < n:
        j = i + 1
        while j < n and sorted_x[j] == sorted_x[i]:
            j += 1
        t = j - i
        if t > 1:
            pairs += t * (t - 1) // 2
            ft = float(t)
            vterm += ft * (ft - 1.0) * (2.0 * ft + 5.0)
        i = j
    return pairs, vterm


def _mk_parts(values, name):
    """(n, S, tied pairs, variance of S) over the non-NaN values."""
    v = _as_values(values, name)
    x = v[~np.isnan(v)]  # boolean indexing copies: the sort below must not touch the input
    n = x.shape[0]
    if n < 2:
        return n, 0, 0, 0.0
    buf = np.empty_like(x)
    dis = _inversions_core(x, buf)
    ties, vterm = _tie_terms_core(x)
    total = n * (n - 1) // 2
    s = total - ties - 2 * dis
    fn = float(n)
    var_s = (fn * (fn - 1.0) * (2.0 * fn + 5.0) - vterm) / 18.0
    return n, int(s), int(ties), max(var_s, 0.0)


def mann_kendall(values, *, continuity: bool = True) -> MannKendall:
    """Mann-Kendall trend test: is the curve monotonically rising or falling?

    S = sum over i < j of sign(values[j] - values[i]); var(S) = [n(n-1)(2n+5) -
    sum_t t(t-1)(2t+5)] / 18 with t the sizes of groups of tied values; z = (S - sign(S))
    / sqrt(var(S)) with the usual continuity correction (continuity=False: z = S /
    sqrt(var(S))); p = two-sided normal p-value. Returns MannKendall(s, var_s, z, p).

    NaN/Inf: NaN values are dropped (the order of the others is kept); +Inf and -Inf
    are kept as the largest and smallest values (a divergence to +Inf is a rise).
    Fewer than two values, or all values tied, give S = 0 and z = p = NaN (undefined).
    Cost: O(n log n) time (merge sort counting inversions), two float64 copies of the
    input. The input is not modified.
    Matches: with continuity=False, z and p equal scipy.stats.kendalltau(np.arange(n),
    values, method='asymptotic') (tau-b; `kendall_tau` gives tau), which has no
    continuity correction; with the default the classical Mann (1945) / Kendall test as
    pymannkendall.original_test computes it.
    """
    n, s, _, var_s = _mk_parts(values, "mann_kendall")
    if n < 2 or var_s <= 0.0:
        return MannKendall(s, var_s, math.nan, math.nan)
    num = float(s)
    if continuity and s != 0:
        num = num - 1.0 if s > 0 else num + 1.0
    z = num / math.sqrt(var_s)
    p = math.erfc(abs(z) / math.sqrt(2.0))
    return MannKendall(s, var_s, z, p)


def kendall_tau(values) -> tuple[float, float]:
    """Kendall's tau-b of values against time and its asymptotic two-sided p-value.

    Equal to scipy.stats.kendalltau(np.arange(n), values, method='asymptotic') after
    dropping NaN (scipy would propagate it). NaN/Inf and cost as mann_kendall. tau-b
    = S / sqrt(n0 * (n0 - n_tied)) with n0 = n(n-1)/2 (time has no ties). Undefined
    (fewer than two values, or all tied): (NaN, NaN).
    """
    n, s, ties, var_s = _mk_parts(values, "kendall_tau")
    total = n * (n - 1) // 2
    if n < 2 or ties == total or var_s <= 0.0:
        return math.nan, math.nan
    tau = s / math.sqrt(float(total)) / math.sqrt(float(total - ties))
    tau = min(1.0, max(-1.0, tau))
    z = s / math.sqrt(var_s)
    return tau, math.erfc(abs(z) / math.sqrt(2.0))


# ---------------------------------------------------------------------------------
# Theil-Sen

class TheilSen(NamedTuple):
    """Theil-Sen line; the fields and their order are scipy.stats.theilslopes'."""
    slope: float
    intercept: float   # median(values) - slope * median(steps), scipy's 'separate'
    low_slope: float   # confidence interval of the slope (Sen 1968, eq. 2.6)
    high_slope: float
    n: int             # points used (after dropping non-finite ones and subsampling)


def _norm_ppf(p: float) -> float:
    """Inverse standard normal CDF: Acklam's rational approximation polished by Newton
    steps on math.erfc (no scipy in kernels); agrees with scipy.stats.norm.ppf to ~1e-15."""
    if not 0.0 < p < 1.0:
        return -math.inf if p <= 0.0 else math.inf
    if p > 0.5:
        # 1 - p is exact here (Sterbenz); Newton on the upper tail would lose digits
        return -_norm_ppf(1.0 - p)
    a = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
         1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
    b = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
         6.680131188771972e+01, -1.328068155288572e+01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
         -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
         3.754408661907416e+00)
    lo = 0.02425
    if p < lo:
        q = math.sqrt(-2.0 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)
    elif p <= 1.0 - lo:
        q = p - 0.5
        r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
    else:
        q = math.sqrt(-2.0 * math.log1p(-p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)
    for _ in range(3):
        err = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
        x -= err * math.sqrt(2.0 * math.pi) * math.exp(0.5 * x * x)
    return x


@njit(cache=True, nogil=True)
def _pair_slopes_core(x, y, out):
    """All slopes (y_j - y_i) / (x_j - x_i) over pairs with distinct x; returns the count.
    IEEE negation is exact, so this equals scipy's slope over the pair ordered by x."""
    n = x.shape[0]
    k = 0
    for i in range(n):
        xi = x[i]
        yi = y[i]
        for j in range(i + 1, n):
            dx = x[j] - xi
            if dx != 0.0:
                out[k] = (y[j] - yi) / dx
                k += 1
    return k


def _tie_sum(a: np.ndarray) -> float:
    _, counts = np.unique(a, return_counts=True)
    k = counts[counts > 1].astype(np.float64)
    return float(np.sum(k * (k - 1.0) * (2.0 * k + 5.0)))


def theil_sen(steps, values, *, max_points: int = 2000, confidence: float = 0.95) -> TheilSen:
    """Theil-Sen robust line: the median of all pairwise slopes.

    Returns TheilSen(slope, intercept, low_slope, high_slope, n). intercept =
    median(values) - slope * median(steps) (scipy's method='separate'); low/high_slope
    is Sen's (1968) `confidence` interval of the slope (`confidence` is scipy's `alpha`,
    renamed because alpha means a significance level elsewhere).

    Subsampling: when more than `max_points` usable points remain, the fit uses the
    deterministic, evenly spaced subsample of positions round(linspace(0, m-1,
    max_points)) of the usable points (first and last always included), so the same
    curve always gives the same line.
    NaN/Inf: points with a non-finite step or value are dropped. Fewer than two usable
    points, or all at one step, give NaN for everything (n still reported).
    Cost: O(p^2) time and memory with p = min(n, max_points) (2e6 slopes at the
    default), O(n) for the subsample.
    Matches: scipy.stats.theilslopes(values, steps, alpha=confidence) exactly (same
    slopes, medians and order statistics) when n <= max_points and all finite.
    """
    if int(max_points) != max_points or max_points < 2:
        raise ValueError(f"theil_sen: max_points must be an integer >= 2, got {max_points!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"theil_sen: confidence must be in (0, 1), got {confidence!r}")
    y = _as_values(values, "theil_sen")
    n = y.shape[0]
    s = np.asarray(steps)
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"theil_sen: steps must be 1-D with the same length as values "
                         f"({n}), got shape {s.shape}")
    x = np.asarray(s, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x = x[keep]
    y = y[keep]
    m = x.shape[0]
    if m > max_points:
        idx = np.round(np.linspace(0.0, m - 1.0, int(max_points))).astype(np.int64)
        x = x[idx]
        y = y[idx]
        m = x.shape[0]
    x = np.ascontiguousarray(x)
    y = np.ascontiguousarray(y)
    nan = math.nan
    if m < 2:
        return TheilSen(nan, nan, nan, nan, m)
    slopes = np.empty(m * (m - 1) // 2)
    nt = _pair_slopes_core(x, y, slopes)
    if nt == 0:
        return TheilSen(nan, nan, nan, nan, m)
    slopes = slopes[:nt]
    alpha = 1.0 - confidence if confidence > 0.5 else confidence
    z = _norm_ppf(alpha / 2.0)
    sigsq = (m * (m - 1.0) * (2.0 * m + 5.0) - _tie_sum(x) - _tie_sum(y)) / 18.0
    kth = [(nt - 1) // 2, nt // 2]
    ci = None
    if sigsq >= 0.0:
        sigma = math.sqrt(sigsq)
        ru = min(int(round((nt - z * sigma) / 2.0)), nt - 1)
        rl = max(int(round((nt + z * sigma) / 2.0)) - 1, 0)
        # scipy indexes the sorted slopes; an index past the end there raises -> NaN
        if 0 <= ru < nt and 0 <= rl < nt:
            ci = (rl, ru)
            kth += [rl, ru]
    part = np.partition(slopes, sorted(set(kth)))
    slope = 0.5 * (part[(nt - 1) // 2] + part[nt // 2])
    intercept = float(np.median(y) - slope * np.median(x))
    low, high = (float(part[ci[0]]), float(part[ci[1]])) if ci else (nan, nan)
    return TheilSen(float(slope), intercept, low, high, m)


# ---------------------------------------------------------------------------------
# power law with floor

POWER_LAW_STATUS = (
    "ok",
    "too few points (need 4 usable points with step > 0 at 3 or more distinct steps)",
    "not decreasing (the best fit has A <= 0: flat or rising curve)",
    "alpha at the edge of its search range (no interior optimum: not power-law shaped)",
    "numerical failure (singular Jacobian or non-finite fit)",
)


class PowerLawFit(NamedTuple):
    """L(t) = l_inf + a * t**(-alpha), fitted by fit_power_law."""
    l_inf: float        # the asymptote (floor); unconstrained in sign
    a: float            # amplitude, > 0 when converged
    alpha: float        # decay exponent, inside alpha_bounds when converged
    l_inf_se: float     # standard errors from s^2 (J^T W J)^-1 at the optimum
    a_se: float
    alpha_se: float
    residual_sd: float  # sqrt(weighted RSS / (bins - 3)): the per-point noise sd
    n: int              # usable points (finite, step > 0)
    n_bins: int         # points actually fitted (= n when n <= max_points)
    converged: bool     # status == 0; when False do not trust the numbers
    status: int         # index into POWER_LAW_STATUS
    cov: np.ndarray     # 3x3 covariance of (l_inf, a, alpha); NaN when undefined


@njit(cache=True, nogil=True)
def _usable_range_core(t, y):
    """(count, min t, max t) over points with finite t and y and t > 0."""
    m = 0
    lo = np.inf
    hi = -np.inf
    for i in range(t.shape[0]):
        ti = t[i]
        if np.isfinite(ti) and np.isfinite(y[i]) and ti > 0.0:
            m += 1
            if ti < lo:
                lo = ti
            if ti > hi:
                hi = ti
    return m, lo, hi


@njit(cache=True, nogil=True)
def _log_bins_core(t, y, t0_log, width, nbins, sum_t, sum_y, cnt):
    """Accumulate the usable points into log-spaced bins [t0_log + b*width, ...):
    one pass over the raw arrays, no filtered copies (10^7 points: no 240 MB of masks)."""
    for i in range(t.shape[0]):
        ti = t[i]
        if np.isfinite(ti) and np.isfinite(y[i]) and ti > 0.0:
            b = int((math.log(ti) - t0_log) / width) if width > 0.0 else 0
            if b >= nbins:
                b = nbins - 1
            if b < 0:
                b = 0
            sum_t[b] += ti
            sum_y[b] += y[i]
            cnt[b] += 1.0


@njit(cache=True, nogil=True)
def _vp_eval(logt, y, w, alpha, u):
    """For fixed alpha the model is linear in (l_inf, a): weighted least squares of y on
    u = t^-alpha. Returns (rss, l_inf, a); u is filled. Centred sums: the raw normal
    equations lose the fit when u varies little (alpha small)."""
    m = logt.shape[0]
    sw = 0.0
    su = 0.0
    sy = 0.0
    for i in range(m):
        ui = math.exp(-alpha * logt[i])
        u[i] = ui
        sw += w[i]
        su += w[i] * ui
        sy += w[i] * y[i]
    ubar = su / sw
    ybar = sy / sw
    suu = 0.0
    suy = 0.0
    for i in range(m):
        du = u[i] - ubar
        suu += w[i] * du * du
        suy += w[i] * du * (y[i] - ybar)
    if not suu > 0.0:
        return np.inf, np.nan, np.nan
    a = suy / suu
    c = ybar - a * ubar
    rss = 0.0
    for i in range(m):
        r = y[i] - c - a * u[i]
        rss += w[i] * r * r
    return rss, c, a


@njit(cache=True, nogil=True)
def _fit_power_law_core(logt, y, w, log_lo, log_hi, grid, out, jtj):
    """Variable projection: grid + golden-section search over log(alpha) of the
    projected RSS, then Gauss-Newton polish of all three parameters.
    out = [l_inf, a, alpha, rss, edge_flag]; jtj = J^T W J at the result."""
    m = logt.shape[0]
    u = np.empty(m)
    best = np.inf
    gbest = -1
    step = (log_hi - log_lo) / (grid - 1)
    for g in range(grid):
        r, c, a = _vp_eval(logt, y, w, math.exp(log_lo + g * step), u)
        if r < best:
            best = r
            gbest = g
    out[4] = 0.0
    if gbest < 0:
        out[0] = np.nan
        out[1] = np.nan
        out[2] = np.nan
        out[3] = np.inf
        return
    lo = log_lo + max(gbest - 1, 0) * step
    hi = log_lo + min(gbest + 1, grid - 1) * step
    invphi = (math.sqrt(5.0) - 1.0) / 2.0
    x1 = hi - invphi * (hi - lo)
    x2 = lo + invphi * (hi - lo)
    f1 = _vp_eval(logt, y, w, math.exp(x1), u)[0]
    f2 = _vp_eval(logt, y, w, math.exp(x2), u)[0]
    for _ in range(200):
        if hi - lo < 1e-11:
            break
        if f1 <= f2:
            hi = x2
            x2 = x1
            f2 = f1
            x1 = hi - invphi * (hi - lo)
            f1 = _vp_eval(logt, y, w, math.exp(x1), u)[0]
        else:
            lo = x1
            x1 = x2
            f1 = f2
            x2 = lo + invphi * (hi - lo)
            f2 = _vp_eval(logt, y, w, math.exp(x2), u)[0]
    la = 0.5 * (lo + hi)
    if la - log_lo < 1e-6 * (log_hi - log_lo) or log_hi - la < 1e-6 * (log_hi - log_lo):
        out[4] = 1.0
    alpha = math.exp(la)
    rss, c, a = _vp_eval(logt, y, w, alpha, u)
    # Gauss-Newton on (c, a, alpha): at the projected optimum this moves little, but it
    # makes the three-parameter stationarity exact and gives J at the solution.
    for _ in range(20):
        g0 = 0.0
        g1 = 0.0
        g2 = 0.0
        h00 = 0.0
        h01 = 0.0
        h02 = 0.0
        h11 = 0.0
        h12 = 0.0
        h22 = 0.0
        for i in range(m):
            ui = math.exp(-alpha * logt[i])
            j2 = -a * ui * logt[i]
            r = y[i] - c - a * ui
            wi = w[i]
            g0 += wi * r
            g1 += wi * ui * r
            g2 += wi * j2 * r
            h00 += wi
            h01 += wi * ui
            h02 += wi * j2
            h11 += wi * ui * ui
            h12 += wi * ui * j2
            h22 += wi * j2 * j2
        # solve the 3x3 normal equations by Cramer's rule on a Jacobi-scaled system
        d0 = math.sqrt(h00) if h00 > 0 else 1.0
        d1 = math.sqrt(h11) if h11 > 0 else 1.0
        d2 = math.sqrt(h22) if h22 > 0 else 1.0
        a00 = 1.0
        a11 = 1.0
        a22 = 1.0
        a01 = h01 / (d0 * d1)
        a02 = h02 / (d0 * d2)
        a12 = h12 / (d1 * d2)
        b0 = g0 / d0
        b1 = g1 / d1
        b2 = g2 / d2
        det = (a00 * (a11 * a22 - a12 * a12) - a01 * (a01 * a22 - a12 * a02)
               + a02 * (a01 * a12 - a11 * a02))
        if not abs(det) > 1e-14:
            break
        s0 = (b0 * (a11 * a22 - a12 * a12) - a01 * (b1 * a22 - a12 * b2)
              + a02 * (b1 * a12 - a11 * b2)) / det
        s1 = (a00 * (b1 * a22 - b2 * a12) - b0 * (a01 * a22 - a12 * a02)
              + a02 * (a01 * b2 - b1 * a02)) / det
        s2 = (a00 * (a11 * b2 - a12 * b1) - a01 * (a01 * b2 - b1 * a02)
              + b0 * (a01 * a12 - a11 * a02)) / det
        dc = s0 / d0
        da = s1 / d1
        dal = s2 / d2
        accepted = False
        lam = 1.0
        for _h in range(30):
            nc = c + lam * dc
            na = a + lam * da
            nal = alpha + lam * dal
            if nal > 0.0:
                nr = 0.0
                for i in range(m):
                    r = y[i] - nc - na * math.exp(-nal * logt[i])
                    nr += w[i] * r * r
                if nr <= rss:
                    accepted = True
                    break
            lam *= 0.5
        if not accepted:
            break
        small = (abs(lam * dal) <= 1e-14 * abs(alpha)
                 and abs(lam * da) <= 1e-14 * abs(a)
                 and abs(lam * dc) <= 1e-14 * max(abs(c), abs(a)))
        c = nc
        a = na
        alpha = nal
        rss = nr
        if small:
            break
    for p in range(3):
        for q in range(3):
            jtj[p, q] = 0.0
    for i in range(m):
        ui = math.exp(-alpha * logt[i])
        j2 = -a * ui * logt[i]
        wi = w[i]
        jtj[0, 0] += wi
        jtj[0, 1] += wi * ui
        jtj[0, 2] += wi * j2
        jtj[1, 1] += wi * ui * ui
        jtj[1, 2] += wi * ui * j2
        jtj[2, 2] += wi * j2 * j2
    jtj[1, 0] = jtj[0, 1]
    jtj[2, 0] = jtj[0, 2]
    jtj[2, 1] = jtj[1, 2]
    out[0] = c
    out[1] = a
    out[2] = alpha
    out[3] = rss


def _log_bin(t: np.ndarray, y: np.ndarray, max_points: int):
    """(bin mean step, bin mean value, count) over max_points log-spaced bins of the
    usable points' [min t, max t] (finite t and y, t > 0), empty bins removed."""
    t = np.ascontiguousarray(t, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    m, tmin, tmax = _usable_range_core(t, y)
    sum_t = np.zeros(max_points)
    sum_y = np.zeros(max_points)
    cnt = np.zeros(max_points)
    if m:
        lo = math.log(tmin)
        _log_bins_core(t, y, lo, (math.log(tmax) - lo) / max_points, max_points, sum_t, sum_y, cnt)
    keep = cnt > 0
    return sum_t[keep] / cnt[keep], sum_y[keep] / cnt[keep], cnt[keep]


def fit_power_law(steps, values, *, max_points: int = 2000,
                  alpha_bounds: tuple[float, float] = (1e-3, 10.0)) -> PowerLawFit:
    """Fit L(t) = l_inf + a * t**(-alpha) (a > 0, alpha > 0, l_inf free) to a
    decreasing curve by least squares, for its asymptote and the gain more training
    would bring.

    Data: t = steps; points with a non-finite step or value, or step <= 0, are dropped
    (t**-alpha needs t > 0: pass step + 1 if the log counts from 0). When more than
    `max_points` points remain, they are averaged in `max_points` log-spaced bins of t
    (empty ones dropped) and bin b is fitted at (mean t, mean value) with weight =
    its point count; so the fit approximates the least-squares fit to all points, and
    residual_sd estimates the per-point noise sd. Otherwise all points, weight 1.
    Method: variable projection. For fixed alpha the model is linear in (l_inf, a), so
    the residual sum of squares is a function of alpha alone: it is minimised over
    log(alpha) in alpha_bounds (a 100-point grid, then golden section), and a
    Gauss-Newton polish runs on all three parameters. Standard errors and cov are the
    classical s^2 (J^T W J)^-1 at the optimum, s^2 = weighted RSS / (bins - 3).
    Not converged (converged=False, status > 0, see POWER_LAW_STATUS): fewer than 4
    usable points or 3 distinct steps (all numbers NaN); best fit with a <= 0 (flat or
    rising curve); alpha at the edge of alpha_bounds; singular Jacobian. Numbers are
    the best fit found in those cases and must not be trusted.
    Cost: O(n) for binning plus O(max_points) per alpha evaluation (about 150).
    Matches: scipy.optimize.curve_fit(lambda t, c, a, k: c + a * t**-k, t, y,
    sigma=1/sqrt(count)) on the same (binned) points, when curve_fit converges to the
    global optimum (its parameters, and pcov for our cov).
    """
    if int(max_points) != max_points or max_points < 4:
        raise ValueError(f"fit_power_law: max_points must be an integer >= 4, got {max_points!r}")
    lo_a, hi_a = (float(v) for v in alpha_bounds)
    if not (0.0 < lo_a < hi_a < math.inf):
        raise ValueError(f"fit_power_law: alpha_bounds must be 0 < low < high < inf, "
                         f"got {alpha_bounds!r}")
    y = _as_values(values, "fit_power_law")
    n = y.shape[0]
    s = np.asarray(steps)
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"fit_power_law: steps must be 1-D with the same length as "
                         f"values ({n}), got shape {s.shape}")
    t = np.ascontiguousarray(s, dtype=np.float64)
    m = _usable_range_core(t, y)[0]
    nan = math.nan
    nan_cov = np.full((3, 3), nan)
    if m < 4:
        return PowerLawFit(nan, nan, nan, nan, nan, nan, nan, m, 0, False, 1, nan_cov)
    if m > max_points:
        tb, yb, wb = _log_bin(t, y, int(max_points))
    else:
        keep = np.isfinite(t) & np.isfinite(y) & (t > 0)
        tb, yb, wb = t[keep], y[keep], np.ones(m)
    nb = tb.shape[0]
    if nb < 4 or np.unique(tb).size < 3:
        return PowerLawFit(nan, nan, nan, nan, nan, nan, nan, m, nb, False, 1, nan_cov)
    logt = np.ascontiguousarray(np.log(tb))
    yb = np.ascontiguousarray(yb)
    wb = np.ascontiguousarray(wb)
    out = np.empty(5)
    jtj = np.empty((3, 3))
    _fit_power_law_core(logt, yb, wb, math.log(lo_a), math.log(hi_a), 100, out, jtj)
    c, a, alpha, rss, edge = out
    status = 0
    cov = nan_cov
    s2 = rss / (nb - 3) if math.isfinite(rss) else nan
    if not (math.isfinite(c) and math.isfinite(a) and math.isfinite(alpha)):
        status = 4
    else:
        scale = np.sqrt(np.diag(jtj))
        if np.all(scale > 0) and np.all(np.isfinite(jtj)):
            scaled = jtj / np.outer(scale, scale)
            if np.linalg.cond(scaled) < 1e15:
                cov = s2 * np.linalg.inv(scaled) / np.outer(scale, scale)
        if not a > 0.0:
            status = 2
        elif edge:
            status = 3
        elif not np.all(np.isfinite(cov)):
            status = 4
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None)) if np.all(np.isfinite(cov)) else (nan,) * 3
    return PowerLawFit(float(c), float(a), float(alpha), float(se[0]), float(se[1]),
                       float(se[2]), math.sqrt(s2) if s2 >= 0 else nan, m, nb,
                       status == 0, status, cov)


def power_law_predict(params, steps, *, return_se: bool = False):
    """Evaluate l_inf + a * t**(-alpha) at `steps` (t > 0; other steps give NaN).

    `params` is a PowerLawFit or a tuple (l_inf, a, alpha). With return_se=True (needs
    a PowerLawFit) also returns the delta-method standard error of the fitted curve at
    each step, sqrt(g^T cov g) with g = (1, t^-alpha, -a t^-alpha ln t).
    """
    c, a, alpha = (float(v) for v in tuple(params)[:3])
    t = np.asarray(steps, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tt = np.where(t > 0, t, np.nan)
        u = tt ** (-alpha)
        pred = c + a * u
        if not return_se:
            return pred
        if not isinstance(params, PowerLawFit):
            raise ValueError("power_law_predict: return_se=True needs a PowerLawFit "
                             "(it carries the covariance)")
        g = np.stack([np.ones_like(u), u, -a * u * np.log(tt)], axis=-1)
        var = np.einsum("...i,ij,...j->...", g, params.cov, g)
        return pred, np.sqrt(np.clip(var, 0.0, None))


def extrapolation_gain(params: PowerLawFit, step_now: float, step_future: float) -> tuple[float, float]:
    """Expected drop of the fitted curve from step_now to step_future, and its standard
    error: gain = a * (step_now**-alpha - step_future**-alpha) (> 0 means the loss is
    expected to fall further), se by the delta method from the fit's covariance,
    g = (0, now^-alpha - future^-alpha, a * (ln(future) future^-alpha - ln(now) now^-alpha)).
    A non-converged fit gives (NaN, NaN): an unfitted curve promises nothing.
    """
    if not 0 < step_now <= step_future < math.inf:
        raise ValueError(f"extrapolation_gain: need 0 < step_now <= step_future < inf, "
                         f"got {step_now!r}, {step_future!r}")
    if not isinstance(params, PowerLawFit):
        raise ValueError("extrapolation_gain: params must be a PowerLawFit")
    if not params.converged:
        return math.nan, math.nan
    a, alpha = params.a, params.alpha
    un = float(step_now) ** (-alpha)
    uf = float(step_future) ** (-alpha)
    gain = a * (un - uf)
    g = np.array([0.0, un - uf, a * (math.log(step_future) * uf - math.log(step_now) * un)])
    var = float(g @ params.cov @ g)
    return gain, math.sqrt(max(var, 0.0))
