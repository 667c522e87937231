"""kernels/smoothing.py against its slow twins, its invariants and the anchor libraries."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.smoothing import (debiased_ema, ema, gaussian_smooth, hampel_filter, rolling_mean,
                               rolling_median, time_weighted_ema)
from tests.reference.smoothing_ref import (debiased_ema_ref, ema_ref, gaussian_smooth_ref,
                                           hampel_filter_ref, rolling_mean_ref, rolling_median_ref,
                                           time_weighted_ema_ref)

NONFINITE = [math.nan, math.inf, -math.inf]
values_st = st.one_of(st.floats(-1e6, 1e6), st.sampled_from(NONFINITE))
curves = hnp.arrays(np.float64, st.integers(0, 120), elements=values_st)


def steps_for(n, seed):
    """Strictly increasing, unevenly spaced integer steps."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.integers(1, 6, size=n)).astype(np.int64)


def close(ours, ref, x, msg="", rtol=1e-9):
    """Elementwise agreement up to float error relative to the curve's magnitude."""
    finite = np.abs(x[np.isfinite(x)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * scale, equal_nan=True, err_msg=msg)


# name -> (ours(x, steps), twin(x, steps)); steps are used by the step-aware kernels
KERNELS = {
    "ema": (lambda x, s: ema(x, alpha=0.3), lambda x, s: ema_ref(x, 0.3)),
    "debiased_ema": (lambda x, s: debiased_ema(x, weight=0.6), lambda x, s: debiased_ema_ref(x, 0.6)),
    "time_weighted_ema": (lambda x, s: time_weighted_ema(s, x, half_life_steps=4.0),
                          lambda x, s: time_weighted_ema_ref(s, x, 4.0)),
    "rolling_mean": (lambda x, s: rolling_mean(x, window=7), lambda x, s: rolling_mean_ref(x, 7)),
    "rolling_mean_centred": (lambda x, s: rolling_mean(x, window=6, center=True, min_periods=2),
                             lambda x, s: rolling_mean_ref(x, 6, True, 2)),
    "rolling_median": (lambda x, s: rolling_median(x, window=7), lambda x, s: rolling_median_ref(x, 7)),
    "rolling_median_centred": (lambda x, s: rolling_median(x, window=8, center=True, min_periods=3),
                               lambda x, s: rolling_median_ref(x, 8, True, 3)),
    "gaussian_smooth": (lambda x, s: gaussian_smooth(s, x, sigma_steps=3.3),
                        lambda x, s: gaussian_smooth_ref(s, x, 3.3)),
    "hampel_filter": (lambda x, s: hampel_filter(x, window=9, n_sigmas=2.0),
                      lambda x, s: hampel_filter_ref(x, 9, 2.0)),
}
SMOOTHERS = sorted(KERNELS)
CAUSAL = ["ema", "debiased_ema", "time_weighted_ema", "rolling_mean", "rolling_median"]


# --- twins: hypothesis ------------------------------------------------------------------

@settings(deadline=None)
@given(x=curves, seed=st.integers(0, 2**16))
@pytest.mark.parametrize("name", SMOOTHERS)
def test_matches_reference(name, x, seed):
    ours, twin = KERNELS[name]
    s = steps_for(len(x), seed)
    close(ours(x, s), twin(x, s), x, msg=f"{name} seed={seed} x={x!r}")


@settings(deadline=None)
@given(x=curves, alpha=st.floats(0.01, 1.0))
def test_ema_any_alpha(x, alpha):
    close(ema(x, alpha=alpha), ema_ref(x, alpha), x, msg=f"alpha={alpha}")


@settings(deadline=None)
@given(x=curves, weight=st.floats(0.0, 0.99))
def test_debiased_ema_any_weight(x, weight):
    close(debiased_ema(x, weight=weight), debiased_ema_ref(x, weight), x, msg=f"weight={weight}")


@settings(deadline=None)
@given(x=curves, window=st.integers(1, 40), center=st.booleans(), mp=st.integers(1, 40))
def test_rolling_any_window(x, window, center, mp):
    mp = min(mp, window)
    close(rolling_median(x, window=window, center=center, min_periods=mp),
          rolling_median_ref(x, window, center, mp), x, msg=f"median w={window} c={center} mp={mp}")
    close(rolling_mean(x, window=window, center=center, min_periods=mp),
          rolling_mean_ref(x, window, center, mp), x, msg=f"mean w={window} c={center} mp={mp}")


@settings(deadline=None)
@given(x=curves, window=st.integers(1, 30), n_sigmas=st.floats(0.0, 5.0))
def test_hampel_any_window(x, window, n_sigmas):
    close(hampel_filter(x, window=window, n_sigmas=n_sigmas), hampel_filter_ref(x, window, n_sigmas), x,
          msg=f"w={window} n_sigmas={n_sigmas}")


@settings(deadline=None)
@given(x=curves, seed=st.integers(0, 2**16), h=st.floats(0.5, 50.0), sigma=st.floats(0.3, 8.0))
def test_step_kernels_any_parameter(x, seed, h, sigma):
    s = steps_for(len(x), seed)
    close(time_weighted_ema(s, x, half_life_steps=h), time_weighted_ema_ref(s, x, h), x, msg=f"h={h}")
    close(gaussian_smooth(s, x, sigma_steps=sigma), gaussian_smooth_ref(s, x, sigma), x, msg=f"sigma={sigma}")


# --- twins: named placements of NaN / +Inf / -Inf, lengths 0 and 1, 1e300 ----------------

def placed(pattern, bad, n=40, seed=3):
    x = np.random.default_rng(seed).normal(5.0, 1.0, n)
    if pattern == "first":
        x[0] = bad
    elif pattern == "last":
        x[-1] = bad
    elif pattern == "middle_run":
        x[15:24] = bad
    elif pattern == "everywhere":
        x[:] = bad
    elif pattern == "mixed":
        x[::3] = [NONFINITE[i % 3] for i in range(len(x[::3]))]
    return x


@pytest.mark.parametrize("name", SMOOTHERS)
@pytest.mark.parametrize("bad", NONFINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("pattern", ["first", "last", "middle_run", "everywhere", "mixed"])
def test_nonfinite_placements(name, bad, pattern):
    x = placed(pattern, bad)
    ours, twin = KERNELS[name]
    s = steps_for(len(x), 7)
    close(ours(x, s), twin(x, s), x, msg=f"{name} {pattern} {bad}")


@pytest.mark.parametrize("name", SMOOTHERS)
@pytest.mark.parametrize("x", [[], [2.5], [math.nan], [math.inf], [-1e300, 1e300]], ids=repr)
def test_tiny_inputs(name, x):
    x = np.array(x, dtype=np.float64)
    ours, twin = KERNELS[name]
    s = steps_for(len(x), 1)
    out = ours(x, s)
    assert out.shape == x.shape and out.dtype == np.float64
    close(out, twin(x, s), x, msg=name)


@pytest.mark.parametrize("name", SMOOTHERS)
def test_huge_values_1e300(name):
    x = np.random.default_rng(11).normal(0.0, 1.0, 80)
    x[20] = 1e300
    x[50] = -1e300
    ours, twin = KERNELS[name]
    s = steps_for(len(x), 11)
    got, want = ours(x, s), twin(x, s)
    # elementwise relative: windows that never saw a spike must be exact at their own scale
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=name)


def test_rolling_mean_recovers_after_1e300_leaves_window():
    # a plain running sum adds 1e300 and later subtracts it, and keeps nothing of the rest
    x = np.array([1.0, 2.0, 1e300, 3.0, 4.0, 5.0, 6.0])
    out = rolling_mean(x, window=3)
    assert out[5] == 4.0 and out[6] == 5.0, out


# --- invariants -------------------------------------------------------------------------

@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("seed", [0, 1])
def test_causal_prefix(name, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, 60)
    x[rng.choice(60, 8, replace=False)] = math.nan
    x[5] = math.inf
    s = steps_for(60, seed)
    ours = KERNELS[name][0]
    full = ours(x, s)
    for cut in (1, 2, 17, 59):
        # debiased_ema checks "is the whole series constant" first, so a prefix could
        # take the shortcut; it does not here (the prefixes are not constant), and the
        # comparison is then exact as for every causal kernel
        np.testing.assert_array_equal(ours(x[:cut], s[:cut]), full[:cut], err_msg=f"{name} seed={seed} cut={cut}")


@pytest.mark.parametrize("name", SMOOTHERS)
@pytest.mark.parametrize("a,b", [(2.5, -3.0), (1e-3, 1e6), (7.0, 0.0)])
def test_affine_equivariance(name, a, b):
    x = np.random.default_rng(5).normal(1.0, 2.0, 70)
    x[10] = math.nan
    x[33] = 40.0  # a spike, so hampel has something to replace
    ours = KERNELS[name][0]
    s = steps_for(70, 5)
    want = a * ours(x, s) + b
    got = ours(a * x + b, s)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * (abs(b) + a * 40), equal_nan=True,
                               err_msg=f"{name} a={a} b={b}")


