"""kernels/spikes.py against its slow twins, pandas, the field's rules, and generated curves."""

import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from kernels.spikes import (find_spikes, kill_loss_spike, kill_loss_spike_window, megatron_spikes,
                            olmo_spikes, robust_zscore)
from tests.reference.spikes_ref import (find_spikes_ref, kill_loss_spike_ref, megatron_spikes_ref,
                                        olmo_spikes_ref, robust_zscore_ref)

NONFINITE = [math.nan, math.inf, -math.inf]
values_el = st.one_of(st.floats(-1e6, 1e6), st.sampled_from(NONFINITE))
curves = hnp.arrays(np.float64, st.integers(0, 80), elements=values_el)
# integer-valued curves: many exact ties in medians, MADs and thresholds
tied_curves = hnp.arrays(np.float64, st.integers(0, 80),
                         elements=st.one_of(st.integers(0, 6).map(float), st.sampled_from(NONFINITE)))
positive = hnp.arrays(np.float64, st.integers(0, 120),
                      elements=st.one_of(st.floats(0.01, 1e4), st.integers(1, 5).map(float),
                                         st.sampled_from(NONFINITE)))


def _eq(a, b, **kw):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True, **kw)


# ------------------------------------------------------------------ robust_zscore


@settings(deadline=None)
@given(x=st.one_of(curves, tied_curves), window=st.integers(1, 12), center=st.booleans(),
       min_periods=st.integers(1, 12))
def test_robust_zscore_matches_reference(x, window, center, min_periods):
    min_periods = min(min_periods, window)
    before = x.copy()
    got = robust_zscore(x, window=window, center=center, min_periods=min_periods)
    np.testing.assert_array_equal(x, before)  # input untouched
    _eq(got, robust_zscore_ref(list(x), window, center, min_periods))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("window,center", [(1, False), (2, False), (7, False), (8, True), (31, True), (50, False)])
def test_robust_zscore_equals_pandas_on_finite_input(seed, window, center):
    x = np.random.default_rng(seed).standard_t(5, 400) + np.linspace(5, 1, 400)
    s = pd.Series(x)
    r = s.rolling(window, center=center)
    med = r.median()
    mad = r.apply(lambda a: np.median(np.abs(a - np.median(a))), raw=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = ((s - med) / (1.4826 * mad)).to_numpy()
    got = robust_zscore(x, window=window, center=center, scale_floor=0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True,
                               err_msg=f"seed={seed} window={window} center={center}")


@pytest.mark.parametrize("where", ["first", "last", "middle_run", "everywhere"])
@pytest.mark.parametrize("bad", NONFINITE)
def test_robust_zscore_nonfinite_positions(where, bad):
    x = np.random.default_rng(7).normal(size=60)
    if where == "first":
        x[0] = bad
    elif where == "last":
        x[-1] = bad
    elif where == "middle_run":
        x[20:26] = bad
    else:
        x[:] = bad
    got = robust_zscore(x, window=9, min_periods=3)
    _eq(got, robust_zscore_ref(list(x), 9, False, 3))
    assert np.all(np.isnan(got[~np.isfinite(x)])), f"{where} {bad}: non-finite points must get NaN"


def test_robust_zscore_edges():
    assert robust_zscore(np.array([]), window=5).shape == (0,)
    assert np.isnan(robust_zscore(np.array([1.0]), window=5)[0])
    assert robust_zscore(np.array([1.0]), window=5, min_periods=1)[0] == 0.0
    # a flat stretch with a step: the floor keeps z finite and the flat points at 0
    x = np.r_[np.full(50, 2.0), 3.0, np.full(20, 2.0)]
    z = robust_zscore(x, window=11)
    assert np.all(np.isfinite(z[10:])) and np.all(z[10:50] == 0.0)
    assert z[50] > 1e6  # a deviation from a perfectly flat baseline is huge, not inf
    # a constant curve: z = 0 everywhere it is defined
    assert np.all(robust_zscore(np.full(30, 5.0), window=5)[4:] == 0.0)


def test_robust_zscore_is_causal_and_affine_invariant():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=300)) + rng.standard_t(3, 300)
    z = robust_zscore(x, window=21, scale_floor=0.0)
    for cut in (25, 100, 299):
        _eq(robust_zscore(x[:cut], window=21, scale_floor=0.0), z[:cut])
    _eq(robust_zscore(3.5 * x - 40.0, window=21), robust_zscore(x, window=21))


