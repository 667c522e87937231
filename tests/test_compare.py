"""engine/compare.py: ranking at equal steps, seed groups, divergence step, LR range test, CLI.

Runs are built from data/generate.py's building blocks (lr_schedule, lm_loss, ar1:
level-proportional AR(1) noise as trainers log it) with known differences, and ingested
through a tiny private importer that also sets the runs' attributes (params).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.compare import (NotRangeTestError, compare, divergence_step, local_estimate, lr_range_test,
                            lr_range_test_run, overlay)
from engine.errors import LosscopeError
from engine.ingest.base import IngestOptions, Parsed, hash_files, make_table
from engine.store import Store
from tests.test_generate import gen

TOTAL = 4000


# ------------------------------------------------------------------------------ fixtures


def _read(path, *, run=None, options=IngestOptions()):
    path = Path(path)
    df = pl.read_parquet(path)
    name = df["run"][0]
    attrs = json.loads(path.with_suffix(".json").read_text())
    t = make_table(df["run"].to_list(), df["metric"].to_list(), df["step"].to_list(), df["value"].to_list())
    return Parsed("cmp-test", str(path), t, attributes={name: attrs}, content_hash=hash_files([path]))


IMPORTER = SimpleNamespace(FORMAT="cmp-test", sniff=lambda p: Path(p).suffix == ".cmp", read=_read)


def _clean_loss(total=TOTAL):
    lr = gen.lr_schedule(total, peak=6e-4, warmup=100, kind="cosine", final_frac=0.1)
    return lr, gen.lm_loss(lr, l_inf=2.0, amp=8.0, alpha=0.5, tau=30.0, lr_term=0.1)


def _put(store, tmp, name, curves: dict, params: dict):
    """curves: metric -> (steps, values)."""
    rows = [(name, m, int(s), float(v)) for m, (st, vs) in curves.items() for s, v in zip(st, vs)]
    df = pl.DataFrame(rows, schema={"run": pl.String, "metric": pl.String, "step": pl.Int64, "value": pl.Float64},
                      orient="row")
    p = tmp / f"{abs(hash(name))}.cmp"
    df.write_parquet(p)
    p.with_suffix(".json").write_text(json.dumps({"params": params}))
    store.ingest(p, mods=[IMPORTER])


def _noisy(clean, steps, *, seed, noise_rel, phi=0.5, offset_rel=0.0):
    rng = np.random.default_rng(seed)
    c = clean[steps] * (1 + offset_rel)
    return c * (1 + noise_rel * gen.ar1(rng, len(steps), phi))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Runs (train/loss, logged every 5 steps up to TOTAL unless said):
    - cfgA/cfgB/cfgC: same curve, levels +0%, +5%, +10% (5 and 10 noise levels of 1%).
    - twin-a / twin-b: cfgA's curve +0.1 noise level apart (0.1% of the level), other noise.
    - lr1e-3-seed{0,1,2} and lr3e-3-seed{0,1,2}: the second config 3% worse, 1% noise.
    - split-a / split-b: identical until step 2000, then b rises by up to 10% (7 combined noise levels; tau 200 steps);
      a logged every 5 steps, b every 20 steps from step 7.
    - sweep: an LR range test (lr rises exponentially 1e-7..1 over 400 steps).
    """
    tmp = tmp_path_factory.mktemp("compare")
    st = Store(tmp / "store")
    lr, clean = _clean_loss()
    steps = gen.log_steps(TOTAL, 5)
    for i, (name, off) in enumerate((("cfgA", 0.0), ("cfgB", 0.05), ("cfgC", 0.10))):
        _put(st, tmp, name, {"train/loss": (steps, _noisy(clean, steps, seed=10 + i, noise_rel=0.01, offset_rel=off)),
                             "lr": (steps, lr[steps])}, {"cfg": name})
    for i, name in enumerate(("twin-a", "twin-b")):
        _put(st, tmp, name, {"train/loss": (steps, _noisy(clean, steps, seed=20 + i, noise_rel=0.01,
                                                          offset_rel=0.001 * i))}, {"cfg": "twin"})
    for cfg, off in (("1e-3", 0.0), ("3e-3", 0.03)):
        for s in range(3):
            _put(st, tmp, f"lr{cfg}-seed{s}",
                 {"train/loss": (steps, _noisy(clean, steps, seed=30 + s + (10 if off else 0), noise_rel=0.01,
                                               offset_rel=off))},
                 {"lr": float(cfg), "seed": s})
    sa = gen.log_steps(TOTAL, 5)
    sb = gen.log_steps(TOTAL, 20, start=7)
    rise = lambda t: np.where(t > 2000, 0.10 * (1 - np.exp(-(t - 2000) / 200.0)), 0.0)  # noqa: E731
    _put(st, tmp, "split-a", {"train/loss": (sa, _noisy(clean, sa, seed=50, noise_rel=0.01))}, {})
    _put(st, tmp, "split-b", {"train/loss": (sb, _noisy(clean, sb, seed=51, noise_rel=0.01) * (1 + rise(sb)))}, {})
    lr_sw, loss_sw = _sweep(np.random.default_rng(60), n=400)
    ss = np.arange(400)
    _put(st, tmp, "sweep", {"lr": (ss, lr_sw), "train/loss": (ss, loss_sw)}, {})
    return st


