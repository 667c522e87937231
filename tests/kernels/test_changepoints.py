"""kernels/changepoints.py against ruptures (the anchor) and the slow twins."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import changepoints as cp
from kernels.changepoints import (binseg, crops, noise_penalty, pelt, pelt_multiscale,
                                  segment_costs)
from tests.reference.changepoints_ref import (binseg_ref, optimal_partition_ref,
                                              penalised_cost_ref, segment_cost_ref)

rpt = pytest.importorskip("ruptures")


def piecewise(seed, n, n_changes=4, noise=1.0, shift=2.0):
    """A seeded piecewise-constant signal with Gaussian noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=noise, size=n)
    for c in np.sort(rng.integers(1, max(n, 2), size=n_changes)):
        x[c:] += rng.normal(scale=shift)
    return x


def piecewise_linear(seed, n):
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    x = rng.normal(scale=0.5, size=n)
    for c in np.sort(rng.integers(1, n, size=3)):
        x[c:] += rng.normal() * 0.05 * (t[c:] - c) + rng.normal()
    return x


# ---------------------------------------------------------------- ruptures equality

PELT_CASES = [(1, 1, 1.0), (2, 1, 3.0), (2, 1, 0.0), (3, 2, 2.0), (5, 5, 1.0),
              (2, 5, 5.0), (7, 3, 0.5), (1, 4, 10.0), (10, 1, 2.0)]


@pytest.mark.parametrize("min_size,jump,penalty", PELT_CASES)
@pytest.mark.parametrize("seed", range(4))
def test_pelt_equals_ruptures_l2(seed, min_size, jump, penalty):
    n = 60 + 23 * seed
    x = piecewise(seed, n)
    want = rpt.Pelt(model="l2", min_size=min_size, jump=jump).fit(x).predict(pen=penalty)
    got = pelt(x, penalty=penalty, min_size=min_size, jump=jump)
    assert got.dtype == np.int64
    assert got.tolist() == want, (seed, n, min_size, jump, penalty)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("min_size,jump,penalty", [(2, 1, 2.0), (3, 2, 1.0), (5, 1, 4.0)])
def test_pelt_equals_ruptures_linear(seed, min_size, jump, penalty):
    # ruptures' CostLinear regresses column 0 on the other columns: the design [1, i]
    # gives the same residual sum of squares as our line against the point index.
    n = 50 + 10 * seed
    x = piecewise_linear(seed, n)
    signal = np.column_stack([x, np.ones(n), np.arange(n, dtype=np.float64)])
    want = rpt.Pelt(model="linear", min_size=min_size, jump=jump).fit(signal).predict(pen=penalty)
    got = pelt(x, penalty=penalty, min_size=min_size, jump=jump, cost="linear")
    assert got.tolist() == want, (seed, n, min_size, jump, penalty)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("min_size,jump", [(1, 1), (2, 1), (3, 2), (2, 5), (5, 3)])
def test_binseg_equals_ruptures(seed, min_size, jump):
    n = 80 + 31 * seed
    x = piecewise(seed + 100, n, n_changes=5)
    algo = rpt.Binseg(model="l2", min_size=min_size, jump=jump).fit(x)
    for penalty in (0.5, 3.0, 20.0):
        assert binseg(x, penalty=penalty, min_size=min_size, jump=jump).tolist() == \
            algo.predict(pen=penalty), (seed, n, min_size, jump, penalty)
    for k in (0, 1, 3, 6):
        assert binseg(x, n_bkps=k, min_size=min_size, jump=jump).tolist() == \
            algo.predict(n_bkps=k), (seed, n, min_size, jump, k)


def test_binseg_equals_ruptures_linear():
    x = piecewise_linear(7, 90)
    signal = np.column_stack([x, np.ones(90), np.arange(90.0)])
    algo = rpt.Binseg(model="linear", min_size=3, jump=2).fit(signal)
    for k in (1, 2, 4):
        assert binseg(x, n_bkps=k, min_size=3, jump=2, cost="linear").tolist() == algo.predict(n_bkps=k)


def test_issue3_ruptures_pruning_is_not_always_optimal():
    # ruptures' pruning drops t=0 at end 3, yet [0, 5) alone is the optimum at end 5
    # (segment [3, 5) needed 2 points). pruning="ruptures" reproduces ruptures;
    # pruning="optimal" returns the optimum of the definition.
    x = np.array([-0.0, -1.1, 0.4, 0.6, -1.7])
    want = rpt.Pelt(model="l2", min_size=2, jump=1).fit(x).predict(pen=0.5)
    assert want == [2, 5]
    assert pelt(x, penalty=0.5, min_size=2).tolist() == want
    assert pelt(x, penalty=0.5, min_size=2, pruning="optimal").tolist() == [5]
    assert optimal_partition_ref(x, 0.5, 2, 1) == [5]
    assert penalised_cost_ref(x, [5], 0.5) < penalised_cost_ref(x, [2, 5], 0.5)