def test_robust_zscore_rejects_bad_parameters():
    with pytest.raises(ValueError, match="window"):
        robust_zscore(np.ones(3), window=0)
    with pytest.raises(ValueError, match="min_periods"):
        robust_zscore(np.ones(3), window=3, min_periods=4)
    with pytest.raises(ValueError, match="scale_floor"):
        robust_zscore(np.ones(3), window=3, scale_floor=-1.0)


# ------------------------------------------------------------------ find_spikes


def _check_find_spikes(x, **kw):
    steps = np.arange(len(x), dtype=np.int64) * 10 + 5
    got = find_spikes(steps, x, **kw)
    ref = find_spikes_ref(steps, list(x), **kw)
    for g, r, name in zip(got, ref, ["index", "step", "height", "recovery", "recovered"]):
        if name == "height":
            _eq(g, r, err_msg=f"{name} {kw}")
        else:
            np.testing.assert_array_equal(g, r, err_msg=f"{name} {kw}")


@settings(deadline=None)
@given(x=st.one_of(curves, tied_curves), window=st.integers(2, 15), threshold=st.floats(0.5, 8.0),
       direction=st.sampled_from([1, -1]), tol=st.floats(0.0, 4.0), min_periods=st.integers(1, 15))
def test_find_spikes_matches_reference(x, window, threshold, direction, tol, min_periods):
    _check_find_spikes(x, window=window, threshold_z=threshold, direction=direction,
                       recovery_tolerance_noise=tol, min_periods=min(min_periods, window))


def _decaying_curve(n, rng, noise="gauss", rel=0.02):
    t = np.arange(1, n + 1)
    level = 2.0 + 8.0 * (t / n * 1000 + 1) ** -0.5
    eps = rng.standard_normal(n) if noise == "gauss" else rng.standard_t(5, n) / math.sqrt(5 / 3)
    return level, level * (1 + rel * eps)


@pytest.mark.parametrize("seed", range(5))
def test_find_spikes_finds_injected_spikes_with_step_height_and_recovery(seed):
    """Spikes of known height (in noise units) and exponential decay over L points.

    Heights are checked where the trend inside a 101-point window is small against the
    noise (index >= 1000): on the steep start of the curve the rolling MAD contains the
    descent and heights come out up to ~40% low (measured: 22.8 for an injected 39.4 at
    index 300), which is the documented cost of a median/MAD baseline."""
    rng = np.random.default_rng(seed)
    n = 6000
    level, x = _decaying_curve(n, rng)
    steps = np.arange(n, dtype=np.int64) * 4  # steps != indices
    at = np.sort(rng.choice(np.arange(300, n - 300, 400), size=8, replace=False))
    heights = rng.uniform(12.0, 40.0, size=8)  # in noise units (noise sigma = 2% of level)
    lengths = rng.integers(1, 30, size=8)  # points the spike takes to decay
    for a, h, L in zip(at, heights, lengths):
        x[a:a + L] += h * 0.02 * level[a] * np.exp(-np.arange(L) * (6.0 / L))
    idx, stp, height, rec, ok = find_spikes(steps, x)
    msg = f"seed={seed} at={at.tolist()} heights={np.round(heights, 1).tolist()} lengths={lengths.tolist()}"
    found = {int(i): k for k, i in enumerate(idx)}
    for a, h, L in zip(at, heights, lengths):
        assert a in found, f"missed spike at index {a}; found {idx.tolist()}; {msg}"
        k = found[a]
        assert stp[k] == steps[a] and ok[k], msg
        if a >= 1000:
            assert 0.7 * h < height[k] < 1.4 * h, f"height {height[k]:.1f} vs injected {h:.1f}; {msg}"
        # bump in noise units b_j = h exp(-6j/L): no recovery while b_j > 7 (noise would have
        # to exceed ~4 sigma), and recovery by 8 points after b_j <= 1 (each point there
        # recovers with p >= 0.84)
        b = np.r_[h * np.exp(-np.arange(L) * (6.0 / L)), np.zeros(40)]
        j_min = int(np.argmax(b <= 7.0))
        j_max = int(np.argmax(b <= 1.0)) + 8
        assert steps[a + j_min] - steps[a] <= rec[k] <= steps[a + j_max] - steps[a], \
            f"recovery {rec[k]} steps outside [{j_min}, {j_max}] points; {msg}"
    assert len(idx) == len(at), f"{len(idx) - len(at)} extra spikes {sorted(set(idx.tolist()) - set(at.tolist()))}; {msg}"