# ------------------------------------------------------------------------------ local estimate


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.8, 0.9])
def test_local_estimate_se_is_calibrated(phi):
    """Over 300 noise draws the error of the estimated level divided by its se has sd ~1
    (AR(1) noise: without the autocorrelation correction it would be ~sqrt((1+phi)/(1-phi)))."""
    lr, clean = _clean_loss()
    steps = gen.log_steps(TOTAL, 5)
    at = 3000
    truth = float(np.interp(at, steps, clean[steps]))
    zs = []
    for seed in range(300):
        y = _noisy(clean, steps, seed=seed, noise_rel=0.01, phi=phi)
        e = local_estimate(steps, y, at, half_width_steps=150)
        zs.append((e["value"] - truth) / e["se"])
    sd = float(np.std(zs))
    assert 0.75 < sd < 1.35, f"phi={phi}: sd of standardised errors {sd:.3f}"
    assert abs(float(np.mean(zs))) < 0.3, f"phi={phi}: mean standardised error {np.mean(zs):.3f}"


def test_local_estimate_at_end_of_sloped_curve_is_unbiased():
    steps = np.arange(0, 1001, dtype=np.int64)
    y = 5.0 - 0.002 * steps  # noiseless straight line: a one-sided window must not lag
    e = local_estimate(steps, y, 1000, half_width_steps=50)
    assert e["value"] == pytest.approx(3.0, abs=1e-9)


# ------------------------------------------------------------------------------ compare


def test_ranking_when_runs_differ_by_many_noise_levels(store):
    df = compare(store, "train/loss", runs=["cfgC", "cfgA", "cfgB"])
    assert df["group"].to_list() == ["cfgA", "cfgB", "cfgC"], df
    assert df["rank"].to_list() == [1, 2, 3]
    assert df["step"].unique().to_list() == [TOTAL]
    assert df["direction"][0] == "min"
    best = df.row(0, named=True)
    assert best["distinct"] is True and best["z_vs_best"] > 5, best
    # cfgB sits 5% above cfgA at the end: the estimated gap is within 4 se of it
    lr, clean = _clean_loss()
    gap = df["delta_to_best"][1]
    assert abs(gap - 0.05 * clean[TOTAL]) < 4 * math.hypot(df["se"][0], df["se"][1]), df


def test_max_direction_ranks_highest_first(store):
    df = compare(store, "train/loss", runs=["cfgA", "cfgC"], direction="max")
    assert df["group"].to_list() == ["cfgC", "cfgA"]


def test_not_distinguishable_when_gap_is_below_noise(store):
    df = compare(store, "train/loss", runs=["twin-a", "twin-b"])
    assert df["distinct"].to_list() == [False, False], df
    assert df["z_vs_best"][0] < 2.0


def test_at_step_given_and_run_that_did_not_reach_it(store):
    df = compare(store, "train/loss", runs=["cfgA", "cfgB", "sweep"])
    assert df["step"][0] == 399  # the sweep stops at step 399: the largest step all reached
    df = compare(store, "train/loss", runs=["cfgA", "cfgB", "sweep"], at_step=2000)
    sweep = df.filter(pl.col("group") == "sweep").row(0, named=True)
    assert sweep["rank"] is None and "do not include step 2,000" in sweep["note"]
    assert df.filter(pl.col("rank") == 1)["group"][0] == "cfgA"


