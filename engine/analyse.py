"""Per-curve analysis: features, segments and spikes of every (run, metric).

``analyse_curve`` turns one curve (steps, values) into one features row, a list of
segments and a list of spikes; ``analyse_run`` does it for every metric of a long
curves frame and returns polars frames shaped like ``schemas.FEATURES``,
``schemas.SEGMENTS`` and ``schemas.SPIKES``. Rules read those tables, never raw arrays.

Decisions (and why):

- Non-finite values are evidence: they are counted (``n_nonfinite``,
  ``first_nonfinite_step``, extra ``n_nan``/``n_posinf``/``n_neginf``/``nonfinite_tail``)
  and then removed; every other figure is computed on the finite points.
- Long curves are block-averaged before the expensive steps. The *working series* is
  the finite points themselves when there are at most ``work_points`` of them, else
  means of equal-count blocks (block size in extra ``block_size``). Noise, spikes,
  counts and extremes use every point; changepoints, segment slopes, the tail test and
  the smoother use the working series. Block means also damp the autocorrelation of
  training noise, which keeps HAC standard errors honest.
- Uneven steps: changepoints are found in index space on the working series (PELT with a
  piecewise-linear cost), then every slope is fitted against the real steps, so an eval
  curve logged at steps 100, 200, 400, 800 gets per-step slopes. Breakpoints are mapped
  back to real logged steps.
- The PELT penalty comes from the noise of the working series:
  ``penalty_factor * sigma_w**2 * log(n_w) * (1 + rho) / (1 - rho)``, sigma_w the larger
  of the difference-based and the residual-based robust sd and rho the lag-1
  autocorrelation of the residuals (clipped to [0, 0.9]): autocorrelated training noise
  makes wiggles that a white-noise penalty would cut into segments.
- Segments are classified by an equivalence test: a segment is a **plateau** when the
  95% confidence interval of its projected change (slope x length, HAC/Newey-West
  standard error from statsmodels) lies inside +/- band, band = max(plateau_noise x the
  segment's residual noise, plateau_rel x the curve's total change); otherwise
  **descent** or **ascent** by the sign of the slope (in value terms: a rising accuracy
  is an ascent; rules combine ``kind`` with the metric's direction). Adjacent plateaus
  are merged unless a level shift separates them; adjacent descents (ascents) only when
  their slopes agree within ci_z combined standard errors as well.
- Level shifts: at each breakpoint, the jump between the two fitted lines at the
  boundary, in noise units; those above ``shift_noise`` are listed in extra ``shifts``
  (step, delta, delta_noise, and delta_spread: the jump in units of the robust spread
  of the raw points around the two fitted lines, which includes a slow AR wander that
  the residual noise around the smoother hides; and delta_z: the jump over the
  Newey-West standard error of the two lines' values at the boundary, which a step of the
  level passes by far and two lines fitted through autocorrelated wander do not).
- After the best (extra ``after_best_points``, ``after_best_slope``,
  ``after_best_slope_se``, ``after_best_mean``): an OLS line through the raw points after
  the best step, the best itself left out (a gold reward that turned over late declines
  at a rate the end-vs-best comparison cannot see yet).
- Noise-level changepoint (extra ``noise_change_step``, ``noise_change_ratio``, from 40
  finite points): the one split of log|first differences| with the largest mean change,
  and the ratio of typical |differences| after/before (where a loss starts swinging).
- Long curves (10^7 points in a few seconds): whole-curve medians come from
  kernels.spikes.median_exact (np.median's value in one streaming pass), the spike
  search input from kernels.spikes.detrended_noise_units (one pass, nothing stored), the
  spike search screens points by cheap lower bounds (kernels.spikes.find_spikes), and
  n-sized temporaries are avoided (each costs its page faults). Every fast path gives
  the same numbers as the plain one (tests/test_analyse.py patches the plain kernels in).
- Spikes come from ``kernels.spikes.find_spikes`` on all finite points, in the bad
  direction (up for losses, down for accuracies and rewards, up when direction is none,
  e.g. grad_norm); recovery class fast when recovered within
  max(fast_points x spacing, fast_rel x span) steps, slow when later, never otherwise.
- Best value and step use a Gaussian-smoothed working series (the raw minimum of a
  noisy curve is an outlier, not a checkpoint); raw ones are in extra.
- The power law L(t) = l_inf + a t^-alpha is fitted (kernels.trend.fit_power_law) after
  the first ``fit_skip_rel`` of the span (warmup); for direction max it is fitted to
  -values and reported back in value units (so fit_a < 0 and fit_l_inf is the ceiling).
  expected_gain_rel = fitted improvement from the last step to ``gain_factor`` x the
  last step, divided by |final value|; its standard error is in extra.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields

import numpy as np

from kernels import changepoints as _cp
from kernels import noise as _noise
from kernels import smoothing as _smooth
from kernels import spikes as _spikes
from kernels import trend as _trend
from schemas import FEATURES, SEGMENTS, SPIKES

MAD_TO_SD = 1.4826
_DIRECTIONS = ("min", "max", "none")


@dataclass(frozen=True)
class AnalysisParams:
    work_points: int = 2000  # working-series size above which points are block-averaged
    min_points_segments: int = 8  # fewer finite points: one segment, no changepoints
    min_points_spikes: int = 20  # fewer finite points: no spike search
    min_points_fit: int = 6  # fewer: no power-law fit
    penalty_factor: float = 6.0  # PELT penalty = factor * sigma_w^2 * log(n_w)
    min_size_rel: float = 0.03  # shortest segment, as a share of the working series...
    min_size_points: int = 4  # ...and in points
    plateau_noise: float = 2.0  # plateau band in residual-noise units...
    plateau_rel: float = 0.005  # ...or as a share of the curve's total change, whichever is larger
    ci_z: float = 1.96  # two-sided 95% interval for the equivalence test
    shift_noise: float = 4.0  # a jump at a breakpoint above this many noise units is a level shift...
    min_shift_points: int = 8  # ...when both sides hold at least this many raw points
    spike_window: int = 101
    spike_threshold_z: float = 8.0  # in local noise units (difference-based: below the marginal sd on AR noise)
    baseline_window: int = 41  # centred rolling median the spike search detrends with (points)
    fast_points: int = 10  # fast recovery: within this many logged points...
    fast_rel: float = 0.005  # ...or this share of the span, whichever is larger
    smooth_rel: float = 0.005  # Gaussian sigma as a share of the span...
    smooth_points: float = 1.5  # ...and at least this many (working) spacings
    tail_rel: float = 0.25  # the tail is the last quarter of the finite points...
    tail_min_points: int = 4  # ...and needs this many working points
    fit_skip_rel: float = 0.02  # the power law is fitted after the first 2% of the span
    gain_factor: float = 2.0  # expected gain from the last step to gain_factor x last step
    near_best_noise: float = 2.0  # step_near_best: within this many noise units of best...
    near_best_rel: float = 0.01  # ...or this share of |best|, whichever is larger

    @classmethod
    def of(cls, params) -> "AnalysisParams":
        if params is None:
            return cls()
        if isinstance(params, cls):
            return params
        known = {f.name for f in fields(cls)}
        bad = sorted(set(params) - known)
        if bad:
            raise ValueError(f"analysis params: unknown key(s) {bad}; known: {sorted(known)}")
        return cls(**params)


# --------------------------------------------------------------------------- helpers


def _nan_row():
    row = {f.name: None for f in FEATURES}
    return row


def _f(x) -> float:
    """Python float, NaN for None."""
    return math.nan if x is None else float(x)


# Medians of whole curves (robust scales, noise) go through kernels.spikes.median_exact:
# the float np.median returns, from one streaming pass without building |x - med| or the
# differences (10x faster than np.median on 10^7 points, which copies and partitions).
_median = _spikes.median_exact


def _robust_sd(x: np.ndarray) -> float:
    if x.size < 2:
        return math.nan
    med = _median(x)
    return float(MAD_TO_SD * _median(x, center=med))


_NOISE_SCALE = _noise.NOISE_SCALE


def _mad_noise(x: np.ndarray) -> float:
    """kernels.noise.mad_noise of finite x (tested equal): NOISE_SCALE * MAD(diff(x)),
    with median_exact instead of the kernel's two compiled quickselects over a copy."""
    if x.size < 3:
        return math.nan
    med = _median(x, differences=True)
    return float(_NOISE_SCALE * _median(x, differences=True, center=med))