# ---------------------------------------------------------------- slow twins

@st.composite
def signals(draw, max_n=200):
    n = draw(st.integers(0, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=draw(st.sampled_from([0.1, 1.0, 5.0])), size=n)
    for c in rng.integers(0, max(n, 1), size=draw(st.integers(0, 5))):
        x[c:] += rng.normal(scale=3.0)
    return x


@settings(deadline=None, max_examples=40)
@given(x=signals(), min_size=st.integers(1, 8), jump=st.integers(1, 6),
       penalty=st.sampled_from([0.0, 0.3, 1.0, 4.0, 25.0]))
def test_pelt_optimal_matches_optimal_partition(x, min_size, jump, penalty):
    want = optimal_partition_ref(x, penalty, min_size, jump)
    got = pelt(x, penalty=penalty, min_size=min_size, jump=jump, pruning="optimal")
    assert got.tolist() == want, (len(x), min_size, jump, penalty)
    # the ruptures-compatible pruning is never better than the optimum, and equals it
    # where the PELT argument holds without delay (min_size 1, jump 1)
    fast = pelt(x, penalty=penalty, min_size=min_size, jump=jump)
    assert penalised_cost_ref(x, fast.tolist(), penalty) >= \
        penalised_cost_ref(x, want, penalty) - 1e-9 * (1 + abs(penalised_cost_ref(x, want, penalty)))
    if min_size == 1 and jump == 1:
        assert fast.tolist() == want


@settings(deadline=None, max_examples=15)
@given(x=signals(max_n=60), min_size=st.integers(1, 5), jump=st.integers(1, 3),
       penalty=st.sampled_from([0.3, 2.0, 10.0]))
def test_pelt_linear_matches_optimal_partition(x, min_size, jump, penalty):
    want = optimal_partition_ref(x, penalty, min_size, jump, cost="linear")
    got = pelt(x, penalty=penalty, min_size=min_size, jump=jump, cost="linear", pruning="optimal")
    assert got.tolist() == want, (len(x), min_size, jump, penalty)


@settings(deadline=None, max_examples=30)
@given(x=signals(max_n=120), min_size=st.integers(1, 6), jump=st.integers(1, 4),
       penalty=st.sampled_from([0.5, 3.0, 20.0]), n_bkps=st.integers(0, 5))
def test_binseg_matches_reference(x, min_size, jump, penalty, n_bkps):
    assert binseg(x, penalty=penalty, min_size=min_size, jump=jump).tolist() == \
        binseg_ref(x, penalty=penalty, min_size=min_size, jump=jump)
    assert binseg(x, n_bkps=n_bkps, min_size=min_size, jump=jump).tolist() == \
        binseg_ref(x, n_bkps=n_bkps, min_size=min_size, jump=jump)


@settings(deadline=None, max_examples=30)
@given(x=signals(max_n=100), cost=st.sampled_from(["l2", "linear"]), seed=st.integers(0, 1000))
def test_segment_costs_match_reference(x, cost, seed):
    rng = np.random.default_rng(seed)
    n = len(x)
    inner = sorted(set(rng.integers(1, n, size=3).tolist())) if n > 1 else []
    bk = inner + [n] if n else []
    got = segment_costs(x, bk, cost=cost)
    prev = 0
    for i, b in enumerate(bk):
        want = segment_cost_ref(x, prev, b, cost)
        assert got[i] == pytest.approx(want, rel=1e-9, abs=1e-9 * (1 + float(np.sum(x[prev:b] ** 2)))), (cost, prev, b)
        prev = b


def test_prefix_costs_precise_on_long_linear_curve():
    # t*y sums reach 1e14 at 1e7 points; raw prefix sums made short late segments cost
    # noise. A 1e6-point curve and 3- to 50-point segments at its end.
    rng = np.random.default_rng(5)
    n = 1_000_000
    x = 3.0 + 1e-6 * np.arange(n) + rng.normal(scale=0.01, size=n)
    pos = np.array([0, n - 50, n - 20, n - 3, n], dtype=np.int64)
    for kind, name in ((cp._L2, "l2"), (cp._LINEAR, "linear")):
        pre = cp._prefix(x, pos, kind)
        for a, b in ((1, 2), (2, 3), (3, 4), (1, 4)):
            want = segment_cost_ref(x, int(pos[a]), int(pos[b]), name)
            got = cp._grid_cost(kind, pos, pre, a, b)
            assert got == pytest.approx(want, rel=1e-6, abs=1e-12), (name, pos[a], pos[b])


# ---------------------------------------------------------------- edge cases

@pytest.mark.parametrize("fn", [
    lambda x: pelt(x, penalty=1.0),
    lambda x: pelt(x, penalty=1.0, pruning="optimal", cost="linear"),
    lambda x: binseg(x, penalty=1.0),
    lambda x: pelt_multiscale(x, penalty=1.0, block=4),
])
def test_tiny_and_constant_curves(fn):
    assert fn(np.array([])).tolist() == []
    assert fn(np.array([3.0])).tolist() == [1]
    assert fn(np.array([3.0, 4.0, 5.0])).tolist() == [3]
    assert fn(np.full(50, 0.1)).tolist() == [50]
    assert fn(np.full(50, 1e9 + 0.1)).tolist() == [50]


def test_binseg_n_bkps_on_tiny_curves():
    # n_bkps forces splits even where they gain nothing; too short curves give fewer
    assert binseg(np.array([]), n_bkps=3).tolist() == []
    assert binseg(np.array([3.0]), n_bkps=3).tolist() == [1]
    assert binseg(np.array([3.0, 4.0, 5.0]), n_bkps=3).tolist() == [3]
    assert len(binseg(np.full(50, 0.1), n_bkps=3)) == 4


def test_short_curve_returns_one_segment_where_ruptures_raises():
    x = np.array([1.0, 2.0, 3.0])
    with pytest.raises(Exception):
        rpt.Pelt(model="l2", min_size=5, jump=1).fit(x).predict(pen=1.0)
    assert pelt(x, penalty=1.0, min_size=5).tolist() == [3]


@pytest.mark.parametrize("seed", range(3))
def test_large_offset_same_breakpoints(seed):
    x = piecewise(seed, 150, noise=1e-3, shift=5e-3)
    for kwargs in ({"penalty": 2e-5}, {"penalty": 2e-5, "min_size": 3, "jump": 2}):
        base = pelt(x, **kwargs).tolist()
        assert pelt(x + 1e9, **kwargs).tolist() == base
        assert rpt.Pelt(model="l2", min_size=kwargs.get("min_size", 2), jump=kwargs.get("jump", 1)) \
            .fit(x + 1e9).predict(pen=kwargs["penalty"]) == base
    assert binseg(x + 1e9, penalty=2e-5).tolist() == binseg(x, penalty=2e-5).tolist()
    assert len(base) > 1  # the test would be empty otherwise


def test_penalty_zero_splits_to_min_size_on_noise():
    x = piecewise(3, 40, n_changes=0)
    got = pelt(x, penalty=0.0, min_size=3)
    assert got.tolist() == rpt.Pelt(model="l2", min_size=3, jump=1).fit(x).predict(pen=0.0)
    assert np.all(np.diff(np.concatenate(([0], got))) >= 3)
    assert len(got) >= 40 // 6  # splitting noise always lowers an L2 cost


def test_input_not_modified_and_any_dtype():
    x = piecewise(1, 100)
    x_int = np.round(x * 10).astype(np.int32)
    before = x.copy()
    pelt(x, penalty=1.0)
    binseg(x, n_bkps=2)
    pelt_multiscale(x, penalty=1.0, block=5)
    np.testing.assert_array_equal(x, before)
    assert pelt(x_int, penalty=10.0).tolist() == pelt(x_int.astype(np.float64), penalty=10.0).tolist()


@pytest.mark.parametrize("bad", [
    lambda: pelt(np.ones(5), penalty=-1.0),
    lambda: pelt(np.ones(5), penalty=math.nan),
    lambda: pelt(np.ones(5), penalty=1.0, min_size=0),
    lambda: pelt(np.ones(5), penalty=1.0, jump=0),
    lambda: pelt(np.ones(5), penalty=1.0, jump=1.5),
    lambda: pelt(np.ones(5), penalty=1.0, cost="l1"),
    lambda: pelt(np.ones(5), penalty=1.0, pruning="fast"),
    lambda: pelt(np.ones((5, 2)), penalty=1.0),
    lambda: binseg(np.ones(5)),
    lambda: binseg(np.ones(5), n_bkps=1, penalty=1.0),
    lambda: binseg(np.ones(5), n_bkps=-1),
    lambda: pelt_multiscale(np.ones(5), penalty=1.0, cost="linear"),
    lambda: pelt_multiscale(np.ones(5), penalty=1.0, block=0),
    lambda: noise_penalty(np.ones(5), kind="aic"),
    lambda: crops(np.ones(5), penalty_min=2.0, penalty_max=1.0),
])
def test_bad_parameters_raise_value_error(bad):
    with pytest.raises(ValueError):
        bad()


def test_positional_only_data_keyword_rest():
    with pytest.raises(TypeError):
        pelt(np.ones(5), 1.0)
    with pytest.raises(TypeError):
        binseg(np.ones(5), 2)


# ---------------------------------------------------------------- NaN/Inf policy

@pytest.mark.parametrize("where", ["first", "last", "middle_run", "before_change", "scattered"])
def test_nonfinite_points_are_dropped(where):
    x = piecewise(11, 120, n_changes=3, noise=0.3, shift=4.0)
    rng = np.random.default_rng(0)
    idx = {"first": [0], "last": [119], "middle_run": list(range(50, 57)),
           "before_change": None, "scattered": sorted(rng.choice(120, 12, replace=False).tolist())}[where]
    clean = pelt(x, penalty=3.0)
    if idx is None:  # a run right before the first detected change
        c = int(clean[0])
        idx = list(range(c - 4, c))
    y = x.copy()
    y[idx] = [(math.nan, math.inf, -math.inf)[i % 3] for i in range(len(idx))]
    keep = np.flatnonzero(np.isfinite(y))
    for fn in (lambda v: pelt(v, penalty=3.0), lambda v: binseg(v, penalty=3.0),
               lambda v: pelt(v, penalty=3.0, cost="linear", pruning="optimal"),
               lambda v: pelt_multiscale(v, penalty=3.0, block=3)):
        got = fn(y)
        on_finite = fn(y[keep])
        # each breakpoint is the original index of the first finite point after it
        want = [int(keep[b]) for b in on_finite[:-1]] + [120]
        assert got.tolist() == want, where
        assert got[-1] == 120


def test_all_nonfinite_curve_is_one_segment():
    y = np.array([math.nan, math.inf, -math.inf, math.nan])
    assert pelt(y, penalty=1.0).tolist() == [4]
    assert binseg(y, n_bkps=2).tolist() == [4]
    assert pelt_multiscale(y, penalty=1.0).tolist() == [4]
    assert noise_penalty(y) == 0.0
    path = crops(y, penalty_min=0.1, penalty_max=1.0)
    assert path.n_changepoints.tolist() == [0]
    assert [b.tolist() for b in path.breakpoints] == [[4]]


# ---------------------------------------------------------------- multi-scale

@pytest.mark.parametrize("seed", range(6))
def test_multiscale_equals_pelt_on_clear_shifts(seed):
    rng = np.random.default_rng(seed)
    n, block = 6000, 25
    x = rng.normal(size=n)
    # changes at least 8 blocks apart, 3 to 6 noise levels high
    cps = np.sort(rng.choice(np.arange(1, n // 200), size=5, replace=False)) * 200 + rng.integers(-50, 50, 5)
    for c in cps:
        x[c:] += rng.choice([-1.0, 1.0]) * rng.uniform(3.0, 6.0)
    penalty = noise_penalty(x)
    full = pelt(x, penalty=penalty, pruning="optimal")
    assert len(full) == 6, (seed, cps, full)  # the shifts are clear enough to be found
    assert pelt_multiscale(x, penalty=penalty, block=block).tolist() == full.tolist(), (seed, cps)
    assert pelt_multiscale(x, penalty=penalty, block=block, min_size=5).tolist() == \
        pelt(x, penalty=penalty, min_size=5, pruning="optimal").tolist()


def test_multiscale_stage_one_is_pelt_on_block_grid():
    x = piecewise(4, 3000, n_changes=6, noise=1.0, shift=1.0)
    # radius huge is not needed here: compare stage 1 alone through jump=block
    pos = cp._grid(3000, 2, 30)
    pre = cp._prefix(x, pos, cp._L2)
    out = np.empty(pos.shape[0], np.int64)
    cnt = cp._pelt_core(pos, pre, cp._L2, 8.0, 2, 30, False, out)
    assert out[:cnt].tolist() == pelt(x, penalty=8.0, jump=30, pruning="optimal").tolist()
    assert pelt(x, penalty=8.0, jump=30).tolist() == \
        rpt.Pelt(model="l2", min_size=2, jump=30).fit(x).predict(pen=8.0)


@pytest.mark.parametrize("seed", range(3))
def test_multiscale_close_on_loss_curves(seed):
    # a decaying loss has no true change: PELT cuts its drift into pieces whose exact
    # places are weakly determined, so we bound the penalised cost, not the places.
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from _common import loss_curve

    _, y = loss_curve(20_000, seed=seed)
    penalty = noise_penalty(y)
    full = pelt(y, penalty=penalty, pruning="optimal")
    ms = pelt_multiscale(y, penalty=penalty, block=20)
    opt = segment_costs(y, full).sum() + penalty * len(full)
    got = segment_costs(y, ms).sum() + penalty * len(ms)
    assert opt <= got * (1 + 1e-12)
    assert (got - opt) / opt < 0.01, (seed, got, opt)
    assert abs(len(ms) - len(full)) <= max(3, len(full) // 5), (len(ms), len(full))


# ---------------------------------------------------------------- penalties

def test_noise_penalty_formula():
    from scipy.stats import median_abs_deviation

    rng = np.random.default_rng(2)
    x = np.cumsum(rng.normal(size=5000)) * 0.0 + rng.normal(scale=0.7, size=5000) + np.linspace(5, 1, 5000)
    sigma = median_abs_deviation(np.diff(x), scale="normal") / math.sqrt(2)
    assert noise_penalty(x) == pytest.approx(2 * sigma**2 * math.log(5000), rel=1e-9)
    assert noise_penalty(x, kind="mbic") == pytest.approx(3 * sigma**2 * math.log(5000), rel=1e-9)
    assert noise_penalty(x, cost="linear") == pytest.approx(3 * sigma**2 * math.log(5000), rel=1e-9)
    assert sigma == pytest.approx(0.7, rel=0.05)  # it measures the noise, not the trend


def test_noise_penalty_quantised_and_constant():
    assert noise_penalty(np.full(100, 2.5)) == 0.0
    rng = np.random.default_rng(0)
    q = np.where(rng.random(1000) < 0.2, 1.0, 0.0)  # most differences are 0: MAD = 0
    assert noise_penalty(q) > 0.0
    assert noise_penalty(np.array([1.0, 2.0])) == 0.0


def test_bic_penalty_finds_the_true_changes():
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.normal(0, 1, 400), rng.normal(3, 1, 300), rng.normal(1, 1, 300)])
    for penalty in (noise_penalty(x), noise_penalty(x, kind="mbic")):
        got = pelt(x, penalty=penalty)
        assert len(got) == 3 and got[-1] == 1000, got
        assert np.all(np.abs(got[:-1] - [400, 700]) <= 3), got


def _distinct_segmentations_by_scan(x, lo, hi, min_size, jump, cost):
    found = {}
    for pen in np.geomspace(lo, hi, 60):
        bk = tuple(optimal_partition_ref(x, pen, min_size, jump, cost))
        found.setdefault(len(bk) - 1, bk)
    return found


@pytest.mark.parametrize("seed,cost", [(0, "l2"), (1, "l2"), (2, "linear")])
def test_crops_contains_every_segmentation_of_a_penalty_scan(seed, cost):
    x = piecewise(seed, 70, n_changes=5, noise=0.5, shift=1.5) if cost == "l2" else piecewise_linear(seed, 50)
    lo, hi = 0.05, 40.0
    path = crops(x, penalty_min=lo, penalty_max=hi, min_size=2, cost=cost)
    got = {int(k): tuple(b.tolist()) for k, b in zip(path.n_changepoints, path.breakpoints)}
    for k, bk in _distinct_segmentations_by_scan(x, lo, hi, 2, 1, cost).items():
        assert got.get(k) == bk, (seed, k)
    # decreasing number of changes, contiguous penalty intervals covering [lo, hi]
    assert np.all(np.diff(path.n_changepoints) < 0)
    assert path.penalty_low[0] == lo and path.penalty_high[-1] == hi
    np.testing.assert_allclose(path.penalty_high[:-1], path.penalty_low[1:])
    # each segmentation is the optimum inside its interval, with its cost
    for i, bk in enumerate(path.breakpoints):
        mid = 0.5 * (path.penalty_low[i] + path.penalty_high[i])
        if path.penalty_high[i] > path.penalty_low[i] * (1 + 1e-9):
            assert optimal_partition_ref(x, mid, 2, 1, cost) == bk.tolist()
        assert path.cost[i] == pytest.approx(segment_costs(x, bk, cost=cost).sum(), rel=1e-12)