@pytest.mark.parametrize("name", SMOOTHERS)
@pytest.mark.parametrize("c", [0.1, -7.25, 1e9 + 0.3])
def test_constant_in_constant_out(name, c):
    x = np.full(50, c)
    out = KERNELS[name][0](x, steps_for(50, 2))
    np.testing.assert_allclose(out, c, rtol=1e-14, err_msg=f"{name} c={c}")


@pytest.mark.parametrize("name", SMOOTHERS)
def test_input_not_modified(name):
    x = placed("mixed", math.nan)
    s = steps_for(len(x), 4)
    x0, s0 = x.copy(), s.copy()
    KERNELS[name][0](x, s)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(s, s0)


@pytest.mark.parametrize("name", SMOOTHERS)
def test_large_offset_keeps_precision(name):
    # a curve around 1e9 smoothed must equal the smoothed small curve shifted, to the
    # spacing of doubles there (~1.2e-7), not to the digits a raw sum would lose
    x = np.random.default_rng(8).normal(0.0, 0.01, 300)
    s = steps_for(300, 8)
    ours = KERNELS[name][0]
    np.testing.assert_allclose(ours(x + 1e9, s) - 1e9, ours(x, s), rtol=0, atol=2e-6, err_msg=name)


# --- definitions the twins do not cover -------------------------------------------------