def test_find_spikes_unrecovered_level_shift_and_direction():
    rng = np.random.default_rng(11)
    n = 2000
    x = 1.0 + 0.01 * rng.standard_normal(n)
    x[1500:] += 0.5  # the loss jumps and stays: a spike that never recovers
    idx, stp, height, rec, ok = find_spikes(np.arange(n), x)
    assert len(idx) == 1 and 1500 <= idx[0] and not ok[0] and rec[0] == -1
    assert height[0] > 30
    # an accuracy curve that drops: found only with direction=-1
    acc = 0.8 + 0.005 * rng.standard_normal(n)
    acc[900:905] -= 0.2
    assert len(find_spikes(np.arange(n), acc)[0]) == 0
    idx, stp, height, rec, ok = find_spikes(np.arange(n), acc, direction=-1)
    assert list(idx) and 900 <= idx[0] < 905 and ok[0] and rec[0] == 5


def test_find_spikes_nonfinite_are_not_spikes_and_do_not_break_the_baseline():
    rng = np.random.default_rng(5)
    x = 3.0 + 0.01 * rng.standard_normal(1000)
    x[[100, 400, 401, 402]] = [np.nan, np.inf, -np.inf, np.nan]
    x[600] += 0.3
    idx, stp, *_ = find_spikes(np.arange(1000), x)
    assert idx.tolist() == [600]
    _check_find_spikes(x)


def _false_spike_rate(noise, seeds=range(6), n=20_000):
    count = 0
    for seed in seeds:
        _, x = _decaying_curve(n, np.random.default_rng(1000 + seed), noise)
        count += len(find_spikes(np.arange(n), x)[0])
    return count / (len(seeds) * n)


@pytest.mark.slow
def test_false_spike_rate_on_healthy_curves():
    """Healthy noisy decaying curves at the defaults (w=101, 6 noise units), no spikes.

    Measured (10 seeds x 2e4 points): Gaussian noise 0 false spikes in 2e5 points; t(5)
    noise 5.9e-4 per point (~6 per 10,000 points). Expected from the tails: a Gaussian
    passes 6 sigma with p = 1e-9; a t(5) passes 6 x its MAD-based sigma with p = 6.6e-4
    one-sided, so at this threshold heavy-tailed noise does produce spikes at about its
    tail rate. The bounds are those tail probabilities with room for sampling (6 seeds,
    ~80 expected events, 1.5x is ~4 standard deviations), not tuned to one curve."""
    from scipy import stats
    gauss = _false_spike_rate("gauss")
    heavy = _false_spike_rate("t5")
    t5 = stats.t(5)
    tail = t5.sf(6.0 * 1.4826 * t5.ppf(0.75))
    assert gauss <= 2 / 120_000, f"Gaussian false-spike rate {gauss:.2e} per point"
    assert heavy <= 1.5 * tail, f"t(5) false-spike rate {heavy:.2e} per point; tail probability {tail:.2e}"


def test_find_spikes_rejects_bad_input():
    with pytest.raises(ValueError, match="direction"):
        find_spikes(np.arange(3), np.ones(3), direction=0)
    with pytest.raises(ValueError, match="must match"):
        find_spikes(np.arange(4), np.ones(3))
    with pytest.raises(ValueError, match=r"step\[2\] = 1 < step\[1\] = 5"):
        find_spikes(np.array([0, 5, 1]), np.ones(3))
    with pytest.raises(ValueError, match="integers"):
        find_spikes(np.array([0.0, 0.5, 1.0]), np.ones(3))