def _snr(x: np.ndarray, noise: float) -> float:
    """kernels.noise.signal_to_noise of finite x (tested equal), from a known noise:
    |median of the last tenth - median of the first tenth| / noise, IEEE on zero noise."""
    m = x.size
    if m < 3:
        return math.nan
    k = max(1, m // 10)
    change = abs(_median(x[m - k:]) - _median(x[:k]))
    if math.isnan(change) or math.isnan(noise):
        return math.nan
    if noise == 0.0:
        return math.nan if change == 0.0 else math.inf
    return change / noise


def _spacing(ds: np.ndarray) -> float:
    """np.median of integer step differences; evenly logged curves skip the selection."""
    if ds.size and ds[0] == ds[-1] and ds.min() == ds.max():
        return float(ds[0])
    return float(np.median(ds))


def _step_gaps(s: np.ndarray) -> tuple[bool, float]:
    """(every step above the one before, np.median(np.diff(s))) of int64 steps, from
    differences taken in cache-sized chunks (an n-array of them costs its page faults);
    the median needs the whole array only when the spacing is uneven."""
    n = s.size
    if n < 2:
        return True, math.nan
    lo_d = hi_d = int(s[1] - s[0])
    chunk = 1 << 20
    for a in range(0, n - 1, chunk):
        d = np.diff(s[a:a + chunk + 1])
        lo_d, hi_d = min(lo_d, int(d.min())), max(hi_d, int(d.max()))
    if lo_d == hi_d:
        return lo_d > 0, float(lo_d)
    return lo_d > 0, float(np.median(np.diff(s)))


def _blocks(s: np.ndarray, x: np.ndarray, target: int, sf: np.ndarray | None = None):
    """Equal-count block means of steps and values (last block may be shorter).
    sf: s as float64, when the caller has it already."""
    m = x.size
    if m <= target:
        return s.astype(np.float64), x.copy(), 1, np.arange(m + 1)
    size = int(math.ceil(m / target))
    starts = np.arange(0, m, size)
    counts = np.diff(np.r_[starts, m])
    ws = np.add.reduceat(s.astype(np.float64) if sf is None else sf, starts) / counts
    wx = np.add.reduceat(x, starts) / counts
    return ws, wx, size, np.r_[starts, m]


def _hac_line(t: np.ndarray, y: np.ndarray):
    """OLS line y ~ a + b t with a Newey-West (HAC) standard error of the slope.

    maxlags = max(Newey-West's 4 (n/100)^(2/9), 2 / (1 - rho1)) capped at n/3, rho1 the
    lag-1 autocorrelation of the OLS residuals: training noise is often strongly
    autocorrelated and the textbook lag underestimates the variance then.
    Returns (slope, slope_se, intercept_at_t_mean, residual_sd, rho1, intercept_se);
    NaNs when undefined.
    """
    n = t.size
    if n < 3 or np.ptp(t) == 0:
        if n == 2 and np.ptp(t) > 0:
            b = (y[1] - y[0]) / (t[1] - t[0])
            return float(b), math.nan, float(y.mean()), math.nan, math.nan, math.nan
        return math.nan, math.nan, float(y.mean()) if n else math.nan, math.nan, math.nan, math.nan
    tc = t - t.mean()
    sxx = float(tc @ tc)
    b = float(tc @ (y - y.mean())) / sxx
    resid = y - y.mean() - b * tc
    rss = float(resid @ resid)
    rsd = math.sqrt(rss / (n - 2)) if n > 2 else math.nan
    denom = float(resid @ resid)
    rho = float(resid[1:] @ resid[:-1]) / denom if denom > 0 else math.nan
    if rss == 0.0:
        return b, 0.0, float(y.mean()), 0.0, rho, 0.0
    # lazy and narrow: statsmodels.api imports every model (seconds per worker process)
    from statsmodels.regression.linear_model import OLS

    r = rho if math.isfinite(rho) else 0.0
    lags = max(int(4 * (n / 100.0) ** (2 / 9)), int(math.ceil(2.0 / max(1.0 - min(r, 0.98), 0.02))))
    lags = max(1, min(lags, n // 3))
    X = np.column_stack([np.ones(n), tc / (np.abs(tc).max() or 1.0)])
    res = OLS(y, X).fit(cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True})
    scale = np.abs(tc).max() or 1.0
    se = float(res.bse[1]) / scale
    return b, se, float(y.mean()), rsd, rho, float(res.bse[0])


def _after_best(s: np.ndarray, x: np.ndarray, best_step) -> dict:
    """OLS line through the raw points after the best step (the peak itself left out, so
    its selection does not bias the slope down): after_best_points, after_best_slope (per
    step, value units), after_best_slope_se (white-noise OLS error: meant for the few
    points of an eval curve, where a gold reward that turned over declines at a rate the
    end-vs-best comparison cannot see) and after_best_mean. Slope and SE are None with
    fewer than 3 points after the best."""
    if best_step is None:
        return dict(after_best_points=0, after_best_slope=None, after_best_slope_se=None, after_best_mean=None)
    k = _search(s, float(best_step) + 0.5)
    t, y = s[k:].astype(np.float64), x[k:]
    n = int(t.size)
    out = dict(after_best_points=n, after_best_slope=None, after_best_slope_se=None,
               after_best_mean=float(y.mean()) if n else None)
    if n >= 3 and np.ptp(t) > 0:
        tc = t - t.mean()
        sxx = float(tc @ tc)
        b = float(tc @ (y - y.mean())) / sxx
        r = y - y.mean() - b * tc
        out["after_best_slope"] = b
        out["after_best_slope_se"] = math.sqrt(float(r @ r) / (n - 2) / sxx)
    return out


def _search(s: np.ndarray, t: float) -> int:
    """np.searchsorted(s, t) (first index with s[k] >= t) for int64 steps s and a float t,
    without numpy's cast of the whole of s to float64 (an O(n) copy per call): for
    integers, s[k] >= t exactly when s[k] >= ceil(t)."""
    if math.isfinite(t) and abs(t) < 2.0 ** 53:  # beyond, numpy compares rounded floats
        return int(np.searchsorted(s, np.int64(math.ceil(t))))
    return int(np.searchsorted(s, t))


def _nearest_step(s: np.ndarray, t: float) -> int:
    k = _search(s, t)
    if k <= 0:
        return int(s[0])
    if k >= s.size:
        return int(s[-1])
    return int(s[k] if s[k] - t < t - s[k - 1] else s[k - 1])


# --------------------------------------------------------------------------- the analysis


def analyse_curve(steps, values, *, direction: str = "min", kind: str = "other", params=None):
    """Analyse one curve.

    steps: int64 training steps, strictly increasing (sorted here if they are not);
    values: float64 (NaN and +/-Inf allowed); direction: "min", "max" or "none";
    kind: the metric kind (loss, accuracy, grad_norm, ...; recorded, and accuracy-like
    kinds are not smoothed for the best value when short).

    Returns (features_row, segments, spikes): a dict with every FEATURES column but run
    and metric (``extra`` is a JSON string), a list of dicts (step_start, step_end, kind,
    slope, slope_se, level) and a list of dicts (step, value, height, recovery_steps,
    recovered, recovery_class). Never raises on NaN/Inf/short/constant curves.
    """
    p = AnalysisParams.of(params)
    if direction not in _DIRECTIONS:
        raise ValueError(f"analyse_curve: direction must be one of {_DIRECTIONS}, got {direction!r}")
    s_all = np.ascontiguousarray(steps, dtype=np.int64)
    v_all = np.ascontiguousarray(values, dtype=np.float64)
    if s_all.shape != v_all.shape or s_all.ndim != 1:
        raise ValueError(f"analyse_curve: steps and values must be 1-D of equal length, "
                         f"got {s_all.shape} and {v_all.shape}")
    increasing, spacing_all = _step_gaps(s_all)
    if not increasing:
        order = np.argsort(s_all, kind="stable")
        s_all, v_all = s_all[order], v_all[order]
        _, spacing_all = _step_gaps(s_all)
    sign = -1.0 if direction == "max" else 1.0  # oriented values: lower is better

    row = _nan_row()
    extra: dict = {}
    n = int(s_all.size)
    with np.errstate(over="ignore", invalid="ignore"):
        clean = math.isfinite(float(np.sum(v_all)))  # a finite sum: no NaN/Inf, no mask needed
    fin = None if clean else np.isfinite(v_all)
    n_nonfinite = 0 if clean else int(n - fin.sum())
    row.update(n_points=n, n_nonfinite=n_nonfinite, n_spikes=0, n_segments=0, fit_ok=False)
    if n_nonfinite:
        extra.update(n_nan=int(np.isnan(v_all).sum()), n_posinf=int(np.isposinf(v_all).sum()),
                     n_neginf=int(np.isneginf(v_all).sum()))
    else:
        extra.update(n_nan=0, n_posinf=0, n_neginf=0)
    extra.update(kind=kind, direction=direction)
    if n_nonfinite:
        k0 = int(np.argmin(fin))
        row["first_nonfinite_step"] = int(s_all[k0])
        extra["nonfinite_tail"] = bool(not fin[k0:].any())  # nothing finite after the first bad value
        extra["last_finite_step"] = int(s_all[fin][-1]) if fin.any() else None
    if n:
        row["step_first"], row["step_last"] = int(s_all[0]), int(s_all[-1])
        row["median_spacing"] = spacing_all if n > 1 else math.nan
    if n_nonfinite:
        s = s_all[fin]
        x = v_all[fin]
    else:  # no copies of a clean curve (x is copied before anything writes to it)
        s = s_all
        x = v_all
    m = int(x.size)
    extra["n_finite"] = m
    segments: list[dict] = []
    spikes: list[dict] = []
    if m == 0:
        row["extra"] = json.dumps(_clean(extra), sort_keys=True, allow_nan=False)
        return _finish(row), segments, spikes

    span = float(s[-1] - s[0])
    if m <= 1:
        spacing = math.nan
    elif n_nonfinite:
        spacing = _spacing(np.diff(s))
    else:
        spacing = row["median_spacing"]
    row["initial_value"] = float(x[0])
    row["final_step"] = int(s[-1])
    k_end = max(1, min(50, m // 20))
    row["final_value"] = float(np.median(x[-k_end:]))
    extra.update(min_value=float(x.min()), max_value=float(x.max()), span_steps=span)

    # ---- noise
    noise = _mad_noise(x) if m >= 3 else math.nan
    row["noise"] = noise
    row["snr"] = _snr(x, noise) if m >= 3 else math.nan
    if m >= 3:
        osc, acf1 = _noise.oscillation_index(x)
        row["oscillation"] = osc
        extra["diff_acf1"] = acf1
    q = max(3, m // 4)
    if m >= 12:
        extra["noise_head"] = _mad_noise(x[:q])
        extra["noise_tail"] = _mad_noise(x[-q:])
    if m >= 40:
        k_nc, ratio_nc = _noise_change(x)
        extra["noise_change_step"] = int(s[k_nc])
        extra["noise_change_ratio"] = ratio_nc

    # ---- spikes (on every point); recovered ones are then bridged by the rolling median
    # so that segments, smoother, tail and fit see the curve without its transients
    # (the raw values stay in x_raw for the raw extremes)
    x_raw = x
    if m >= p.min_points_spikes:
        spikes, ranges, base_at = _find_spikes(s, x, direction, p, span, spacing, noise)
        if ranges:
            x = x.copy()
            for a, b in ranges:  # a straight bridge between the levels around the event
                # the relaxation goes on past the recovery point (an exponential tail
                # within 2 noise units), so the bridge is twice the event's length
                rec = b
                b = min(m, b + (b - a))
                y0 = float(np.median(x_raw[max(0, a - 5):a])) if a > 0 else base_at[a]
                if b < m:
                    y1 = float(np.median(x_raw[b:b + 5]))
                    x[a:b] = np.linspace(y0, y1, b - a + 2)[1:-1]
                else:  # the doubled bridge runs past the end: end on the curve's last points
                    # (recovered there), not flat at the pre-spike level across a trend
                    y1 = float(np.median(x_raw[max(rec, m - 5):m]))
                    x[a:m] = np.linspace(y0, y1, m - a + 1)[1:]
    row["n_spikes"] = len(spikes)
    extra["n_spikes_never"] = sum(1 for sp in spikes if sp["recovery_class"] == "never")
    extra["max_spike_height"] = max((sp["height"] for sp in spikes), default=None)

    # ---- working series and smoother
    sf = s.astype(np.float64)  # steps as floats, once (block means, residuals, power law)
    ws, wx, block, bounds = _blocks(s, x, p.work_points, sf)
    nw = wx.size
    extra["block_size"] = block
    if nw >= 5:
        wspacing = float(np.median(np.diff(ws)))
        sigma = max(p.smooth_rel * span, p.smooth_points * wspacing)
        smooth = _smooth.gaussian_smooth(np.round(ws).astype(np.int64) if block == 1 else
                                         _strict_int_steps(ws), wx, sigma_steps=sigma)
    else:
        smooth = wx.copy()
    if nw >= 2:
        resid = np.interp(sf, ws, smooth)
        np.subtract(x, resid, out=resid)  # x - interp, in place
    else:
        resid = np.zeros(m)
    noise_resid = _robust_sd(resid) if m >= 5 else math.nan
    extra["noise_resid"] = noise_resid
    if m >= 5:
        rc = resid - resid.mean()
        den = float(rc @ rc)
        extra["resid_acf1"] = float(rc[1:] @ rc[:-1]) / den if den > 0 else math.nan
    level_ref = abs(row["final_value"]) if row["final_value"] else math.nan
    extra["noise_rel"] = (noise_resid / level_ref) if level_ref and math.isfinite(noise_resid) else math.nan

    # ---- best, improvement, 90% step
    if direction != "none":
        ow = sign * smooth
        kb = int(np.argmin(ow))
        row["best_value"] = float(smooth[kb])
        row["best_step"] = _nearest_step(s, float(ws[kb]))
        kr = int(np.argmin(x_raw) if sign > 0 else np.argmax(x_raw))  # argmin(sign * x), no copy
        extra.update(best_value_raw=float(x_raw[kr]), best_step_raw=int(s[kr]))
        init = float(x[0])
        total = sign * (init - row["best_value"])  # > 0 when the curve improved
        row["improvement_rel"] = total / abs(init) if init != 0 else math.nan
        fin_rel = sign * (init - row["final_value"])
        extra["improvement_final_rel"] = fin_rel / abs(init) if init != 0 else math.nan
        worse = sign * (row["final_value"] - row["best_value"])  # how far the end sits from the best
        extra["since_best_rel"] = worse / abs(row["best_value"]) if row["best_value"] != 0 else math.nan
        ref_noise = noise_resid if math.isfinite(noise_resid) and noise_resid > 0 else noise
        extra["since_best_noise"] = worse / ref_noise if ref_noise and math.isfinite(ref_noise) else math.nan
        if total > 0:
            gained = sign * (init - smooth)
            for frac, key in ((0.5, "step_50pct"), (0.9, "step_90pct"), (0.99, "step_99pct")):
                k = int(np.argmax(gained >= frac * total))
                val = _nearest_step(s, float(ws[k]))
                if key == "step_90pct":
                    row[key] = val
                else:
                    extra[key] = val
            band = max(p.near_best_noise * (ref_noise if math.isfinite(ref_noise) else 0.0),
                       p.near_best_rel * abs(row["best_value"]))
            k = int(np.argmax(ow <= sign * row["best_value"] + band))
            extra["step_near_best"] = _nearest_step(s, float(ws[k]))
        extra.update(_after_best(s, x, row["best_step"]))

    # ---- segments
    segments, shifts = _segments(s, x, ws, wx, smooth, resid, bounds, p, span, noise_resid)
    row["n_segments"] = len(segments)
    extra["shifts"] = shifts

    # ---- tail
    _tail(ws, wx, p, row, extra, noise_resid)

    # ---- power law
    if direction != "none" and m >= p.min_points_fit:
        _power_law(s, x, sign, p, row, extra, span, sf)


    row["extra"] = json.dumps(_clean(extra), sort_keys=True, allow_nan=False)
    return _finish(row), segments, spikes


_FLOAT_COLS = tuple(f.name for f in FEATURES if str(f.type) == "double")


def _finish(row):
    """Undefined floats are NaN (never None); ints stay None (null) when undefined."""
    row.pop("run", None)
    row.pop("metric", None)
    for key in _FLOAT_COLS:
        v = row.get(key)
        row[key] = math.nan if v is None else float(v)
    return row


def _strict_int_steps(ws: np.ndarray) -> np.ndarray:
    """Block-mean steps as strictly increasing int64 (the Gaussian smoother wants them)."""
    r = np.round(ws).astype(np.int64)
    return np.maximum.accumulate(r + np.arange(r.size)) - np.arange(r.size) if r.size and np.any(np.diff(r) <= 0) else r


def _clean(obj):
    """JSON-safe: non-finite floats -> None."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _noise_change(x: np.ndarray, min_rel: float = 0.05, min_size: int = 5) -> tuple[int, float]:
    """The single changepoint of the step-to-step noise level: the split of
    log|first differences| into two stretches whose means differ most in the least-squares
    sense (logs: a few spikes do not move it). Returns (index of the first point of the
    second stretch, ratio of the typical |difference| after / before)."""
    # in-place arithmetic, the same operations in the same order: every fresh n-array
    # costs its page faults (~0.07 s each at 10^7 points), more than the arithmetic
    d = np.diff(x)
    np.abs(d, out=d)
    n = d.size
    eps = 0.01 * _median(d) + 1e-300
    np.add(d, eps, out=d)
    y = np.log(d, out=d)
    lo = max(min_size, int(min_rel * n))
    if n < 2 * lo + 1:
        return 0, math.nan
    cs = np.cumsum(y, out=y)
    total = cs[-1]
    # score(k) = k * m1 ** 2 + (n - k) * m2 ** 2, m1 = cs[k-1] / k, m2 = (total - cs[k-1]) / (n - k),
    # maximal where the two-mean fit leaves least SSE; evaluated in cache-sized chunks
    # (same arithmetic per element; argmax keeps np.argmax's first maximum / first NaN)
    best_j, best = -1, -math.inf
    chunk = 1 << 16
    for a in range(lo, n - lo + 1, chunk):
        k = np.arange(a, min(a + chunk, n - lo + 1), dtype=np.float64)  # exact in float64
        head = cs[a - 1:a - 1 + k.size]  # cs[k - 1]
        score = head / k
        score *= score
        score *= k
        m2 = total - head
        nk = n - k
        m2 /= nk
        m2 *= m2
        m2 *= nk
        score += m2
        i = int(np.argmax(score))
        v = float(score[i])
        if math.isnan(v):
            best_j = a - lo + i
            break
        if best_j < 0 or v > best:
            best_j, best = a - lo + i, v
    k_best = lo + best_j
    m1j = cs[k_best - 1] / k_best
    m2j = (total - cs[k_best - 1]) / (n - k_best)
    return k_best + 1, float(math.exp(m2j - m1j))


def _segments(s, x, ws, wx, smooth, resid, bounds, p: AnalysisParams, span, fallback_noise):
    """Changepoints on the working series, slopes with HAC SEs, equivalence-test kinds."""
    nw = wx.size
    fallback_noise = fallback_noise if math.isfinite(fallback_noise) else 0.0
    total_change = float(np.ptp(smooth)) if smooth.size else 0.0
    if nw >= p.min_points_segments and np.ptp(wx) > 0:
        sig_diff = _noise.mad_noise(wx)
        sig_res = _robust_sd(wx - smooth)
        sigma = max(v for v in (sig_diff, sig_res, 1e-12 * max(abs(wx).max(), 1e-300)) if math.isfinite(v))
        # autocorrelated noise makes wiggles that look like structure: scale the penalty
        # by the long-run variance factor (1 + rho) / (1 - rho) of the working residuals
        rw = wx - smooth
        rw = rw - rw.mean()
        den = float(rw @ rw)
        rho = min(max(float(rw[1:] @ rw[:-1]) / den, 0.0), 0.9) if den > 0 else 0.0
        penalty = p.penalty_factor * sigma * sigma * math.log(nw) * (1 + rho) / (1 - rho)
        min_size = max(p.min_size_points, int(p.min_size_rel * nw))
        if nw >= 2 * min_size:
            bk = _cp.pelt(wx, penalty=penalty, min_size=min_size, jump=1, cost="linear", pruning="optimal")
        else:
            bk = np.array([nw], dtype=np.int64)
    else:
        bk = np.array([nw], dtype=np.int64)
    starts_w = np.r_[0, bk[:-1]].astype(np.int64)
    ends_w = np.asarray(bk, dtype=np.int64)

    def fit(a, b):
        """Fit working points [a, b): line, SE, residual noise (raw points), step range."""
        t, y = ws[a:b], wx[a:b]
        slope, se, level, _, _, level_se = _hac_line(t, y)
        ra, rb = int(bounds[a]), int(bounds[b])  # raw index range
        seg_noise = _robust_sd(resid[ra:rb]) if rb - ra >= 5 else math.nan
        return dict(a=a, b=b, ra=ra, rb=rb, slope=slope, se=se, level=level, level_se=level_se, t_mean=float(t.mean()),
                    noise=seg_noise, step_start=int(s[ra]), step_end=int(s[rb - 1]))

    def classify(seg):
        length = float(s[seg["rb"] - 1] - s[seg["ra"]])
        change = seg["slope"] * length if math.isfinite(seg["slope"]) else math.nan
        se_change = seg["se"] * length if math.isfinite(seg["se"]) else math.nan
        seg_noise = seg["noise"] if math.isfinite(seg["noise"]) else 0.0
        band = max(p.plateau_noise * seg_noise, p.plateau_rel * total_change)
        seg["change"], seg["band"] = change, band
        if not math.isfinite(change):
            return "plateau"
        half = p.ci_z * se_change if math.isfinite(se_change) else 0.0
        if abs(change) + half <= band:
            return "plateau"
        return "descent" if change < 0 else "ascent"

    segs = [fit(int(a), int(b)) for a, b in zip(starts_w, ends_w)]
    for seg in segs:
        seg["kind"] = classify(seg)

    def jump(left, right):
        """Jump between the two fitted lines at the boundary, in noise units."""
        tb = 0.5 * (ws[left["b"] - 1] + ws[right["a"]])
        yl = left["level"] + (left["slope"] if math.isfinite(left["slope"]) else 0.0) * (tb - left["t_mean"])
        yr = right["level"] + (right["slope"] if math.isfinite(right["slope"]) else 0.0) * (tb - right["t_mean"])
        nz = max((v for v in (left["noise"], right["noise"]) if math.isfinite(v)), default=fallback_noise)
        return yr - yl, ((yr - yl) / nz if nz > 0 else math.copysign(math.inf, yr - yl) if yr != yl else 0.0)

    def line_spread(seg):
        """Robust sd of the raw points around the segment's fitted line: the marginal
        spread of the noise, autocorrelated wander included (the residual noise around
        the smoother hides a slow AR wander, which then looks like level shifts)."""
        ra, rb = seg["ra"], seg["rb"]
        if rb - ra < 5 or not math.isfinite(seg["slope"]):
            return math.nan
        return _robust_sd(x[ra:rb] - (seg["level"] + seg["slope"] * (s[ra:rb] - seg["t_mean"])))

    def jump_z(left, right, d):
        """The jump over its HAC standard error: each line's value at the boundary has
        variance level_se^2 + (boundary - t_mean)^2 slope_se^2 (the intercept and slope of
        an OLS line on centred t are uncorrelated), Newey-West for autocorrelated noise."""
        tb = 0.5 * (ws[left["b"] - 1] + ws[right["a"]])
        var = 0.0
        for g in (left, right):
            if not (math.isfinite(g["level_se"]) and math.isfinite(g["se"])):
                return None
            var += g["level_se"] ** 2 + ((tb - g["t_mean"]) * g["se"]) ** 2
        return float(d / math.sqrt(var)) if var > 0 else None

    shifts = []
    for left, right in zip(segs[:-1], segs[1:]):
        d, dz = jump(left, right)
        # lines through 3-5 sparse points of a curved eval curve disagree at their
        # boundary without any discontinuity: shifts need min_shift_points on each side
        enough = min(left["rb"] - left["ra"], right["rb"] - right["ra"]) >= p.min_shift_points
        left["shift_after"] = enough and abs(dz) >= p.shift_noise
        if left["shift_after"]:
            sp = max((v for v in (line_spread(left), line_spread(right)) if math.isfinite(v)), default=math.nan)
            # delta_spread: the jump in units of the marginal spread around the two lines;
            # delta_z: in HAC standard errors of the difference (see jump_z)
            shifts.append(dict(step=int(s[right["ra"]]), delta=float(d), delta_noise=float(dz),
                               delta_spread=float(d / sp) if sp and math.isfinite(sp) and sp > 0 else None,
                               delta_z=jump_z(left, right, d)))
    # merge neighbours of the same kind not separated by a level shift
    merged = [segs[0]] if segs else []
    for seg in segs[1:]:
        prev = merged[-1]
        if seg["kind"] == prev["kind"] and not prev.get("shift_after", False) and (
                seg["kind"] == "plateau" or _compatible(prev, seg, p.ci_z)):
            new = fit(prev["a"], seg["b"])
            new["kind"] = classify(new)
            new["shift_after"] = seg.get("shift_after", False)
            if new["kind"] == prev["kind"]:
                merged[-1] = new
                continue
        merged.append(seg)
    out = [dict(step_start=g["step_start"], step_end=g["step_end"], kind=g["kind"], slope=_nan(g["slope"]),
                slope_se=_nan(g["se"]), level=_nan(g["level"])) for g in merged]
    return out, shifts


def _compatible(a, b, z):
    """Slopes equal within z combined standard errors (descent pieces of a curved
    decay are not merged: the last piece's slope is what the tail rules need)."""
    se = math.hypot(_nan(a["se"]) if math.isfinite(a["se"]) else 0.0, _nan(b["se"]) if math.isfinite(b["se"]) else 0.0)
    if not (math.isfinite(a["slope"]) and math.isfinite(b["slope"])):
        return True
    return abs(a["slope"] - b["slope"]) <= z * se


def _nan(v):
    return float(v) if v is not None and math.isfinite(v) else math.nan


def _tail(ws, wx, p: AnalysisParams, row, extra, noise_resid):
    nw = wx.size
    k = max(p.tail_min_points, int(math.ceil(p.tail_rel * nw)))
    if nw < p.tail_min_points:
        return
    k = min(k, nw)
    t, y = ws[-k:], wx[-k:]
    if t.size > 500:  # the tail test on <= 500 block means keeps statsmodels fast
        t, y, _, _ = _blocks(t, y, 500)
    slope, se, _, _, _, _ = _hac_line(t, y)
    row["tail_slope"], row["tail_slope_se"] = _nan(slope), _nan(se)
    mk = _trend.mann_kendall(y)
    row["trend_z"], row["trend_p"] = _nan(mk.z), _nan(mk.p)
    length = float(t[-1] - t[0])
    extra["tail_start_step"] = int(round(ws[-k]))
    extra["tail_points"] = int(k)
    extra["tail_slope_z"] = slope / se if se and math.isfinite(se) and se > 0 else None
    change = slope * length if math.isfinite(slope) else math.nan
    extra["tail_change"] = change
    extra["tail_change_noise"] = change / noise_resid if noise_resid and math.isfinite(noise_resid) else None


def _power_law(s, x, sign, p: AnalysisParams, row, extra, span, sf):
    start = s[0] + p.fit_skip_rel * span
    k0 = _search(s, start)  # s is sorted: s[k0:] == s[s >= start]
    t = sf[k0:]  # == s[k0:].astype(np.float64)
    if t.size and t[0] <= 0:
        t = t - t[0] + 1.0  # t^-alpha needs t > 0; a log counting from 0 is shifted by one
        extra["fit_step_offset"] = int(1 - s[k0])
    y = x[k0:] if sign == 1.0 else sign * x[k0:]  # 1.0 * v == v for every float
    if t.size < p.min_points_fit:
        return
    fit = _trend.fit_power_law(t, y)
    extra["fit_status"] = _trend.POWER_LAW_STATUS[fit.status] if hasattr(_trend, "POWER_LAW_STATUS") else int(fit.status)
    extra["fit_residual_sd"] = fit.residual_sd
    extra["fit_alpha_se"] = fit.alpha_se
    row["fit_ok"] = bool(fit.converged)
    if not fit.converged:  # the kernel says: do not trust the numbers
        return
    row["fit_l_inf"] = sign * fit.l_inf
    row["fit_a"] = sign * fit.a
    row["fit_alpha"] = fit.alpha
    row["fit_l_inf_se"] = fit.l_inf_se
    if fit.converged:
        now = float(t[-1])
        gain, gain_se = _trend.extrapolation_gain(fit, now, p.gain_factor * now)
        ref = abs(row["final_value"]) if row["final_value"] else math.nan
        row["expected_gain_rel"] = gain / ref if ref else math.nan
        extra["expected_gain"] = gain
        extra["expected_gain_se"] = gain_se
        extra["expected_gain_rel_se"] = gain_se / ref if ref else None
        extra["gain_to_asymptote"] = sign * (row["final_value"] - row["fit_l_inf"])


def _find_spikes(s, x, direction, p: AnalysisParams, span, spacing, gnoise):
    """Spikes of one curve, plus the raw index ranges of the recovered ones.

    Detection runs on r = x - centred rolling median (baseline_window points; a wider
    window is cut at the ends of the curve, stops being centred and left r biased over
    the steep start of a loss, hiding a 21-noise spike at step 2,000 of loss_spike seed 2):
    without detrending, the rolling MAD of a falling loss holds the trend and a 35-noise
    jump scored z = 3.5 (loss_spike seed 3 at step 2,860). Peak and height come from
    kernels.spikes.find_spikes on r in local noise units (below). Recovery is measured on the raw values: the first
    later point within 2 local noise units of the level before the spike; none means
    never (a level shift or divergence).
    """
    m = x.size
    window = int(min(p.spike_window, max(11, (m // 4) | 1)))
    base_w = p.baseline_window
    # baseline: centred rolling median (kernels.smoothing.rolling_median(center=True));
    # local: causal kernels.noise.rolling_noise, floored at lo; r = x - baseline. The search
    # input r / local comes from one pass that stores neither (kernels.spikes.
    # detrended_noise_units); around each spike both are recomputed from a short slice
    # (_local_baseline_noise: the same values, the windows being the same).
    d = -1 if direction == "max" else 1
    # Scale: r is divided by the local difference-based noise (kernels.noise.rolling_noise,
    # causal) before the kernel sees it, and the kernel's scale is floored at 1 (one
    # local noise unit). On a steep monotone stretch a median filter reproduces the curve,
    # r == 0 and the window MAD is 0, so an unfloored (or globally floored) scale turned
    # 2-sigma wiggles into z = 10 spikes (healthy_step_lr seed 1 at step 930, overfitting
    # seed 1 at epoch 45); the global noise is no floor on heteroscedastic curves either.
    # local is causal: the decay after a slow spike must not inflate the noise the spike
    # itself is measured against; gnoise is mad_noise(x), computed once by the caller
    tiny = max(1e-12 * max(abs(float(x.max())), abs(float(x.min()))), 1e-300)  # 1e-12 max|x|
    lo = 0.1 * gnoise if math.isfinite(gnoise) and gnoise > 0 else tiny
    u = _spikes.detrended_noise_units(x, baseline_window=base_w, noise_window=base_w, noise_floor=lo)
    idx, step, height, _, _ = _spikes.find_spikes(s, u, window=window, threshold_z=p.spike_threshold_z,
                                                  direction=d, scale_floor=1.0)
    del u
    fast = max(p.fast_points * (spacing if math.isfinite(spacing) else 1.0), p.fast_rel * span)
    out, ranges = [], []
    base_at = {}  # baseline at the positions the caller's bridges start from
    for i, h in zip(idx, height):
        i = int(i)
        a = max(0, i - window)
        # positions from a (the window before the spike) or start - 1 >= i - 51 (below)
        # to i: the only ones where baseline and local noise are read
        b0 = max(0, min(a, i - 51))
        bseg, lseg = _local_baseline_noise(x, b0, i + 1, base_w)

        def baseline(j, b0=b0, bseg=bseg):
            if not b0 <= j < b0 + bseg.size:
                raise AssertionError(f"baseline read at {j} outside {b0}..{b0 + bseg.size - 1}")
            return float(bseg[j - b0])

        loc = float(lseg[max(i - 1, 0) - b0])
        loc = max(loc, lo) if math.isfinite(loc) else lo  # the floored local noise
        pre_r = x[a:i] - bseg[a - b0:i - b0]
        scale = MAD_TO_SD * float(np.median(np.abs(pre_r - np.median(pre_r)))) if pre_r.size >= 3 else math.nan
        scale = max(scale, loc) if math.isfinite(scale) else loc
        start = i
        while start > 0 and i - start < 50 and d * (x[start - 1] - baseline(start - 1)) > 3 * scale:
            start -= 1
        # the level to come back to: the better of the median of the points before the
        # spike (lags a falling trend) and the centred baseline just before it (sits
        # mid-way across a level shift); a loss must come back to the lower one
        pre = x[max(0, start - window):start]
        cands = [baseline(start - 1)] if start > 0 else [baseline(i)]
        if pre.size:
            cands.append(float(np.median(pre)))
        level = min(cands) if d > 0 else max(cands)
        j = _first_within(x, i + 1, d, level, 2.0 * scale)
        if j >= 0:
            rec_steps = int(s[j] - s[start])
            cls = "fast" if rec_steps <= fast else "slow"
            ranges.append((start, j))
            base_at[start] = baseline(start)
            out.append(dict(step=int(s[i]), value=float(x[i]), height=float(h), recovery_steps=rec_steps,
                            recovered=True, recovery_class=cls))
        else:
            out.append(dict(step=int(s[i]), value=float(x[i]), height=float(h), recovery_steps=None,
                            recovered=False, recovery_class="never"))
    return out, ranges, base_at


def _local_baseline_noise(x, i0, i1, window):
    """rolling_baseline_noise(x, window, window)[i0:i1] from a slice that holds every
    window those positions see (centred baseline: window//2 either side; causal noise:
    window differences back, one more point for the first difference)."""
    lo0 = max(0, i0 - window - 1)
    hi0 = min(x.size, i1 + (window - 1) // 2 + 1)
    b, n = _spikes.rolling_baseline_noise(x[lo0:hi0], baseline_window=window, noise_window=window)
    return b[i0 - lo0:i1 - lo0], n[i0 - lo0:i1 - lo0]


def _first_within(x, start, d, level, tol) -> int:
    """First j >= start with d * (x[j] - level) <= tol, or -1: searched in doubling chunks,
    so a spike that recovers at once costs O(recovery), not a pass over the rest."""
    m = x.size
    a, size = start, 256
    while a < m:
        b = min(m, a + size)
        hit = d * (x[a:b] - level) <= tol
        k = int(np.argmax(hit))
        if hit[k]:
            return a + k
        a, size = b, size * 2
    return -1


# --------------------------------------------------------------------------- whole runs


def analyse_run(curves, metrics=None, *, params=None) -> dict:
    """Analyse every (run, metric) of a long curves frame.

    curves: polars frame with columns metric, step, value (and run; a frame without a
    run column is one run named ""). metrics: polars frame with run, metric, direction,
    kind (the metrics table); a metric missing from it gets direction "none", kind
    "other". Returns {"features", "segments", "spikes"}: polars frames with exactly the
    columns and types of schemas.FEATURES / SEGMENTS / SPIKES.
    """
    import polars as pl
    import pyarrow as pa

    if "run" not in curves.columns:
        curves = curves.with_columns(pl.lit("").alias("run"))
    roles = {}
    if metrics is not None and metrics.height:
        for r in metrics.select("run", "metric", "direction", "kind").iter_rows():
            roles[(r[0], r[1])] = (r[2], r[3])
    feats, segs, spks = [], [], []
    curves = curves.sort("run", "metric", "step")
    for (run, metric), part in curves.group_by(["run", "metric"], maintain_order=True):
        direction, kind = roles.get((run, metric), ("none", "other"))
        row, seg_list, spike_list = analyse_curve(part["step"].to_numpy(), part["value"].to_numpy(),
                                                  direction=direction, kind=kind, params=params)
        row.update(run=run, metric=metric)
        feats.append(row)
        segs.extend(dict(run=run, metric=metric, **g) for g in seg_list)
        spks.extend(dict(run=run, metric=metric, **g) for g in spike_list)

    def frame(rows, schema):
        rows = [{k: (None if isinstance(v, float) and math.isnan(v) and schema.field(k).type != pa.float64()
                     else v) for k, v in r.items()} for r in rows]
        return pl.from_arrow(pa.Table.from_pylist(rows, schema=schema))

    return {"features": frame(feats, FEATURES), "segments": frame(segs, SEGMENTS), "spikes": frame(spks, SPIKES)}


__all__ = ["AnalysisParams", "analyse_curve", "analyse_run"]
