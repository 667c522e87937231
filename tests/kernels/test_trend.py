"""kernels/trend.py against its slow twins (tests/reference/trend_ref.py) and the anchors
(numpy.polyfit, scipy.stats.linregress / kendalltau / theilslopes, statsmodels OLS,
scipy.optimize.curve_fit)."""

import math
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import scipy.stats as sst
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import curve_fit

from kernels.trend import (
    POWER_LAW_STATUS,
    SEGMENT_FIT_COLUMNS,
    PowerLawFit,
    _log_bin,
    _norm_ppf,
    extrapolation_gain,
    fit_power_law,
    kendall_tau,
    mann_kendall,
    power_law_predict,
    segment_fit,
    theil_sen,
)
from tests.reference.trend_ref import (
    log_bin_ref,
    mann_kendall_ref,
    power_law_ref,
    segment_fit_ref,
    theil_sen_ref,
)

NONFINITE = [math.nan, math.inf, -math.inf]
finite_values = st.floats(-1e6, 1e6)
any_values = st.one_of(finite_values, st.sampled_from(NONFINITE))
# few distinct values, so ties are common
tied_values = st.one_of(st.integers(-3, 3).map(float), st.sampled_from(NONFINITE))
curves = hnp.arrays(np.float64, st.integers(0, 120), elements=any_values)
tied_curves = hnp.arrays(np.float64, st.integers(0, 120), elements=tied_values)


def _close(a, b, rtol=1e-9, atol=1e-9):
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol) or (math.isnan(a) and math.isnan(b))


# ------------------------------------------------------------------ mann_kendall

@settings(deadline=None)
@given(x=st.one_of(curves, tied_curves), continuity=st.booleans())
def test_mann_kendall_matches_reference(x, continuity):
    before = x.copy()
    got = mann_kendall(x, continuity=continuity)
    s, var_s, z, p = mann_kendall_ref(x, continuity=continuity)
    assert got.s == s, (x, got, s)
    assert _close(got.var_s, var_s), (got, var_s)
    assert _close(got.z, z) and _close(got.p, p, atol=1e-12), (got, z, p)
    np.testing.assert_array_equal(x, before)  # the input is not sorted in place


@settings(deadline=None)
@given(x=st.one_of(hnp.arrays(np.float64, st.integers(3, 150), elements=finite_values),
                   hnp.arrays(np.float64, st.integers(3, 150),
                              elements=st.integers(-4, 4).map(float))))
def test_kendall_tau_matches_scipy(x):
    tau, p = kendall_tau(x)
    ref = sst.kendalltau(np.arange(x.size), x, method="asymptotic")
    if math.isnan(ref.statistic):
        assert math.isnan(tau) and math.isnan(p)
        return
    assert tau == pytest.approx(ref.statistic, rel=1e-12, abs=1e-14), x
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-14), x
    mk = mann_kendall(x, continuity=False)
    assert mk.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mann_kendall_scipy_larger_with_ties(seed):
    # 20,000 points with heavy ties (a rounded loss curve): crosses many merge passes
    rng = np.random.default_rng(seed)
    n = 20_000
    x = np.round(3 * np.arange(1, n + 1) ** -0.3 + 0.05 * rng.standard_normal(n), 2)
    tau, p = kendall_tau(x)
    ref = sst.kendalltau(np.arange(n), x, method="asymptotic")
    assert tau == pytest.approx(ref.statistic, rel=1e-12), f"seed={seed}"
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300), f"seed={seed}"


int_curves = hnp.arrays(np.float64, st.integers(0, 120),
                        elements=st.one_of(st.integers(-10**6, 10**6).map(float), st.sampled_from(NONFINITE)))


@settings(deadline=None)
@given(x=st.one_of(int_curves, tied_curves), c=st.integers(-10**6, 10**6))
def test_mann_kendall_invariants(x, c):
    # integer-valued curves, so adding a constant and doubling are exact in float64
    base = mann_kendall(x)
    neg = mann_kendall(-x)
    assert neg.s == -base.s and _close(neg.var_s, base.var_s)
    assert _close(neg.z, -base.z) and _close(neg.p, base.p)
    assert mann_kendall(x + float(c)) == base
    assert mann_kendall(2.0 * x) == base
    # reversing time negates S
    assert mann_kendall(x[::-1]).s == -base.s