def test_seed_grouping_by_name_and_by_attribute(store):
    runs = [f"lr{c}-seed{s}" for c in ("1e-3", "3e-3") for s in range(3)]
    by_name = compare(store, "train/loss", runs=runs, group_by="seed")
    assert by_name["group"].to_list() == ["lr1e-3", "lr3e-3"]
    assert by_name["n_runs"].to_list() == [3, 3]
    assert by_name["distinct"][0] is True
    single = compare(store, "train/loss", runs=runs)
    means = single.with_columns(pl.col("group").str.replace(r"-seed\d$", "")).group_by("group").agg(
        pl.col("value").mean()).sort("group")
    np.testing.assert_allclose(by_name.sort("group")["value"].to_numpy(), means["value"].to_numpy(), rtol=1e-12)
    by_attr = compare(store, "train/loss", runs=runs, group_by=["lr"])
    assert by_attr["group"].to_list() == ["lr=0.001", "lr=0.003"]
    assert [sorted(r) for r in by_attr["runs"].to_list()] == [sorted(r) for r in by_name["runs"].to_list()]
    by_call = compare(store, "train/loss", runs=runs, group_by=lambda r: r.rsplit("-", 1)[0])
    assert by_call["group"].to_list() == ["lr1e-3", "lr3e-3"]


def test_group_se_uses_between_seed_spread_when_it_dominates(tmp_path):
    """Seeds whose levels differ by ~2% with 0.2% noise: the group's se is the seeds' sd/sqrt(k)."""
    st = Store(tmp_path / "st")
    lr, clean = _clean_loss()
    steps = gen.log_steps(TOTAL, 5)
    offsets = [0.0, 0.02, -0.015, 0.01]
    for s, off in enumerate(offsets):
        _put(st, tmp_path, f"base-s{s}", {"train/loss": (steps, _noisy(clean, steps, seed=70 + s, noise_rel=0.002,
                                                                         offset_rel=off))}, {"seed": s})
    df = compare(st, "train/loss", group_by="seed")
    row = df.row(0, named=True)
    assert row["n_runs"] == 4 and row["se_source"] == "seeds"
    expect = clean[TOTAL] * np.std(offsets, ddof=1) / 2.0
    assert row["se"] == pytest.approx(expect, rel=0.1), row


def test_compare_bad_input(store):
    with pytest.raises(LosscopeError, match="no such run"):
        compare(store, "train/loss", runs=["cfgA", "nope"])
    with pytest.raises(LosscopeError, match="no run in the store has this metric"):
        compare(store, "does/not/exist")
    with pytest.raises(LosscopeError, match="no run has attribute"):
        compare(store, "train/loss", runs=["cfgA", "cfgB"], group_by=["no_such_key"])
    with pytest.raises(LosscopeError, match="no direction"):
        compare(store, "lr", runs=["cfgA", "cfgB"])


def test_nonfinite_points_are_data_not_crashes(tmp_path):
    st = Store(tmp_path / "st")
    lr, clean = _clean_loss()
    steps = gen.log_steps(TOTAL, 5)
    y = _noisy(clean, steps, seed=1, noise_rel=0.01)
    y[::7] = np.nan
    y[-3] = np.inf
    _put(st, tmp_path, "holes", {"train/loss": (steps, y)}, {})
    _put(st, tmp_path, "clean", {"train/loss": (steps, _noisy(clean, steps, seed=2, noise_rel=0.01,
                                                              offset_rel=0.1))}, {})
    _put(st, tmp_path, "allnan", {"train/loss": (steps[:5], np.full(5, np.nan))}, {})
    df = compare(st, "train/loss")
    assert df["group"].to_list() == ["holes", "clean", "allnan"], df
    assert df["rank"].to_list()[:2] == [1, 2] and df["rank"][2] is None
    assert "finite point" in df["note"][2]


# ------------------------------------------------------------------------------ divergence