def test_time_weighted_ema_equals_ema_on_uniform_steps():
    # no NaN here on purpose: across a missing point the step gap doubles, so
    # time_weighted_ema decays twice as far while ema only skips the point
    x = np.random.default_rng(9).normal(0, 1, 500)
    for gap, h in [(1, 10.0), (5, 12.5), (100, 30.0)]:
        s = np.arange(500, dtype=np.int64) * gap + 17
        alpha = 1.0 - 0.5 ** (gap / h)
        np.testing.assert_allclose(time_weighted_ema(s, x, half_life_steps=h), ema(x, alpha=alpha),
                                   rtol=1e-13, atol=1e-13, err_msg=f"gap={gap} h={h}")


def test_time_weighted_ema_half_life_means_half():
    # a unit step after a long run of zeros, seen half_life steps later in one gap
    s = np.array([0, 10, 30], dtype=np.int64)
    out = time_weighted_ema(s, np.array([0.0, 0.0, 1.0]), half_life_steps=20.0)
    assert out[2] == pytest.approx(0.5, abs=1e-15)


def test_debiased_ema_tensorboard_example():
    # worked by hand from classicSmoothing with w = 0.5: last = 0.5, out = 0.5 / 0.5 = 1;
    # then last = 0.25 + 1.0 = 1.25, out = 1.25 / 0.75; NaN passes through without
    # counting; then last = 0.625 + 2.0 = 2.625, out = 2.625 / 0.875
    out = debiased_ema(np.array([1.0, 2.0, math.nan, 4.0]), weight=0.5)
    np.testing.assert_allclose(out, [1.0, 1.25 / 0.75, math.nan, 2.625 / 0.875], rtol=1e-15)
    # constant series: returned unchanged (TensorBoard #786), including for w = 0
    np.testing.assert_array_equal(debiased_ema(np.full(5, 0.3), weight=0.99), np.full(5, 0.3))


