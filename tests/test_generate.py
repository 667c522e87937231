"""The scenario generator: determinism, label sanity, the bundled samples."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_generator():
    name = "losscope_data_generate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "data" / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    return mod


gen = _load_generator()
VARIANTS = 6


@pytest.fixture(scope="module")
def runs():
    return gen.make_scenarios(seed=3, variants=VARIANTS)


def test_same_seed_same_bytes(tmp_path):
    only = ["healthy_sft", "loss_spike", "reward_hacking", "nonfinite"]
    a, b = tmp_path / "a", tmp_path / "b"
    gen.main(["scenarios", str(a), "--seed", "5", "--variants", "2", "--only", *only])
    gen.main(["scenarios", str(b), "--seed", "5", "--variants", "2", "--only", *only])
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    assert len(files) == 2 * len(only) + 1
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_other_seed_other_curves():
    r1 = gen.make_run("healthy_pretrain", 1)
    r2 = gen.make_run("healthy_pretrain", 2)
    s1, v1 = r1.curves["train/loss"]
    s2, v2 = r2.curves["train/loss"]
    assert len(s1) != len(s2) or not np.array_equal(v1, v2)


def test_every_code_is_labelled_somewhere(runs):
    seen = {e["code"] for r in runs for e in r.expected}
    assert seen == set(gen.CODES), f"codes never expected: {sorted(set(gen.CODES) - seen)}"


def test_labels_are_sane(runs):
    for run in runs:
        where = f"{run.name} ({run.scenario}, params {run.params})"
        assert run.curves, where
        for m, (s, v) in run.curves.items():
            assert s.dtype == np.int64 and v.dtype == np.float64, (where, m)
            assert len(s) == len(v) >= 3, (where, m)  # eval once per epoch: 2-4 points
            assert np.all(np.diff(s) > 0), (where, m, "steps not strictly increasing")
            meta = run.metrics[m]
            assert meta["direction"] in ("min", "max", "none"), (where, m)
            assert meta["split"] in ("train", "val", "test", "none"), (where, m)
        for e in run.expected:
            assert e["code"] in gen.CODES, where
            assert e["metrics"] and all(m in run.curves for m in e["metrics"]), (where, e)
            assert e["step_start"] <= e["step_end"], (where, e)
            assert e["tolerance_steps"] >= 1, (where, e)
            lo = min(run.curves[m][0][0] for m in e["metrics"])
            hi = max(run.curves[m][0][-1] for m in e["metrics"])
            assert lo - e["tolerance_steps"] <= e["step_start"] <= hi, (where, e, lo, hi)
            assert e["step_end"] <= hi + e["tolerance_steps"], (where, e, hi)
        fired = {e["code"] for e in run.expected}
        assert not (set(run.must_not_fire) & (fired | run.tolerated)), where
        assert set(run.must_not_fire) | fired | run.tolerated == set(gen.CODES), where
        for ev in run.events:
            assert ev["kind"] in gen.EVENT_KINDS, (where, ev)
        # non-finite values exist exactly when NONFINITE is expected
        has_bad = any(not np.all(np.isfinite(v)) for _, v in run.curves.values())
        assert has_bad == ("NONFINITE" in fired), where
        # a label that names an event must have that event
        for e in run.expected:
            if e.get("explained_by"):
                assert any(ev["kind"] == e["explained_by"] and abs(ev["step"] - e["step_start"]) <= e["tolerance_steps"]
                           for ev in run.events), (where, e)


def test_healthy_runs_expect_info_codes_only(runs):
    warnings = {"NONFINITE", "DIVERGENCE", "LOSS_SPIKE", "ERRATIC", "PLATEAU", "OVERFITTING",
                "REWARD_HACKING", "OBJECTIVE_IMBALANCE", "UNDERFITTING", "GRAD_NORM_INSTABILITY"}
    healthy = [r for r in runs if r.healthy]
    assert {r.family for r in healthy} >= {"pretrain", "sft", "reward_model", "rlhf", "multimodal", "classifier"}
    for run in healthy:
        assert not warnings & {e["code"] for e in run.expected}, run.name
        for e in run.expected:
            if e["code"] == "REGIME_SHIFT":
                assert e.get("severity_max") == "info" and e.get("explained_by"), run.name


def test_short_and_uneven_curves_exist(runs):
    lengths = [len(s) for r in runs for s, _ in r.curves.values()]
    assert min(lengths) <= 7
    gaps = [np.unique(np.diff(s)).size for r in runs for s, _ in r.curves.values() if len(s) > 3]
    assert max(gaps) > 1  # some curve is logged at uneven steps


def test_labels_json_matches_runs(tmp_path):
    gen.main(["scenarios", str(tmp_path), "--seed", "1", "--variants", "1", "--only", "overfitting", "loss_spike"])
    labels = json.loads((tmp_path / "labels.json").read_text())
    assert set(labels["codes"]) == set(gen.CODES)
    for name, lab in labels["runs"].items():
        table = pq.read_table(tmp_path / lab["file"])
        assert table.column_names == ["run", "metric", "step", "value"]
        assert set(table.column("run").to_pylist()) == {name}
        assert set(table.column("metric").to_pylist()) == set(lab["metrics"])
        assert lab["expected"] and all(e["code"] in gen.CODES for e in lab["expected"])


def test_bundled_samples_are_current_and_small(tmp_path):
    committed = ROOT / "data" / "runs"
    if not committed.is_dir():
        pytest.skip("data/runs not generated yet")
    gen.main(["samples", str(tmp_path)])
    fresh = sorted(p.name for p in tmp_path.iterdir())
    assert fresh == sorted(p.name for p in committed.iterdir())
    for name in fresh:
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), (
            f"data/runs/{name} is stale: run `python data/generate.py samples data/runs`")
    assert sum(p.stat().st_size for p in committed.iterdir()) < 2_000_000
    labels = json.loads((committed / "labels.json").read_text())
    assert any(r["healthy"] for r in labels["runs"].values())
    assert any(not r["healthy"] for r in labels["runs"].values())