def test_mann_kendall_nan_placement_and_edges():
    rng = np.random.default_rng(7)
    base = np.cumsum(rng.standard_normal(50))
    cases = {"first": [0], "last": [49], "middle_run": list(range(20, 27)), "scattered": [3, 11, 30]}
    for name, idx in cases.items():
        for bad in NONFINITE:
            x = base.copy()
            x[idx] = bad
            got = mann_kendall(x)
            ref = mann_kendall_ref(x)
            assert got.s == ref[0] and _close(got.z, ref[2]) and _close(got.p, ref[3], atol=1e-12), (name, bad)
    for x in (np.array([]), np.array([1.0]), np.full(10, np.nan), np.full(10, 2.5)):
        r = mann_kendall(x)
        assert r.s == 0 and math.isnan(r.z) and math.isnan(r.p), x
    # +Inf at the end is a rise: S counts it as the largest value
    assert mann_kendall(np.array([1.0, 2.0, 0.5, np.inf])).s == mann_kendall_ref([1.0, 2.0, 0.5, 9.0])[0]


def test_mann_kendall_detects_trend_and_its_absence():
    rng = np.random.default_rng(3)
    n = 2000
    noise = rng.standard_normal(n)
    assert mann_kendall(noise).p > 0.01
    down = mann_kendall(-np.arange(n) * 1e-3 + noise)
    assert down.s < 0 and down.p < 1e-10


# ------------------------------------------------------------------ segment_fit

@st.composite
def segmented(draw):
    n = draw(st.integers(1, 80))
    k = draw(st.integers(1, min(n, 5)))
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), min_size=k - 1, max_size=k - 1))) if n > 1 else []
    steps = np.cumsum(draw(hnp.arrays(np.int64, n, elements=st.integers(1, 50)))) + draw(
        st.sampled_from([0, 10**9, 10**12]))
    values = draw(hnp.arrays(np.float64, n, elements=st.one_of(st.floats(-1e3, 1e3), st.sampled_from(NONFINITE))))
    values = values + draw(st.sampled_from([0.0, 1e6]))
    return steps, values, cuts + [n]


def _segment_scales(steps, values, bkps):
    """Per segment: (m, max |value|, step range, |first step|) over usable points; the
    error bounds below are a few ulps of these, far below what raw sums would give."""
    out = []
    start = 0
    for end in bkps:
        v = values[start:end]
        st_ = steps[start:end]
        ok = np.isfinite(v)
        m = int(ok.sum())
        y = float(np.max(np.abs(v[ok]))) if m else 0.0
        x = float(st_[ok].max() - st_[ok].min()) if m else 0.0
        out.append((m, max(y, 1e-300), max(x, 1.0), float(abs(st_[0]))))
        start = end
    return out


def _assert_segments_close(got, ref, scales, ctx):
    for k, (m, y, x, s0) in enumerate(scales):
        tol_slope = 1e-9 * m * y / x
        tol = {"slope": tol_slope, "slope_se": tol_slope, "residual_sd": 1e-9 * m * y,
               "mean": 1e-12 * m * y, "n": 0.0,
               "intercept": tol_slope * (s0 + x) + 1e-9 * m * y,
               "intercept_se": tol_slope * (s0 + x) + 1e-9 * m * y}
        for c, name in enumerate(SEGMENT_FIT_COLUMNS):
            a, b = got[k, c], ref[k, c]
            if math.isnan(b):
                assert math.isnan(a), (name, k, got[k], ref[k], ctx)
            else:
                assert abs(a - b) <= tol[name], (name, k, a, b, tol[name], ctx)


@settings(deadline=None)
@given(case=segmented())
def test_segment_fit_matches_exact_reference(case):
    steps, values, bkps = case
    got = segment_fit(steps, values, bkps)
    ref = segment_fit_ref(steps, values, bkps)
    assert got.shape == (len(bkps), len(SEGMENT_FIT_COLUMNS))
    _assert_segments_close(got, ref, _segment_scales(steps, values, bkps), (steps, values, bkps))