def test_divergence_step_near_known_split_with_different_cadences(store):
    d = divergence_step(store, "split-a", "split-b", "train/loss")
    assert d["diverged"] is True, d
    tol = 0.05 * TOTAL  # 200 steps
    assert abs(d["onset_step"] - 2000) <= tol, d
    assert d["onset_step"] <= d["step"] <= 2000 + 5 * 200, d  # the 3-noise crossing follows the onset
    lr, clean = _clean_loss()
    assert d["gap_end"] == pytest.approx(0.10 * clean[TOTAL], rel=0.3), d
    assert d["better"] == "split-a"
    assert d["gap_end_noise"] > 3.0


def test_no_divergence_between_seeds_of_one_config(store):
    for a, b in (("lr1e-3-seed0", "lr1e-3-seed1"), ("lr1e-3-seed1", "lr1e-3-seed2"), ("twin-a", "twin-b")):
        d = divergence_step(store, a, b, "train/loss")
        assert d["diverged"] is False and d["step"] is None, (a, b, d)


def test_divergence_between_configs_far_apart_starts_early(store):
    d = divergence_step(store, "cfgA", "cfgC", "train/loss")
    assert d["diverged"] is True and d["step"] <= 0.1 * TOTAL, d


def test_divergence_bad_input(store):
    with pytest.raises(LosscopeError, match="no such run"):
        divergence_step(store, "cfgA", "nope", "train/loss")
    with pytest.raises(LosscopeError, match="z must be"):
        divergence_step(store, "cfgA", "cfgB", "train/loss", z=0)


# ------------------------------------------------------------------------------ LR range test


def _sweep_curve(x):
    """Loss against x = log10(lr): falls around x = -3.5 (steepest there), blows up past -1.5."""
    return 2.4 - 1.6 / (1 + np.exp(-(x + 3.5) / 0.3)) + 0.5 * np.exp((x + 1.5) / 0.25)


def _sweep(rng, n, *, kind="exp", noise=0.04):
    lr = np.logspace(-7, 0, n) if kind == "exp" else np.linspace(1e-5, 0.3, n)
    x = np.log10(lr)
    return lr, _sweep_curve(x) + noise * rng.standard_normal(n)


def _truth():
    x = np.linspace(-7, 0, 200001)
    y = _sweep_curve(x)
    g = np.gradient(y, x)
    i_min = int(np.argmin(y))
    return 10 ** x[int(np.argmin(g[:i_min]))], 10 ** x[i_min]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_lr_range_test_suggests_known_optimum(seed):
    steep, lr_min = _truth()
    lr, loss = _sweep(np.random.default_rng(seed), 300)
    r = lr_range_test(lr, loss)
    assert steep / 3 <= r["suggested_lr"] <= steep * 3, (seed, steep, r)
    assert lr_min / 30 <= r["lr_min_div10"] <= lr_min / 10 * 3, (seed, lr_min, r)
    assert r["kind"] == "exponential"


def test_lr_range_test_with_steps_order_and_divergent_tail():
    steep, _ = _truth()
    lr, loss = _sweep(np.random.default_rng(5), 300)
    loss[-20:] = np.inf  # the run blew up: the first non-finite point ends the sweep
    steps = np.arange(300)
    perm = np.random.default_rng(6).permutation(300)
    r = lr_range_test(steps[perm], loss[perm], lr=lr[perm])
    assert steep / 3 <= r["suggested_lr"] <= steep * 3, r


def test_lr_range_test_linear_sweep():
    """A linear sweep resolves LRs near its top only: the curve is moved 2.8 decades up so
    its steepest point (~0.2) lies where a 1e-3..1 linear sweep has points."""
    lr = np.linspace(1e-3, 1.0, 600)
    y = _sweep_curve(np.log10(lr) - 2.8) + 0.02 * np.random.default_rng(7).standard_normal(600)
    r = lr_range_test(lr, y)
    assert r["kind"] == "linear"
    steep = _truth()[0] * 10 ** 2.8
    assert steep / 3 <= r["suggested_lr"] <= steep * 3, (steep, r)


