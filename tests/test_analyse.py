"""Per-curve analysis on generated curves with known answers, and on awkward input."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from engine.analyse import AnalysisParams, analyse_curve, analyse_run
from schemas import FEATURES, SEGMENTS, SPIKES
from tests.test_generate import gen


def _extra(row):
    return json.loads(row["extra"])


def _analyse(run, metric):
    s, v = run.curves[metric]
    meta = run.metrics[metric]
    return analyse_curve(s, v, direction=meta["direction"], kind=meta["kind"])


# --------------------------------------------------------------------------- labelled places


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_spikes_found_at_labelled_steps(seed):
    run = gen.make_run("loss_spike", seed)
    _, _, spikes = _analyse(run, "train/loss")
    got = [sp["step"] for sp in spikes]
    for e in run.expected:
        hits = [sp for sp in spikes if abs(sp["step"] - e["step_start"]) <= e["tolerance_steps"]]
        assert hits, f"seed {seed}: spike at {e['step_start']} missed; found {got}"
        sp = hits[0]
        assert sp["recovered"], (seed, e, sp)
        end = sp["step"] + sp["recovery_steps"]
        assert abs(end - e["step_end"]) <= e["tolerance_steps"], (seed, e, sp)
        assert sp["recovery_class"] == e["recovery_class"], (seed, e, sp)
    assert len(spikes) == len(run.expected), f"seed {seed}: extra spikes {got} vs {[e['step_start'] for e in run.expected]}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plateau_is_the_last_segment(seed):
    run = gen.make_run("plateau", seed)
    row, segs, _ = _analyse(run, "train/loss")
    e = run.expected[0]
    last = segs[-1]
    assert last["kind"] == "plateau", (seed, segs)
    assert abs(last["step_start"] - e["step_start"]) <= e["tolerance_steps"], (seed, last, e)
    assert any(g["kind"] == "descent" for g in segs[:-1]), (seed, segs)
    assert row["n_segments"] == len(segs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_broken_plateau_is_a_middle_segment(seed):
    run = gen.make_run("plateau_broken", seed)
    _, segs, _ = _analyse(run, "train/loss")
    e = run.expected[0]
    tol = e["tolerance_steps"]
    mids = [g for g in segs[:-1] if g["kind"] == "plateau"
            and abs(g["step_start"] - e["step_start"]) <= tol and abs(g["step_end"] - e["step_end"]) <= tol]
    assert mids, (seed, e, segs)
    after = [g for g in segs if g["step_start"] > mids[0]["step_end"]]
    assert after and after[0]["kind"] == "descent", (seed, segs)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_overfitting_val_best_step_and_rise(seed):
    run = gen.make_run("overfitting", seed)
    e = run.expected[0]
    train, val = e["metrics"]
    vrow, vsegs, _ = _analyse(run, val)
    trow, _, _ = _analyse(run, train)
    assert abs(vrow["best_step"] - e["step_start"]) <= e["tolerance_steps"], (seed, vrow["best_step"], e)
    assert _extra(vrow)["since_best_noise"] > 3, (seed, vrow["extra"])
    assert vsegs[-1]["kind"] == "ascent", (seed, vsegs)
    assert trow["tail_slope"] < 0 and vrow["tail_slope"] > 0, seed


@pytest.mark.parametrize("seed", [0, 1])
def test_explained_shift_is_a_level_shift_at_the_event(seed):
    run = gen.make_run("explained_shift", seed)
    row, _, _ = _analyse(run, "train/loss")
    e = run.expected[0]
    shifts = _extra(row)["shifts"]
    assert any(abs(sh["step"] - e["step_start"]) <= e["tolerance_steps"] and sh["delta"] > 0 for sh in shifts), (seed, shifts, e)


@pytest.mark.parametrize("scenario,seed", [("healthy_pretrain", 0), ("healthy_pretrain", 1), ("healthy_sft", 0),
                                           ("healthy_classifier", 0), ("healthy_classifier", 1),
                                           ("healthy_noisy_pretrain", 0), ("healthy_step_lr", 0),
                                           ("healthy_reward_model", 0), ("healthy_rlhf", 0)])
def test_quiet__no_spikes_on_healthy_objectives(scenario, seed):
    run = gen.make_run(scenario, seed)
    for m, meta in run.metrics.items():
        if meta["kind"] in ("loss", "accuracy", "reward"):
            _, _, spikes = _analyse(run, m)
            assert not spikes, (scenario, seed, m, spikes)


def test_still_improving_tail_is_significant():
    for seed in range(3):
        run = gen.make_run("still_improving", seed)
        row, _, _ = _analyse(run, "train/loss")
        assert row["tail_slope"] < 0 and row["tail_slope"] / row["tail_slope_se"] < -2, (seed, row)
        assert row["trend_z"] < -2, (seed, row)
        assert row["fit_ok"] and row["expected_gain_rel"] > 0, (seed, row)


def test_nonfinite_run_reports_first_step():
    for seed in range(6):
        run = gen.make_run("nonfinite", seed)
        e = run.expected[0]
        for m in e["metrics"]:
            row, _, _ = _analyse(run, m)
            assert row["first_nonfinite_step"] == e["step_start"], (seed, m, row["first_nonfinite_step"], e)
            assert row["n_nonfinite"] > 0


# --------------------------------------------------------------------------- awkward input


def test_nan_tail_is_counted_and_removed():
    steps = np.arange(0, 1000, 10, dtype=np.int64)
    vals = 3.0 + 5.0 * np.exp(-steps / 200.0) + 0.01 * np.random.default_rng(0).standard_normal(steps.size)
    vals[60:] = np.nan
    vals[10] = np.inf
    row, segs, spikes = analyse_curve(steps, vals, direction="min", kind="loss")
    ex = _extra(row)
    assert row["n_points"] == 100 and row["n_nonfinite"] == 41
    assert row["first_nonfinite_step"] == 100
    assert ex["n_nan"] == 40 and ex["n_posinf"] == 1 and ex["nonfinite_tail"] is False
    assert ex["last_finite_step"] == 590
    assert math.isfinite(row["noise"]) and math.isfinite(row["best_value"])
    assert row["final_step"] == 590
    assert segs and all(g["step_end"] <= 590 for g in segs)
    vals2 = vals.copy()
    vals2[10] = 4.0
    row2, _, _ = analyse_curve(steps, vals2, direction="min")
    assert _extra(row2)["nonfinite_tail"] is True


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7])
def test_short_curves_do_not_crash(n):
    steps = (np.arange(n, dtype=np.int64) + 1) * 500
    vals = 2.0 + 1.0 / np.arange(1, n + 1) if n else np.array([])
    row, segs, spikes = analyse_curve(steps, vals, direction="min", kind="loss")
    assert row["n_points"] == n and spikes == []
    assert set(row) == {f.name for f in FEATURES} - {"run", "metric"}
    json.loads(row["extra"])
    if n >= 1:
        assert row["best_value"] == pytest.approx(vals.min(), rel=0.2)
        assert len(segs) == 1
    if n == 7:
        assert math.isfinite(row["tail_slope"]) and row["tail_slope"] < 0
        assert segs[0]["kind"] == "descent"
    if n < 3:
        assert math.isnan(row["noise"])


def test_all_nan_curve():
    row, segs, spikes = analyse_curve(np.arange(5, dtype=np.int64), np.full(5, np.nan), direction="min")
    assert row["n_nonfinite"] == 5 and row["first_nonfinite_step"] == 0
    assert math.isnan(row["best_value"]) and segs == [] and spikes == []


def test_constant_curve():
    steps = np.arange(200, dtype=np.int64)
    row, segs, spikes = analyse_curve(steps, np.full(200, 1.5), direction="min", kind="loss")
    assert row["noise"] == 0.0
    assert [g["kind"] for g in segs] == ["plateau"] and spikes == []
    assert row["best_value"] == 1.5 and row["improvement_rel"] == 0.0
    assert not row["fit_ok"] and math.isnan(row["fit_l_inf"])


def test_direction_max_accuracy_with_a_drop():
    rng = np.random.default_rng(4)
    steps = np.arange(1, 401, dtype=np.int64) * 50
    acc = 0.9 - 0.8 * (steps / 50.0) ** -0.5  # a power law towards a 0.9 ceiling
    acc = np.round((acc + 0.005 * rng.standard_normal(steps.size)) * 1000) / 1000  # steppy
    acc[250] -= 0.3  # a sudden drop, back the next point
    row, segs, spikes = analyse_curve(steps, acc, direction="max", kind="accuracy")
    assert row["best_value"] > 0.8 and row["best_value"] == pytest.approx(acc.max(), abs=0.01)
    assert row["improvement_rel"] > 0
    assert [sp["step"] for sp in spikes] == [int(steps[250])]
    assert spikes[0]["recovery_class"] == "fast"
    assert segs[0]["kind"] == "ascent"
    assert row["fit_ok"] and row["fit_l_inf"] == pytest.approx(0.9, abs=0.03) and row["fit_a"] < 0


def test_uneven_steps_give_per_step_slopes():
    steps = np.array([100, 200, 400, 800, 1600, 3200, 6400, 12800], dtype=np.int64)
    vals = 2.0 - 1e-4 * steps
    _, segs, _ = analyse_curve(steps, vals, direction="min")
    assert len(segs) == 1 and segs[0]["slope"] == pytest.approx(-1e-4, rel=1e-6)


def test_unsorted_steps_are_sorted():
    steps = np.array([3, 1, 2, 5, 4, 6, 8, 7, 9, 10], dtype=np.int64)
    vals = steps.astype(float) * -0.1 + 5
    row, _, _ = analyse_curve(steps, vals, direction="min")
    assert row["best_step"] == 10 and row["step_first"] == 1


def test_unknown_param_is_an_error():
    with pytest.raises(ValueError, match="unknown key"):
        analyse_curve(np.arange(3), np.ones(3), params={"penalty": 3})
    with pytest.raises(ValueError, match="direction"):
        analyse_curve(np.arange(3), np.ones(3), direction="up")
    row, _, _ = analyse_curve(np.arange(50), np.linspace(2, 1, 50), params=AnalysisParams(tail_rel=0.5))
    assert _extra(row)["tail_points"] == 25


# --------------------------------------------------------------------------- the frames


def test_analyse_run_frames_match_schemas():
    run = gen.make_run("correlated_spikes", 0)
    out = analyse_run(gen.curves_frame(run), gen.metrics_frame(run))
    for name, schema in (("features", FEATURES), ("segments", SEGMENTS), ("spikes", SPIKES)):
        table = out[name].to_arrow()
        assert table.schema.names == schema.names, name
        for f in schema:
            got = table.schema.field(f.name).type
            assert got == f.type or (pa.types.is_string(f.type) and pa.types.is_large_string(got)), (name, f.name, got)
    feats = out["features"]
    assert sorted(feats["metric"].to_list()) == sorted(run.curves)
    assert feats["run"].unique().to_list() == [run.name]
    assert out["spikes"].height > 0
    # every extra is a JSON object without NaN
    for ex in feats["extra"].to_list():
        assert isinstance(json.loads(ex), dict)


def test_analyse_run_without_roles_uses_direction_none():
    run = gen.make_run("healthy_short", 0)
    out = analyse_run(gen.curves_frame(run).drop("run"))
    feats = out["features"]
    assert feats["run"].to_list() == ["", ""]
    assert feats["best_value"].is_nan().all()


# --------------------------------------------------------------------------- fast paths (long curves)
# analyse computes its noise figures and its spike detrending through faster kernels than
# the ones its docstring names; these tests hold them to the named ones.

from engine import analyse as _analyse_mod  # noqa: E402
from kernels import noise as _noise_kernels  # noqa: E402
from kernels import smoothing as _smoothing_kernels  # noqa: E402
from kernels import spikes as _spikes_kernels  # noqa: E402


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [3, 4, 40, 1001, 150_001])
def test_noise_helpers_equal_the_noise_kernels(seed, n):
    rng = np.random.default_rng(seed)
    x = 2.0 + np.exp(-np.arange(n) / (n / 5 + 1)) + 0.01 * rng.standard_normal(n)
    if seed == 1:
        x = np.round(x, 2)  # ties in the differences
    if seed == 2:
        x = np.full(n, 3.0)  # zero noise: snr is NaN
    if seed == 3:
        x = np.linspace(1.0, 2.0, n)  # zero noise, a change: snr is inf (or NaN at float ties)
    noise = _analyse_mod._mad_noise(x)
    want = _noise_kernels.mad_noise(x)
    assert noise == want or (math.isnan(noise) and math.isnan(want)), (seed, n, noise, want)
    snr, want_snr = _analyse_mod._snr(x, noise), _noise_kernels.signal_to_noise(x)
    assert snr == want_snr or (math.isnan(snr) and math.isnan(want_snr)), (seed, n, snr, want_snr)


def _pretrain_like(n, seed):
    """Cosine pretraining loss with AR(1) noise and 5 spikes (benchmarks/bench_analyse.py's curve)."""
    rng = np.random.default_rng(seed)
    lr = gen.lr_schedule(n, peak=3e-4, warmup=n // 50, kind="cosine")
    loss = gen.lm_loss(lr, l_inf=2.0, amp=8.5, alpha=0.45, tau=30, lr_term=0.1)[1:]
    y = loss * (1 + 0.01 * gen.ar1(rng, n, 0.7))
    at = np.sort(rng.choice(np.arange(n // 10, n - 100), 5, replace=False))
    for a in at:
        y[a:a + 20] += 1.0
    return np.arange(1, n + 1, dtype=np.int64), y, at


def _plain_kernels(monkeypatch):
    """Patch the plain kernels (and numpy medians) in for analyse's fast paths."""
    def plain_detrend(x, *, baseline_window, noise_window):
        return (_smoothing_kernels.rolling_median(x, window=baseline_window, center=True),
                _noise_kernels.rolling_noise(x, window=noise_window))

    def plain_units(x, *, baseline_window, noise_window, noise_floor):
        b, n = plain_detrend(x, baseline_window=baseline_window, noise_window=noise_window)
        return (x - b) / np.where(np.isfinite(n), np.maximum(n, noise_floor), noise_floor)

    def plain_median(v, *, center=None, differences=False):
        v = np.diff(v) if differences else np.asarray(v, dtype=np.float64)
        return float(np.median(np.abs(v - center) if center is not None else v)) if v.size else math.nan

    def plain_find_spikes(steps, values, *, window, threshold_z, direction, scale_floor):
        return _spikes_kernels._find_spikes_impl(np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64),
                                                 window, threshold_z, direction, 2.0, 11, scale_floor, "full")

    monkeypatch.setattr(_spikes_kernels, "rolling_baseline_noise", plain_detrend)
    monkeypatch.setattr(_spikes_kernels, "detrended_noise_units", plain_units)
    monkeypatch.setattr(_spikes_kernels, "find_spikes", plain_find_spikes)
    monkeypatch.setattr(_analyse_mod, "_median", plain_median)
    monkeypatch.setattr(_analyse_mod, "_mad_noise", _noise_kernels.mad_noise)
    monkeypatch.setattr(_analyse_mod, "_snr", lambda x, noise: _noise_kernels.signal_to_noise(x))


def _assert_same_analysis(fast, plain, msg):
    assert fast[0].keys() == plain[0].keys()
    for key in fast[0]:
        a, b = fast[0][key], plain[0][key]
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), (msg, key, a, b)
    assert fast[1] == plain[1], msg
    assert fast[2] == plain[2], msg


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["min", "max"])
def test_long_curve_fast_paths_change_nothing(monkeypatch, direction):
    """200k points take every fast path (screened spike search, one-pass medians, fused
    detrending). Patching the plain kernels back in must give the identical analysis."""
    s, y, at = _pretrain_like(200_000, 3)
    if direction == "max":
        y = -y
    y[[777, 150_000]] = [math.nan, math.inf]
    fast = analyse_curve(s, y, direction=direction, kind="loss")
    _plain_kernels(monkeypatch)
    _assert_same_analysis(fast, analyse_curve(s, y, direction=direction, kind="loss"), direction)
    found = [sp["step"] for sp in fast[2]]
    for a in at:  # and the five spikes are there
        assert any(a + 1 <= f <= a + 21 for f in found), (a, found)


@pytest.mark.parametrize("n", [24, 40, 90, 300])
def test_short_curves_with_ramped_spikes_fast_paths_change_nothing(monkeypatch, n):
    """Short curves (spike window 11) whose spikes are preceded by a ramp, so the event
    start walks back further than the window: the baseline and noise recomputed around
    the spike must cover it."""
    rng = np.random.default_rng(n)
    steps = np.arange(n, dtype=np.int64) * 3
    y = 1.0 + 0.01 * rng.standard_normal(n)
    k = n - 4
    y[max(0, k - 15):k] += np.linspace(0.0, 0.4, k - max(0, k - 15))
    y[k] += 3.0
    y[n // 3] += 2.0
    fast = [analyse_curve(steps, v, direction=dr, kind="loss") for v, dr in ((y, "min"), (-y, "max"))]
    assert any(fast[0][2]), f"n={n}: no spike found"
    _plain_kernels(monkeypatch)
    for f, (v, dr) in zip(fast, ((y, "min"), (-y, "max"))):
        _assert_same_analysis(f, analyse_curve(steps, v, direction=dr, kind="loss"), f"n={n} {dr}")


def _noise_change_plain(x, min_rel=0.05, min_size=5):
    """The noise-level changepoint written plainly (whole arrays, np.median)."""
    d = np.abs(np.diff(x))
    n = d.size
    y = np.log(d + (0.01 * float(np.median(d)) + 1e-300))
    lo = max(min_size, int(min_rel * n))
    if n < 2 * lo + 1:
        return 0, math.nan
    cs = np.cumsum(y)
    k = np.arange(lo, n - lo + 1)
    m1 = cs[k - 1] / k
    m2 = (cs[-1] - cs[k - 1]) / (n - k)
    j = int(np.argmax(k * m1 ** 2 + (n - k) * m2 ** 2))
    return int(k[j]) + 1, float(math.exp(m2[j] - m1[j]))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n", [12, 41, 1000, 140_001])
def test_noise_change_chunked_equals_plain(seed, n):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.standard_normal(n))
    x[n // 3:] += 5.0 * rng.standard_normal(n - n // 3)  # the noise triples a third of the way in
    if seed == 2:
        x = np.round(x)
    got, want = _analyse_mod._noise_change(x), _noise_change_plain(x)
    assert got[0] == want[0] and (got[1] == want[1] or (math.isnan(got[1]) and math.isnan(want[1]))), (seed, n, got, want)


def test_spike_bridge_that_runs_past_the_end_follows_the_curve_to_its_last_points():
    """A spike near the end whose (doubled) bridge reaches past the last point: the bridge
    ends on the last points, not flat at the pre-spike level across a falling trend (which
    made the end a 'plateau' and moved the best step back)."""
    rng = np.random.default_rng(0)
    s = np.arange(1, 2001, dtype=np.int64)
    v = 3.0 - 0.0005 * s + 0.005 * rng.standard_normal(s.size)
    v[1930:] += 0.5 * np.exp(-(s[1930:] - s[1930]) / 25.0)  # recovers by ~1,985
    row, segs, spikes = analyse_curve(s, v, direction="min", kind="loss")
    assert spikes and spikes[0]["recovered"]
    assert all(g["kind"] == "descent" for g in segs)
    assert row["best_step"] == 2000