def test_segment_fit_matches_polyfit_linregress_statsmodels():
    import statsmodels.api as sm

    rng = np.random.default_rng(11)
    steps = np.arange(100, 5100, 10, dtype=np.int64)
    values = 3.0 + 20.0 / np.sqrt(steps) + 0.01 * rng.standard_normal(steps.size)
    bkps = [120, 260, 500]
    got = segment_fit(steps, values, bkps)
    start = 0
    for k, end in enumerate(bkps):
        x, y = steps[start:end].astype(float), values[start:end]
        start = end
        slope, intercept = np.polyfit(x, y, 1)
        lr = sst.linregress(x, y)
        ols = sm.OLS(y, sm.add_constant(x)).fit()
        assert got[k, 0] == pytest.approx(slope, rel=1e-8) == lr.slope
        assert got[k, 1] == pytest.approx(intercept, rel=1e-9)
        assert got[k, 2] == pytest.approx(lr.stderr, rel=1e-8)
        assert got[k, 3] == pytest.approx(lr.intercept_stderr, rel=1e-8)
        np.testing.assert_allclose(got[k, [1, 0]], ols.params, rtol=1e-9)
        np.testing.assert_allclose(got[k, [3, 2]], ols.bse, rtol=1e-8)
        assert got[k, 4] == pytest.approx(math.sqrt(ols.scale), rel=1e-9)
        assert got[k, 5] == end - (bkps[k - 1] if k else 0)
        assert got[k, 6] == pytest.approx(y.mean(), rel=1e-14)


def test_segment_fit_large_step_offset():
    # steps near 1e9 and values offset by 1e6: the raw one-pass normal equations lose
    # the slope entirely here; the exact (rational) reference shows we keep it
    rng = np.random.default_rng(5)
    steps = 10**9 + np.arange(0, 3000, 3, dtype=np.int64)
    values = 1e6 + 1e-4 * (steps - steps[0]) + 1e-3 * rng.standard_normal(steps.size)
    got = segment_fit(steps, values, [400, 1000])
    ref = segment_fit_ref(steps, values, [400, 1000])
    np.testing.assert_allclose(got[:, [0, 2, 4, 6]], ref[:, [0, 2, 4, 6]], rtol=1e-7)
    assert got[0, 0] == pytest.approx(1e-4, rel=1e-2)


@settings(deadline=None)
@given(case=segmented(), a=st.floats(-100, 100).filter(lambda v: abs(v) > 1e-3),
       b=st.floats(-1e4, 1e4), shift=st.integers(-10**6, 10**6))
def test_segment_fit_affine_equivariance(case, a, b, shift):
    """values -> a*values + b and steps -> steps + shift: slope scales by a, standard
    errors and residual sd by |a|, the mean maps affinely, and the fitted line is the
    same line (its value at each segment's first step maps by a*v + b)."""
    steps, values, bkps = case
    base = segment_fit(steps, values, bkps)
    got = segment_fit(steps + shift, a * values + b, bkps)
    # expected values in the transformed frame, compared with the same error bounds
    want = base.copy()
    want[:, 0] *= a
    want[:, [2, 4]] *= abs(a)
    want[:, 6] = a * base[:, 6] + b
    want[:, 1] = got[:, 1]   # checked through the line value below
    want[:, 3] = got[:, 3]
    scales = _segment_scales(steps + shift, a * values + b, bkps)
    scales = [(m, y + abs(a) * y0, x, s0) for (m, y, x, s0), (_, y0, _, _) in
              zip(scales, _segment_scales(steps, values, bkps))]
    _assert_segments_close(got, want, scales, (steps, values, bkps, a, b, shift))
    start = 0
    for k, end in enumerate(bkps):
        t = float(steps[start])
        start = end
        if not math.isnan(base[k, 0]):
            lhs = got[k, 1] + got[k, 0] * (t + shift)
            rhs = a * (base[k, 1] + base[k, 0] * t) + b
            m, y, x, s0 = scales[k]
            assert abs(lhs - rhs) <= 1e-9 * m * y / x * (s0 + abs(shift) + x) + 1e-9 * m * y, (k, lhs, rhs)


