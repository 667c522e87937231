"""kernels/noise.py against its slow twins, its invariants and numpy/scipy/statsmodels."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.noise import NOISE_SCALE, mad_noise, oscillation_index, rolling_noise, signal_to_noise
from tests.reference.noise_ref import (mad_noise_ref, oscillation_index_ref, rolling_noise_ref,
                                       signal_to_noise_ref)

NONFINITE = [math.nan, math.inf, -math.inf]
values_st = st.one_of(st.floats(-1e6, 1e6), st.sampled_from(NONFINITE))
curves = hnp.arrays(np.float64, st.integers(0, 120), elements=values_st)
# small integers make ties, zero differences and constant stretches common
steppy = hnp.arrays(np.float64, st.integers(0, 60),
                    elements=st.one_of(st.integers(-3, 3).map(float), st.sampled_from(NONFINITE)))


def scalar_close(got, want, x, msg=""):
    finite = np.abs(x[np.isfinite(x)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    if math.isnan(want):
        assert math.isnan(got), f"{msg}: got {got!r}, want NaN"
    else:
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9 * scale), msg


def check_all(x, msg=""):
    scalar_close(mad_noise(x), mad_noise_ref(x), x, f"mad_noise {msg}")
    frac, rho = oscillation_index(x)
    frac_ref, rho_ref = oscillation_index_ref(x)
    scalar_close(frac, frac_ref, x, f"sign_change_fraction {msg}")
    # the lag-1 ratio divides two sums; both sides are ~1e-12 accurate on these scales
    if math.isnan(rho_ref):
        assert math.isnan(rho), msg
    else:
        assert rho == pytest.approx(rho_ref, abs=1e-7), f"lag1 {msg}"
    snr, snr_ref = signal_to_noise(x), signal_to_noise_ref(x)
    if math.isnan(snr_ref) or math.isinf(snr_ref):
        assert snr == snr_ref or (math.isnan(snr) and math.isnan(snr_ref)), f"snr {msg}: {snr} vs {snr_ref}"
    else:
        assert snr == pytest.approx(snr_ref, rel=1e-7), f"snr {msg}"
    for window, center in [(5, False), (8, True), (len(x) + 1, False)]:
        out = rolling_noise(x, window=window, center=center)
        ref = rolling_noise_ref(x, window, center)
        finite = np.abs(x[np.isfinite(x)])
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        np.testing.assert_allclose(out, ref, rtol=1e-9, atol=1e-9 * scale, equal_nan=True,
                                   err_msg=f"rolling_noise w={window} c={center} {msg}")


@settings(deadline=None)
@given(x=curves)
def test_matches_reference(x):
    check_all(x, f"x={x!r}")


@settings(deadline=None)
@given(x=steppy)
def test_matches_reference_with_ties(x):
    check_all(x, f"x={x!r}")


def placed(pattern, bad, n=40, seed=3):
    x = np.random.default_rng(seed).normal(5.0, 1.0, n).cumsum()
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


@pytest.mark.parametrize("bad", NONFINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("pattern", ["first", "last", "middle_run", "everywhere", "mixed"])
def test_nonfinite_placements(bad, pattern):
    check_all(placed(pattern, bad), f"{pattern} {bad}")


@pytest.mark.parametrize("x", [[], [2.5], [1.0, 2.0], [math.nan] * 3, [1.0, math.inf, 3.0],
                               [-1e300, 1e300, -1e300, 1e300], [0.0, 1e300, 0.0, 5.0, 1.0]], ids=repr)
def test_tiny_and_huge_inputs(x):
    x = np.array(x, dtype=np.float64)
    check_all(x, repr(x))
    assert isinstance(mad_noise(x), float)


def test_too_few_points_give_nan():
    for x in ([], [1.0], [1.0, 2.0], [1.0, math.nan, 2.0, math.inf]):
        assert math.isnan(mad_noise(np.array(x))), x
        assert math.isnan(signal_to_noise(np.array(x))), x
        assert all(math.isnan(v) for v in oscillation_index(np.array(x))), x


# --- definitions and invariants ---------------------------------------------------------

@pytest.mark.parametrize("seed,sd", [(0, 1.0), (1, 0.02), (2, 300.0)])
def test_white_noise_of_sd_s_gives_about_s(seed, sd):
    # n = 40k: the MAD's standard error is ~1.1% here, so 5% is over 4 standard errors
    rng = np.random.default_rng(seed)
    trend = np.linspace(10 * sd, 0, 40_000) ** 2 / (10 * sd)  # a smooth descent is not noise
    x = trend + rng.normal(0, sd, 40_000)
    assert mad_noise(x) == pytest.approx(sd, rel=0.05), f"seed={seed} sd={sd}"
    assert np.nanmedian(rolling_noise(x, window=2001)) == pytest.approx(sd, rel=0.05)


def test_noise_ignores_spikes():
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, 20_000)
    spiky = x.copy()
    spiky[rng.choice(20_000, 200, replace=False)] += 50.0
    assert mad_noise(spiky) == pytest.approx(mad_noise(x), rel=0.05)


@pytest.mark.parametrize("c", [0.0, -3.5, 1e9 + 0.25])
def test_constant_curve_zero_noise_no_crash(c):
    x = np.full(30, c)
    assert mad_noise(x) == 0.0
    np.testing.assert_array_equal(rolling_noise(x, window=5)[2:], 0.0)
    assert math.isnan(signal_to_noise(x))  # 0 change / 0 noise, by the documented policy
    assert all(math.isnan(v) for v in oscillation_index(x))


def test_noiseless_ramp_has_infinite_snr():
    x = np.linspace(5.0, 1.0, 100)
    assert mad_noise(x) == pytest.approx(0.0, abs=1e-14)
    # exact linear steps may differ in the last bit, so noise can be ~1e-16, not 0
    assert signal_to_noise(np.arange(100.0)) == math.inf


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_large_offset_keeps_precision(seed):
    rng = np.random.default_rng(seed)
    x = np.linspace(1.0, 0.0, 5000) + rng.normal(0, 0.3, 5000)
    shifted = x + 1e9  # doubles near 1e9 are 1.2e-7 apart; noise 0.3 keeps ~6 digits
    assert mad_noise(shifted) == pytest.approx(mad_noise(x), rel=1e-5), f"seed={seed}"
    assert signal_to_noise(shifted) == pytest.approx(signal_to_noise(x), rel=1e-4)
    f0, r0 = oscillation_index(x)
    f1, r1 = oscillation_index(shifted)
    assert abs(f1 - f0) < 0.01 and r1 == pytest.approx(r0, abs=1e-4)
    np.testing.assert_allclose(rolling_noise(shifted, window=50), rolling_noise(x, window=50),
                               rtol=1e-4, equal_nan=True)


# rel: rounding a*x+b near |b| costs spacing(b) per value, against differences of ~a
@pytest.mark.parametrize("a,b,rel", [(2.0, 5.0, 1e-9), (1e-3, -1e6, 1e-5)])
def test_scale_equivariance_and_shift_invariance(a, b, rel):
    x = np.random.default_rng(7).normal(0, 1, 3000).cumsum()
    assert mad_noise(a * x + b) == pytest.approx(a * mad_noise(x), rel=rel)
    assert signal_to_noise(a * x + b) == pytest.approx(signal_to_noise(x), rel=rel)
    np.testing.assert_allclose(rolling_noise(a * x + b, window=30), a * rolling_noise(x, window=30),
                               rtol=100 * rel, equal_nan=True)
    assert oscillation_index(a * x + b)[0] == oscillation_index(x)[0]


def test_rolling_noise_last_point_with_full_window_equals_mad_noise():
    x = placed("mixed", math.nan, n=200)
    assert rolling_noise(x, window=200)[-1] == pytest.approx(mad_noise(x), rel=1e-12)


def test_rolling_noise_causal_prefix():
    x = placed("middle_run", math.inf, n=120)
    full = rolling_noise(x, window=13)
    for cut in (1, 2, 30, 119):
        np.testing.assert_array_equal(rolling_noise(x[:cut], window=13), full[:cut], err_msg=f"cut={cut}")


def test_inputs_not_modified():
    x = placed("mixed", math.nan, n=60)
    x0 = x.copy()
    mad_noise(x), rolling_noise(x, window=7), oscillation_index(x), signal_to_noise(x)
    np.testing.assert_array_equal(x, x0)


def test_oscillation_index_shapes():
    zigzag = np.tile([0.0, 1.0], 50)
    assert oscillation_index(zigzag)[0] == 1.0
    assert oscillation_index(zigzag)[1] == pytest.approx(-1.0, abs=0.03)
    steppy = np.repeat(np.arange(10.0), 7)  # an accuracy-like staircase is not oscillating
    assert oscillation_index(steppy)[0] == 0.0
    noise = np.random.default_rng(3).normal(0, 1, 30_000)
    frac, rho = oscillation_index(noise)
    assert frac == pytest.approx(2 / 3, abs=0.02) and rho == pytest.approx(-0.5, abs=0.02)


def test_signal_to_noise_definition():
    rng = np.random.default_rng(10)
    x = np.linspace(4.0, 2.0, 10_000) + rng.normal(0, 0.05, 10_000)
    # head/tail tenths have medians near 3.9 and 2.1, noise ~0.05 -> ~36
    assert signal_to_noise(x) == pytest.approx(1.8 / 0.05, rel=0.08)
    with_nan = x.copy()
    with_nan[::7] = math.nan
    assert signal_to_noise(with_nan) == pytest.approx(signal_to_noise_ref(with_nan), rel=1e-9)


def test_rolling_noise_bad_window():
    with pytest.raises(ValueError, match="rolling_noise: window"):
        rolling_noise(np.ones(4), window=0)


# --- anchors ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mad_noise_equals_numpy_and_scipy(seed):
    from scipy.stats import median_abs_deviation
    x = np.random.default_rng(seed).normal(0, 1, 5001).cumsum()
    d = np.diff(x)
    numpy_form = NOISE_SCALE * np.median(np.abs(d - np.median(d)))
    assert mad_noise(x) == pytest.approx(numpy_form, rel=1e-13)
    assert mad_noise(x) == pytest.approx(median_abs_deviation(d, scale="normal") / math.sqrt(2), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_lag1_equals_statsmodels_acf(seed):
    from statsmodels.tsa.stattools import acf
    x = np.random.default_rng(seed).normal(0, 1, 3000).cumsum()
    x[::11] = math.nan
    d = np.diff(x[np.isfinite(x)])
    assert oscillation_index(x)[1] == pytest.approx(acf(d, nlags=1, fft=False)[1], rel=1e-10)
    signs = np.sign(d[d != 0])
    assert oscillation_index(x)[0] == pytest.approx(np.mean(signs[1:] != signs[:-1]), rel=1e-14)