@pytest.mark.parametrize("fn,kw", [(ema, {"alpha": 0.0}), (ema, {"alpha": 1.5}),
                                   (debiased_ema, {"weight": 1.0}), (debiased_ema, {"weight": -0.1}),
                                   (rolling_mean, {"window": 0}), (rolling_median, {"window": 2.5}),
                                   (rolling_median, {"window": 5, "min_periods": 6}),
                                   (hampel_filter, {"window": 5, "n_sigmas": -1.0})])
def test_bad_parameters_raise(fn, kw):
    with pytest.raises(ValueError, match=fn.__name__):
        fn(np.ones(5), **kw)


def test_bad_steps_name_the_index():
    with pytest.raises(ValueError, match=r"steps\[3\] = 2 follows steps\[2\] = 5"):
        gaussian_smooth(np.array([1, 2, 5, 2]), np.ones(4), sigma_steps=1.0)
    with pytest.raises(ValueError, match="4 points"):
        time_weighted_ema(np.arange(3), np.ones(4), half_life_steps=1.0)


# --- anchors ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ema_equals_pandas_and_polars(seed):
    import pandas as pd
    import polars as pl
    x = np.random.default_rng(seed).normal(3.0, 1.0, 2000).cumsum()
    for alpha in (0.01, 0.2, 0.9, 1.0):
        ours = ema(x, alpha=alpha)
        np.testing.assert_allclose(ours, pd.Series(x).ewm(alpha=alpha, adjust=False).mean().to_numpy(),
                                   rtol=1e-12, err_msg=f"pandas seed={seed} alpha={alpha}")
        np.testing.assert_allclose(ours, pl.Series(x).ewm_mean(alpha=alpha, adjust=False).to_numpy(),
                                   rtol=1e-12, err_msg=f"polars seed={seed} alpha={alpha}")


def test_ema_skips_nan_like_pandas_ignore_na():
    import pandas as pd
    x = np.random.default_rng(4).normal(0, 1, 500)
    x[[0, 1, 50, 51, 52, 499]] = math.nan
    want = pd.Series(x).ewm(alpha=0.1, adjust=False, ignore_na=True).mean().to_numpy()
    # pandas puts the carried level at NaN positions too (after the first observation)
    np.testing.assert_allclose(ema(x, alpha=0.1), want, rtol=1e-12, equal_nan=True)


def test_debiased_ema_equals_pandas_adjusted_ewm():
    # TensorBoard's debiasing is exactly pandas' adjust=True weighting with alpha = 1 - w
    import pandas as pd
    x = np.random.default_rng(6).normal(0, 1, 1000).cumsum()
    x[[100, 101, 700]] = math.nan
    ours = debiased_ema(x, weight=0.6)
    want = pd.Series(x).ewm(alpha=0.4, adjust=True, ignore_na=True).mean().to_numpy()
    finite = np.isfinite(x)  # where x is NaN, TensorBoard passes NaN and pandas carries
    np.testing.assert_allclose(ours[finite], want[finite], rtol=1e-12)
    assert np.isnan(ours[~finite]).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_time_weighted_ema_equals_polars_ewm_mean_by(seed):
    import polars as pl
    rng = np.random.default_rng(seed)
    s = np.cumsum(rng.integers(1, 50, 1500)).astype(np.int64)
    x = rng.normal(0, 1, 1500).cumsum()
    want = pl.DataFrame({"s": s, "x": x}).select(pl.col("x").ewm_mean_by("s", half_life="37i"))["x"].to_numpy()
    np.testing.assert_allclose(time_weighted_ema(s, x, half_life_steps=37), want, rtol=1e-12,
                               err_msg=f"seed={seed}")