def test_segment_fit_edges_and_errors():
    s = np.arange(6)
    v = np.array([1.0, np.nan, np.inf, 2.0, 3.0, np.nan])
    out = segment_fit(s, v, [2, 3, 5, 6])
    assert out[0, 5] == 1 and out[0, 6] == 1.0 and math.isnan(out[0, 0])      # one point
    assert out[1, 5] == 0 and np.isnan(out[1, [0, 6]]).all()                   # none usable
    assert out[2, 0] == pytest.approx(1.0) and math.isnan(out[2, 2])          # two: no SE
    assert out[3, 5] == 0
    assert segment_fit([], [], []).shape == (0, 7)
    # all points on one step: no slope
    assert math.isnan(segment_fit([5, 5, 5], [1.0, 2.0, 3.0], [3])[0, 0])
    with pytest.raises(ValueError, match="last breakpoint must equal"):
        segment_fit(s, v, [2, 5])
    with pytest.raises(ValueError, match="breakpoint 1 is 2"):
        segment_fit(s, v, [2, 2, 6])
    with pytest.raises(ValueError, match="same length"):
        segment_fit(s[:3], v, [6])


# ------------------------------------------------------------------ theil_sen

@settings(deadline=None)
@given(y=hnp.arrays(np.float64, st.integers(2, 60),
                    elements=st.one_of(st.floats(-1e4, 1e4), st.integers(-3, 3).map(float))),
       gaps=st.data(), confidence=st.sampled_from([0.95, 0.9, 0.99, 0.05]))