def test_lr_range_test_rejects_normal_runs():
    lr = gen.lr_schedule(4000, peak=6e-4, warmup=200, kind="cosine")
    loss = np.linspace(3, 2, lr.shape[0])
    with pytest.raises(NotRangeTestError, match="not an LR range test"):
        lr_range_test(lr, loss)
    with pytest.raises(ValueError, match="rises in 0%"):
        lr_range_test(np.full(100, 1e-3), loss[:100])
    with pytest.raises(NotRangeTestError, match="not positive"):
        lr_range_test(np.linspace(0, 1, 100), loss[:100])
    with pytest.raises(ValueError, match="equal length"):
        lr_range_test(np.linspace(0, 1, 100), loss[:99])


def test_lr_range_test_run_reads_kinds_from_store(store):
    steep, _ = _truth()
    r = lr_range_test_run(store, "sweep")
    assert r["lr_metric"] == "lr" and r["loss_metric"] == "train/loss"
    assert steep / 3 <= r["suggested_lr"] <= steep * 3, r
    with pytest.raises(NotRangeTestError) as e:
        lr_range_test_run(store, "cfgA")  # warmup + cosine
    assert e.value.run == "cfgA" and "not an LR range test" in str(e.value)


# ------------------------------------------------------------------------------ overlay


def test_overlay_frame(store):
    df = overlay(store, "train/loss", ["split-a", "split-b"], max_points=100)
    assert set(df["run"].unique()) == {"split-a", "split-b"}
    assert df.group_by("run").len()["len"].max() <= 100
    lr, clean = _clean_loss()
    a = df.filter(pl.col("run") == "split-a")
    err = np.abs(a["smoothed"].to_numpy() - clean[a["step"].to_numpy()]) / clean[a["step"].to_numpy()]
    assert np.median(err) < 0.01  # the smoothed curve follows the clean one within the 1% noise


# ------------------------------------------------------------------------------ CLI


def test_cli_compare_table_and_json(store):
    runner = CliRunner()
    res = runner.invoke(main, ["compare", "--store", str(store.path), "--metric", "train/loss",
                               "--runs", "cfgB,cfgA", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["group"] for r in rows] == ["cfgA", "cfgB"] and rows[0]["distinct"] is True
    res = runner.invoke(main, ["compare", "--store", str(store.path), "--metric", "train/loss",
                               "--runs", "lr1e-3-seed0,lr1e-3-seed1,lr3e-3-seed0,lr3e-3-seed1",
                               "--group-by", "seed"])
    assert res.exit_code == 0, res.output
    assert "lr1e-3" in res.output and "lr3e-3" in res.output and "step 4,000" in res.output


def test_cli_diverge_and_lr_finder(store):
    runner = CliRunner()
    res = runner.invoke(main, ["compare", "--store", str(store.path), "--metric", "train/loss",
                               "--diverge", "split-a", "split-b", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["diverged"] is True
    res = runner.invoke(main, ["compare", "--store", str(store.path), "--metric", "train/loss",
                               "--diverge", "split-a", "split-b"])
    assert res.exit_code == 0 and "parted at step" in res.output, res.output
    res = runner.invoke(main, ["compare", "--store", str(store.path), "--lr-finder", "sweep", "--format", "json"])
    assert res.exit_code == 0, res.output
    steep, _ = _truth()
    assert steep / 3 <= json.loads(res.output)["suggested_lr"] <= steep * 3


@pytest.mark.parametrize("args, reason", [
    (["--metric", "train/loss", "--runs", "cfgA,nope"], "no such run"),
    (["--metric", "nope/loss"], "no run in the store has this metric"),
    (["--lr-finder", "cfgA"], "not an LR range test"),
    ([], "--metric is required"),
    (["--metric", "train/loss", "--diverge", "cfgA", "nope"], "no such run"),
])
def test_cli_bad_input_exits_2_with_one_line(store, args, reason):
    res = CliRunner().invoke(main, ["compare", "--store", str(store.path), *args])
    assert res.exit_code == 2, res.output
    assert reason in res.output and res.output.strip().count("\n") == 0, res.output


def test_cli_missing_store_exits_2(tmp_path):
    res = CliRunner().invoke(main, ["compare", "--store", str(tmp_path / "none"), "--metric", "loss"])
    assert res.exit_code == 2 and "no losscope store" in res.output