def nan_curve(seed, n=3000):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n).cumsum()
    x[rng.choice(n, n // 20, replace=False)] = math.nan
    x[200:260] = math.nan
    return x


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("window,mp", [(1, 1), (5, 1), (101, 1), (101, 101), (100, 30)])
def test_rolling_equals_bottleneck(seed, window, mp):
    import bottleneck as bn
    x = nan_curve(seed)
    np.testing.assert_allclose(rolling_median(x, window=window, min_periods=mp),
                               bn.move_median(x, window, min_count=mp), rtol=1e-14, equal_nan=True,
                               err_msg=f"median seed={seed} w={window} mp={mp}")
    np.testing.assert_allclose(rolling_mean(x, window=window, min_periods=mp),
                               bn.move_mean(x, window, min_count=mp), rtol=1e-9, atol=1e-9, equal_nan=True,
                               err_msg=f"mean seed={seed} w={window} mp={mp}")


@pytest.mark.parametrize("window", [1, 2, 7, 50, 101])
def test_rolling_centred_equals_pandas(window):
    import pandas as pd
    x = nan_curve(3)
    r = pd.Series(x).rolling(window, center=True, min_periods=1)
    np.testing.assert_allclose(rolling_median(x, window=window, center=True), r.median().to_numpy(),
                               rtol=1e-14, equal_nan=True, err_msg=f"w={window}")
    np.testing.assert_allclose(rolling_mean(x, window=window, center=True), r.mean().to_numpy(),
                               rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"w={window}")


@pytest.mark.parametrize("sigma", [1.0, 2.5, 4.1, 10.0])
def test_gaussian_equals_scipy_on_uniform_steps(sigma):
    # Deliberate differences: scipy reflects the curve at its ends while we renormalise
    # over the points present, so only points at least one radius from the ends are
    # compared; scipy's radius is int(4 sigma + 0.5), ours floor(4 sigma), so the sigmas
    # here are ones where the two agree (4.1 -> 16.4 -> radius 16 in both).
    from scipy.ndimage import gaussian_filter1d
    x = np.random.default_rng(12).normal(0, 1, 800).cumsum()
    radius = int(math.floor(4 * sigma))
    assert int(4 * sigma + 0.5) == radius
    ours = gaussian_smooth(np.arange(800) * 3, x, sigma_steps=3 * sigma)  # step units: gap 3
    want = gaussian_filter1d(x, sigma, truncate=4.0, mode="reflect")
    np.testing.assert_allclose(ours[radius:-radius], want[radius:-radius], rtol=1e-12, atol=1e-12,
                               err_msg=f"sigma={sigma}")


def test_hampel_removes_spikes_and_keeps_noise():
    rng = np.random.default_rng(13)
    clean = np.linspace(5, 2, 400) + rng.normal(0, 0.05, 400)
    x = clean.copy()
    x[[50, 51, 200, 333]] += [3.0, 2.5, -4.0, 50.0]
    x[120] = math.inf
    out = hampel_filter(x, window=15, n_sigmas=3.0)
    assert np.all(np.abs(out[[50, 51, 200, 333, 120]] - clean[[50, 51, 200, 333, 120]]) < 0.3), out[[50, 51, 200, 333]]
    untouched = np.abs(out - x) == 0
    assert untouched.mean() > 0.9  # Gaussian noise beyond 3 robust sd is rare


@pytest.mark.parametrize("sorted_max", [0, 10**9], ids=["heaps_only", "sorted_only"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rolling_median_both_algorithms(monkeypatch, sorted_max, seed):
    # rolling_median picks a sorted window for small windows and two heaps above; each
    # algorithm must match the twin on every window size, ties and NaN runs included
    import kernels.smoothing as smoothing
    monkeypatch.setattr(smoothing, "_SORTED_MAX_WINDOW", sorted_max)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, 300).astype(np.float64)  # many ties
    x[rng.choice(300, 40, replace=False)] = math.nan
    x[100:130] = math.inf
    x[200] = -math.inf
    for window in (1, 2, 3, 8, 17, 33, 64):
        for center in (False, True):
            close(rolling_median(x, window=window, center=center), rolling_median_ref(x, window, center), x,
                  msg=f"sorted_max={sorted_max} seed={seed} w={window} c={center}")


@pytest.mark.parametrize("seed", [0, 1])
def test_long_finite_curves_take_the_lane_path_and_match(seed):
    # all-finite curves of >= 256 points run the four-lane EMA (and the debiased head +
    # lanes); they must agree with the twins, and a prefix must agree with the full run
    # to rounding (lane boundaries move with the length, so not bit for bit)
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, 700).cumsum() + 50.0
    x[300] = 1e300 if seed else -40.0
    for alpha in (0.001, 0.05, 0.3, 1.0):
        close(ema(x, alpha=alpha), ema_ref(x, alpha), x, msg=f"ema seed={seed} alpha={alpha}")
        np.testing.assert_allclose(ema(x[:400], alpha=alpha), ema(x, alpha=alpha)[:400], rtol=1e-12)
    for weight in (0.0, 0.6, 0.97):
        close(debiased_ema(x, weight=weight), debiased_ema_ref(x, weight), x, msg=f"debiased seed={seed} w={weight}")
    np.testing.assert_array_equal(ema(np.full(1000, 0.1), alpha=0.3), 0.1)
    np.testing.assert_array_equal(debiased_ema(np.r_[np.full(999, 0.1), 0.2], weight=0.3)[:999], 0.1)


def test_time_weighted_ema_long_uniform_and_uneven_match_twin():
    rng = np.random.default_rng(21)
    x = rng.normal(0, 1, 600).cumsum()
    for s in (np.arange(600, dtype=np.int64) * 7, steps_for(600, 21)):
        close(time_weighted_ema(s, x, half_life_steps=25.0), time_weighted_ema_ref(s, x, 25.0), x)


@pytest.mark.parametrize("pattern", ["none", "first", "middle_run", "mixed", "everywhere"])
@pytest.mark.parametrize("gap,sigma", [(1, 2.0), (3, 7.5), (5, 1.0)])
def test_gaussian_even_steps_match_twin(pattern, gap, sigma):
    # evenly spaced steps take the fixed-kernel path in the interior
    x = placed(pattern, math.nan, n=90) if pattern != "none" else placed("first", 1.0, n=90)
    if pattern == "mixed":
        x[40] = 1e300
    s = np.arange(90, dtype=np.int64) * gap + 1000
    got = gaussian_smooth(s, x, sigma_steps=sigma)
    np.testing.assert_allclose(got, gaussian_smooth_ref(s, x, sigma), rtol=1e-9, atol=1e-9, equal_nan=True,
                               err_msg=f"{pattern} gap={gap} sigma={sigma}")
    np.testing.assert_allclose(gaussian_smooth(s, x + 1e9, sigma_steps=sigma) - 1e9, got, atol=2e-6, equal_nan=True)


@pytest.mark.parametrize("bad,bad_at", [(math.nan, 5), (math.inf, 350), (-math.inf, 350), (math.nan, 699)],
                         ids=["nan@5", "inf@350", "-inf@350", "nan@699"])
def test_long_curves_with_a_nonfinite_point_fall_back_exactly(bad, bad_at):
    # the lane path discovers a non-finite point only at the end (a level that turned
    # NaN/Inf) and must then redo the curve with the skipping loop
    x = np.random.default_rng(bad_at).normal(0, 1, 700).cumsum()
    x[bad_at] = bad
    s = np.arange(700, dtype=np.int64) * 2
    close(ema(x, alpha=0.02), ema_ref(x, 0.02), x, msg=f"ema {bad} at {bad_at}")
    close(debiased_ema(x, weight=0.9), debiased_ema_ref(x, 0.9), x, msg=f"debiased {bad} at {bad_at}")
    close(time_weighted_ema(s, x, half_life_steps=30.0), time_weighted_ema_ref(s, x, 30.0), x, msg=f"tw {bad} at {bad_at}")
    close(rolling_mean(x, window=50, center=True), rolling_mean_ref(x, 50, True), x, msg=f"mean {bad} at {bad_at}")