def test_theil_sen_equals_scipy(y, gaps, confidence):
    steps = np.cumsum(gaps.draw(hnp.arrays(np.int64, y.size, elements=st.integers(0, 3))))
    if np.unique(steps).size < 2:
        steps = np.arange(y.size)
    got = theil_sen(steps, y, confidence=confidence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sst.theilslopes(y, steps, alpha=confidence)
    assert got.slope == ref.slope and got.n == y.size, (steps, y)
    assert got.intercept == pytest.approx(ref.intercept, rel=1e-12, abs=1e-9)
    assert (got.low_slope, got.high_slope) == (ref.low_slope, ref.high_slope) or (
        math.isnan(got.low_slope) and math.isnan(ref.low_slope)), (steps, y, got, ref)
    mine = theil_sen_ref(steps, y, confidence)
    assert got.slope == mine[0] and all(_close(a, b, 0, 0) for a, b in zip(got[2:4], mine[2:])), (got, mine)


@settings(deadline=None)
@given(y=hnp.arrays(np.float64, st.integers(0, 60), elements=any_values))
def test_theil_sen_nonfinite_matches_reference(y):
    steps = np.arange(y.size) * 10 + 7
    got = theil_sen(steps, y)
    ref = theil_sen_ref(steps, y)
    for a, b in zip(got[:4], ref):
        assert _close(a, b, rtol=1e-12), (y, got, ref)
    assert got.n == int(np.isfinite(y).sum())


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_theil_sen_robust_to_one_outlier(seed):
    rng = np.random.default_rng(seed)
    steps = np.arange(200)
    y = 5.0 - 0.01 * steps + 0.05 * rng.standard_normal(200)
    clean = theil_sen(steps, y)
    y2 = y.copy()
    y2[rng.integers(200)] = 1e6
    dirty = theil_sen(steps, y2)
    # one point moves the median of 19,900 slopes by at most 199 ranks
    assert abs(dirty.slope - clean.slope) < 0.2 * abs(clean.low_slope - clean.high_slope), (seed, clean, dirty)
    assert abs(dirty.slope + 0.01) < 0.002, (seed, dirty)
    assert abs(np.polyfit(steps, y2, 1)[0] + 0.01) > 1.0  # while least squares is thrown off


def test_theil_sen_subsample_is_deterministic_and_documented():
    rng = np.random.default_rng(9)
    n = 5000
    steps = np.arange(1, n + 1)
    y = 2 + 8 * steps ** -0.5 + 0.02 * rng.standard_normal(n)
    y[[10, 20]] = np.nan
    got = theil_sen(steps, y, max_points=300)
    assert got.n == 300
    keep = np.isfinite(y)
    idx = np.round(np.linspace(0, keep.sum() - 1, 300)).astype(int)
    ref = sst.theilslopes(y[keep][idx], steps[keep][idx])
    assert (got.slope, got.low_slope, got.high_slope) == (ref.slope, ref.low_slope, ref.high_slope)
    assert got == theil_sen(steps, y, max_points=300)
    with pytest.raises(ValueError, match="max_points"):
        theil_sen(steps, y, max_points=1)


def test_norm_ppf_matches_scipy():
    for p in [1e-12, 1e-6, 0.001, 0.01, 0.025, 0.05, 0.3, 0.5, 0.7, 0.975, 0.999999]:
        assert _norm_ppf(p) == pytest.approx(sst.norm.ppf(p), rel=1e-13, abs=1e-14), p


# ------------------------------------------------------------------ fit_power_law

def _model(t, c, a, k):
    return c + a * t ** -k


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.7, 1.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_fit_power_law_recovers_parameters(alpha, seed):
    rng = np.random.default_rng(seed)
    n = 3000
    steps = np.arange(1, n + 1)
    truth = (2.0, 5.0, alpha)
    clean = _model(steps, *truth)
    noise_sd = 0.002
    y = clean + noise_sd * rng.standard_normal(n)
    fit = fit_power_law(steps, y, max_points=500)
    assert fit.converged and fit.status == 0, (alpha, seed, fit)
    assert fit.n == n and fit.n_bins <= 500
    for got, se, want in zip(fit[:3], fit[3:6], truth):
        assert abs(got - want) < 5 * se + 1e-9, (alpha, seed, fit)
    assert fit.residual_sd == pytest.approx(noise_sd, rel=0.1)
    # noise-free: exact
    exact = fit_power_law(steps, clean, max_points=n)
    np.testing.assert_allclose(exact[:3], truth, rtol=1e-6)


def test_fit_power_law_matches_curve_fit_and_reference():
    rng = np.random.default_rng(4)
    steps = np.arange(1, 801)
    y = 1.5 + 3.0 * steps ** -0.4 + 0.01 * rng.standard_normal(steps.size)
    fit = fit_power_law(steps, y)
    assert fit.n_bins == 800 and fit.converged
    p, pcov = curve_fit(_model, steps.astype(float), y, p0=(1.0, 1.0, 1.0), maxfev=20000)
    np.testing.assert_allclose(fit[:3], p, rtol=1e-5)
    np.testing.assert_allclose(fit.cov, pcov, rtol=1e-3)
    c, a, k, rss = power_law_ref(steps, y)
    np.testing.assert_allclose(fit[:3], (c, a, k), rtol=1e-6)
    ours = float(np.sum((y - _model(steps, *fit[:3])) ** 2))
    assert ours <= rss * (1 + 1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_power_law_binned_matches_weighted_curve_fit(seed):
    rng = np.random.default_rng(seed)
    n = 40_000
    steps = np.arange(1, n + 1)
    y = 2.5 + 6.0 * steps ** -0.35 * (1 + 0.02 * rng.standard_normal(n))
    fit = fit_power_law(steps, y, max_points=400)
    tb, yb, wb = _log_bin(steps.astype(float), y, 400)
    rt, ry, rw = log_bin_ref(steps.astype(float), y, 400)
    np.testing.assert_allclose(tb, rt, rtol=1e-12)
    np.testing.assert_allclose(yb, ry, rtol=1e-12)
    np.testing.assert_array_equal(wb, rw)
    assert fit.n_bins == tb.size and fit.converged, (seed, fit)
    p, pcov = curve_fit(_model, tb, yb, p0=(1.0, 1.0, 0.5), sigma=1 / np.sqrt(wb), maxfev=20000)
    np.testing.assert_allclose(fit[:3], p, rtol=1e-5, err_msg=f"seed={seed}")
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov)), np.sqrt(np.diag(pcov)), rtol=1e-3)
    c, a, k, _ = power_law_ref(tb, yb, wb)
    np.testing.assert_allclose(fit[:3], (c, a, k), rtol=1e-6)