# ------------------------------------------------------------------ compatibility detectors


@settings(deadline=None)
@given(x=positive, window=st.integers(1, 20), k=st.floats(0.0, 8.0))
def test_olmo_spikes_matches_source_logic(x, window, k):
    np.testing.assert_array_equal(olmo_spikes(x, window=window, n_sigmas=k), olmo_spikes_ref(x, window, k))


@settings(deadline=None)
@given(x=positive, window=st.integers(1, 20), mult=st.floats(0.5, 3.0), consecutive=st.integers(1, 6))
def test_kill_loss_spike_matches_source_logic(x, window, mult, consecutive):
    np.testing.assert_array_equal(kill_loss_spike(x, window=window, outlier_multiplier=mult, consecutive=consecutive),
                                  kill_loss_spike_ref(x, window, mult, consecutive))


@settings(deadline=None)
@given(x=st.one_of(positive, curves), factor=st.floats(1.0, 20.0), num_samples=st.integers(1, 30))
def test_megatron_spikes_matches_source_logic(x, factor, num_samples):
    np.testing.assert_array_equal(megatron_spikes(x, factor=factor, num_samples=num_samples),
                                  megatron_spikes_ref(x, factor, num_samples))


def test_compat_detectors_on_long_curves_match_source_logic():
    """Long enough for the running sums' periodic re-summation and many windows."""
    rng = np.random.default_rng(2)
    _, x = _decaying_curve(3000, rng, "t5", rel=0.05)
    x[[700, 1500, 2200]] *= [3.0, 1.6, 8.0]
    x[1800:1806] *= 2.5
    x[2500] = np.nan
    np.testing.assert_array_equal(olmo_spikes(x), olmo_spikes_ref(x))
    np.testing.assert_array_equal(kill_loss_spike(x, window=150), kill_loss_spike_ref(x, 150))
    np.testing.assert_array_equal(megatron_spikes(x), megatron_spikes_ref(x))
    assert olmo_spikes(x)[[700, 2200]].all()
    assert kill_loss_spike(x, window=150)[1804:1806].all() and kill_loss_spike(x, window=150).sum() == 2


def test_compat_exact_ties():
    # OLMo: history [0, 2] -> mean 1, std 1; value == threshold is not a spike (strict >)
    assert olmo_spikes(np.array([0.0, 2.0, 2.0]), window=2, n_sigmas=1.0).tolist() == [False, False, False]
    assert olmo_spikes(np.array([0.0, 2.0, 2.0 + 1e-15]), window=2, n_sigmas=1.0)[2]
    # OLMo: a flat history (std < 1e-10) never flags
    assert not olmo_spikes(np.r_[np.ones(128), 1e6]).any()
    # llm-foundry: loss == 2 x mean is an outlier (>=)
    assert kill_loss_spike(np.array([1.0, 1.0, 2.0]), window=2, consecutive=1).tolist() == [False, False, True]
    # Megatron: |x| == 10 x max is flagged (>=); the max is frozen after num_samples
    x = np.r_[np.ones(100), 10.0, 5.0, 9.99, 50.0, np.nan, -np.inf]
    assert megatron_spikes(x).tolist()[100:] == [True, False, False, True, True, True]


def test_kill_loss_spike_needs_five_in_a_row_and_default_window():
    x = np.ones(400)
    x[200:204] = 3.0  # four outliers: not enough
    x[300:305] = 3.0  # five: fires on the fifth
    out = kill_loss_spike(x, window=100)
    assert np.flatnonzero(out).tolist() == [304]
    assert kill_loss_spike_window(1000) == 100 and kill_loss_spike_window(10_000) == 500
    assert kill_loss_spike(x).tolist() == out.tolist()  # len 400 -> window 100


# ------------------------------------------------------------------ the screened search, the detrending pass, median_exact
# (added with the long-curve speed-up: the fast paths must give exactly what the plain
# ones give)