def test_fit_power_law_degenerate_inputs_flag_not_crash():
    steps = np.arange(1, 501)
    rng = np.random.default_rng(2)
    cases = {
        "constant": (steps, np.full(500, 3.0), {2, 3}),
        "increasing": (steps, 1.0 + 0.01 * steps + 0.01 * rng.standard_normal(500), {2, 3}),
        "rising_power": (steps, 3.0 - 2.0 * steps ** -0.5, {2}),
        "three_points": (steps[:3], np.array([3.0, 2.0, 1.5]), {1}),
        "all_nan": (steps, np.full(500, np.nan), {1}),
        "nonpositive_steps": (np.arange(-500, 0), np.linspace(3, 1, 500), {1}),
        "one_step_repeated": (np.full(50, 7), np.linspace(3, 1, 50), {1}),
        "empty": (np.array([], dtype=np.int64), np.array([]), {1}),
    }
    for name, (s, y, statuses) in cases.items():
        fit = fit_power_law(s, y)
        assert isinstance(fit, PowerLawFit)
        assert not fit.converged and fit.status in statuses, (name, fit.status, POWER_LAW_STATUS[fit.status])
        assert math.isnan(extrapolation_gain(fit, 10, 100)[0]), name


def test_fit_power_law_nan_inf_are_dropped_and_step_zero_skipped():
    steps = np.arange(0, 1000)
    y = 2.0 + 4.0 * np.maximum(steps, 1) ** -0.6
    dirty = y.copy()
    dirty[[5, 100, 101, 999]] = [np.nan, np.inf, -np.inf, np.nan]
    fit = fit_power_law(steps, dirty)
    keep = np.isfinite(dirty) & (steps > 0)
    ref = fit_power_law(steps[keep], y[keep])
    assert fit.n == keep.sum() and fit.converged
    np.testing.assert_allclose(fit[:3], ref[:3], rtol=1e-12)
    np.testing.assert_allclose(fit[:3], (2.0, 4.0, 0.6), rtol=1e-6)


def test_fit_power_law_flat_noisy_is_not_a_confident_decrease():
    rng = np.random.default_rng(8)
    steps = np.arange(1, 2001)
    fit = fit_power_law(steps, 2.0 + 0.01 * rng.standard_normal(2000))
    if fit.converged:  # a tiny fitted decay must not be significant
        gain, se = extrapolation_gain(fit, 2000, 20000)
        assert abs(gain) < 3 * se + 1e-3, fit


def test_predict_and_gain_delta_method():
    rng = np.random.default_rng(12)
    steps = np.arange(1, 3001)
    y = 1.0 + 2.0 * steps ** -0.5 + 0.005 * rng.standard_normal(steps.size)
    fit = fit_power_law(steps, y)
    pred, se = power_law_predict(fit, np.array([0, 10, 3000, 30000]), return_se=True)
    assert math.isnan(pred[0])
    np.testing.assert_allclose(pred[1:], _model(np.array([10, 3000, 30000.0]), *fit[:3]), rtol=1e-14)
    assert np.all(se[1:] > 0) and se[3] > se[2]  # extrapolating is less certain
    np.testing.assert_allclose(power_law_predict(fit[:3], [100.0]), _model(100.0, *fit[:3]))
    gain, gse = extrapolation_gain(fit, 3000, 30000)
    assert gain == pytest.approx(pred[2] - pred[3], rel=1e-12)
    # delta method vs a finite-difference gradient of the same function
    def g(p):
        return p[1] * (3000.0 ** -p[2] - 30000.0 ** -p[2])
    p0 = np.array(fit[:3])
    grad = np.array([(g(p0 + h) - g(p0 - h)) / (2 * 1e-7) for h in np.eye(3) * 1e-7])
    assert gse == pytest.approx(math.sqrt(grad @ fit.cov @ grad), rel=1e-5)
    # truth within the interval: the true gain is 2*(3000^-.5 - 30000^-.5)
    true_gain = 2.0 * (3000 ** -0.5 - 30000 ** -0.5)
    assert abs(gain - true_gain) < 4 * gse
    with pytest.raises(ValueError):
        extrapolation_gain(fit, 100, 10)


def test_segment_fit_columns_documented():
    assert SEGMENT_FIT_COLUMNS == ("slope", "intercept", "slope_se", "intercept_se",
                                   "residual_sd", "n", "mean")