from kernels import noise as _noise_kernels  # noqa: E402
from kernels import smoothing as _smoothing_kernels  # noqa: E402
from kernels import spikes as _spikes_mod  # noqa: E402
from kernels.spikes import median_exact, rolling_baseline_noise  # noqa: E402


def _paths(steps, x, **kw):
    """find_spikes through the full pass, the forced screen and the automatic choice."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    args = (kw["window"], float(kw["threshold_z"]), int(kw["direction"]), float(kw["recovery_tolerance_noise"]),
            kw["min_periods"], kw["scale_floor"])
    return {p: _spikes_mod._find_spikes_impl(steps, x, *args, p) for p in ("full", "screened", "auto")}


def _assert_same_events(res, msg):
    for path in ("screened", "auto"):
        for g, r, name in zip(res[path], res["full"], ["index", "step", "height", "recovery", "recovered"]):
            np.testing.assert_array_equal(g, r, err_msg=f"{path} vs full: {name}; {msg}")


@settings(deadline=None, max_examples=60)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 1500), kind=st.sampled_from(["noise", "walk", "ties", "trend", "heavy"]),
       window=st.sampled_from([3, 11, 41]), threshold=st.sampled_from([2.0, 6.0, 8.0]), direction=st.sampled_from([1, -1]),
       tol=st.sampled_from([0.0, 2.0]), min_periods=st.integers(1, 11), floor=st.sampled_from([None, 0.0, 1e-3, 1.0]),
       n_spikes=st.integers(0, 12), nonfinite=st.booleans())
def test_find_spikes_screen_gives_the_full_pass_events(seed, n, kind, window, threshold, direction, tol, min_periods,
                                                       floor, n_spikes, nonfinite):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    if kind == "walk":
        x = np.cumsum(x)
    elif kind == "ties":
        x = np.round(x)
    elif kind == "trend":
        x = np.linspace(10.0, 1.0, n) + 0.01 * x
    elif kind == "heavy":
        x = rng.standard_t(1.5, n)
    if n and n_spikes:
        at = rng.integers(0, n, n_spikes)
        x[at] += direction * rng.uniform(1, 40, n_spikes) * (np.std(x) + 1e-9)
    if n and nonfinite:
        x[rng.random(n) < 0.05] = rng.choice(NONFINITE)
    steps = np.cumsum(rng.integers(1, 4, n))
    kw = dict(window=window, threshold_z=threshold, direction=direction, recovery_tolerance_noise=tol,
              min_periods=min(min_periods, window), scale_floor=floor)
    _assert_same_events(_paths(steps, x, **kw), f"seed={seed} n={n} kind={kind} {kw}")


@pytest.mark.parametrize("seed", [0, 1])
def test_find_spikes_screen_matches_the_twin(seed):
    """The forced screen against the slow twin written from the definition."""
    rng = np.random.default_rng(seed)
    n = 700
    x = np.linspace(3.0, 2.0, n) + 0.05 * rng.standard_normal(n)
    x[[100, 350, 351, 600]] += [2.0, 1.5, 1.5, -3.0]
    x[[50, 400]] = [math.nan, math.inf]
    steps = np.arange(n, dtype=np.int64) * 10 + 5
    for direction in (1, -1):
        kw = dict(window=11, threshold_z=6.0, direction=direction, recovery_tolerance_noise=2.0, min_periods=5,
                  scale_floor=None)
        got = _paths(steps, x, **kw)["screened"]
        ref = find_spikes_ref(steps, list(x), **kw)
        assert len(got[0]) >= 1, f"seed={seed} direction={direction}: the injected spikes were not found"
        for g, r, name in zip(got, ref, ["index", "step", "height", "recovery", "recovered"]):
            if name == "height":
                _eq(g, r, err_msg=f"{name} seed={seed} {kw}")
            else:
                np.testing.assert_array_equal(g, r, err_msg=f"{name} seed={seed} {kw}")


def test_find_spikes_screen_runs_on_a_detrended_long_curve():
    """What analyse feeds it: a curve in local-noise units. The screen must be chosen
    (few points pass it) and find the same spikes as the full pass."""
    rng = np.random.default_rng(7)
    n = 60_000
    x = rng.standard_normal(n) * 1.8
    at = np.array([5_000, 20_000, 20_001, 41_000, 59_990])
    x[at] += [30.0, 25.0, 25.0, 40.0, 35.0]
    steps = np.arange(1, n + 1, dtype=np.int64)
    kw = dict(window=101, threshold_z=8.0, direction=1, recovery_tolerance_noise=2.0, min_periods=11, scale_floor=1.0)
    assert _spikes_mod._screen(x, 101, 1.0, 8.0, 1) is not None, "the screen was not used"
    res = _paths(steps, x, **kw)
    _assert_same_events(res, "detrended long curve")
    assert set(res["auto"][1].tolist()) >= {5_001, 20_001, 41_001, 59_991}, res["auto"][1]


def test_find_spikes_screen_falls_back_when_the_floor_is_tiny():
    """A floor far below the noise lets most points pass the median bound alone; the MAD
    bound or the full pass takes over, with the same events."""
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.standard_normal(20_000))
    steps = np.arange(x.size, dtype=np.int64)
    kw = dict(window=41, threshold_z=2.0, direction=1, recovery_tolerance_noise=0.0, min_periods=11, scale_floor=0.0)
    _assert_same_events(_paths(steps, x, **kw), "tiny floor")


def test_noise_scale_constant_matches_noise_kernels():
    assert _spikes_mod._NOISE_SCALE == _noise_kernels.NOISE_SCALE


@settings(deadline=None)
@given(x=st.one_of(curves, tied_curves), baseline_window=st.integers(1, 50), noise_window=st.integers(1, 50))
def test_rolling_baseline_noise_equals_the_two_kernels(x, baseline_window, noise_window):
    before = x.copy()
    base, noise = rolling_baseline_noise(x, baseline_window=baseline_window, noise_window=noise_window)
    np.testing.assert_array_equal(x, before)
    want_base = _smoothing_kernels.rolling_median(x, window=baseline_window, center=True)
    want_noise = _noise_kernels.rolling_noise(x, window=noise_window)
    np.testing.assert_array_equal(base, want_base, err_msg=f"baseline w={baseline_window}")
    np.testing.assert_array_equal(noise, want_noise, err_msg=f"noise w={noise_window}")


@pytest.mark.parametrize("seed", range(3))
def test_rolling_baseline_noise_on_long_curves_with_gaps(seed):
    rng = np.random.default_rng(seed)
    n = 5_000
    x = np.linspace(5, 1, n) + 0.1 * rng.standard_normal(n)
    x[rng.random(n) < 0.02] = rng.choice(NONFINITE)
    x[1000:1100] = math.nan  # a gap wider than both windows
    x[2000:2200] = np.round(x[2000:2200])  # ties
    for bw, nw in ((41, 41), (101, 21), (4, 2)):
        base, noise = rolling_baseline_noise(x, baseline_window=bw, noise_window=nw)
        np.testing.assert_array_equal(base, _smoothing_kernels.rolling_median(x, window=bw, center=True),
                                      err_msg=f"seed={seed} bw={bw}")
        np.testing.assert_array_equal(noise, _noise_kernels.rolling_noise(x, window=nw), err_msg=f"seed={seed} nw={nw}")
    base41, noise41 = rolling_baseline_noise(x, baseline_window=41, noise_window=41)
    assert np.isnan(base41[1050]), "a centred window inside the gap has no value"
    assert np.isnan(noise41[1099]) and np.isfinite(noise41[1200]), "the causal window refills after the gap"


def test_rolling_baseline_noise_rejects_bad_windows():
    with pytest.raises(ValueError, match="baseline_window"):
        rolling_baseline_noise(np.ones(3), baseline_window=0)
    with pytest.raises(ValueError, match="noise_window"):
        rolling_baseline_noise(np.ones(3), noise_window=True)


def _median_terms(x, center, differences):
    v = np.diff(x) if differences else x.copy()
    if center is not None:
        v = np.abs(v - center)
    return np.median(v) if v.size else math.nan


@pytest.mark.parametrize("kind", ["noise", "sorted", "reversed", "ties", "constant", "walk", "periodic", "nan", "huge"])
def test_median_exact_equals_numpy_median(kind):
    """Long enough for the one-pass path (>= 131,072 terms), odd and even counts."""
    rng = np.random.default_rng(len(kind))
    for n in (140_001, 140_000):
        x = rng.standard_normal(n)
        if kind == "sorted":
            x = np.sort(x)
        elif kind == "reversed":
            x = np.sort(x)[::-1].copy()
        elif kind == "ties":
            x = np.round(x * 2)
        elif kind == "constant":
            x = np.full(n, 2.5)
        elif kind == "walk":
            x = np.cumsum(x)
        elif kind == "periodic":  # the strided sample sees one phase only: the fallback must catch it
            x = np.tile(np.r_[np.zeros(_spikes_mod._SAMPLE // 4), np.ones(7)], n // 4000 + 1)[:n] + 1e-3 * x
        elif kind == "nan":
            x[12_345] = math.nan
        elif kind == "huge":
            x = x * 1e300
        for center in (None, 0.25, -1e300 if kind == "huge" else 0.0):
            for differences in (False, True):
                got = median_exact(x, center=center, differences=differences)
                want = _median_terms(x, center, differences)
                assert got == want or (math.isnan(got) and math.isnan(want)), \
                    f"kind={kind} n={n} center={center} differences={differences}: {got!r} != {want!r}"


@settings(deadline=None)
@given(x=hnp.arrays(np.float64, st.integers(0, 60), elements=st.floats(-1e6, 1e6)),
       center=st.one_of(st.none(), st.floats(-10, 10)), differences=st.booleans())
def test_median_exact_short_inputs(x, center, differences):
    got = median_exact(x, center=center, differences=differences)
    want = _median_terms(x, center, differences)
    assert got == want or (math.isnan(got) and math.isnan(want))


@pytest.mark.parametrize("seed", range(6))
def test_screen_bounds_hold_for_every_window(seed):
    """The screen's premise, checked directly: for every full causal window ending in
    block j, direction * median >= lb_med[j] and MAD >= lb_mad[j]."""
    rng = np.random.default_rng(seed)
    w = int(rng.choice([4, 5, 11, 41]))
    n = int(rng.integers(3 * w, 30 * w))
    x = rng.standard_normal(n) if seed % 2 else np.round(np.cumsum(rng.standard_normal(n)))
    nb = (n + w - 1) // w
    for direction in (1.0, -1.0):
        for want_mad in (False, True):
            lb_med, lb_mad = np.full(nb, np.nan), np.zeros(nb)
            _spikes_mod._screen_bounds_core(x, direction, w, want_mad, lb_med, lb_mad)
            for k in range(w, n):
                win = direction * x[k - w + 1:k + 1]
                med = np.median(win)
                mad = np.median(np.abs(win - med))
                j = k // w
                assert med >= lb_med[j], f"seed={seed} w={w} k={k} direction={direction} mad={want_mad}"
                assert mad >= lb_mad[j], f"seed={seed} w={w} k={k} direction={direction}"


@settings(deadline=None)
@given(x=st.one_of(curves, tied_curves), window=st.integers(1, 45), floor=st.floats(1e-6, 10.0))
def test_detrended_noise_units_equals_the_stored_version(x, window, floor):
    from kernels.spikes import detrended_noise_units
    b, s = rolling_baseline_noise(x, baseline_window=window, noise_window=window)
    with np.errstate(invalid="ignore", over="ignore"):
        want = (x - b) / np.where(np.isfinite(s), np.maximum(s, floor), floor)
    got = detrended_noise_units(x, baseline_window=window, noise_window=window, noise_floor=floor)
    np.testing.assert_array_equal(got, want, err_msg=f"window={window} floor={floor}")


def test_detrended_noise_units_rejects_bad_floor():
    from kernels.spikes import detrended_noise_units
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="noise_floor"):
            detrended_noise_units(np.ones(5), noise_floor=bad)
