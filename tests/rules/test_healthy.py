"""HEALTHY: reported when no warning/critical fired, with the run's key figures."""

from engine.rules import healthy as healthy_mod
from engine.rules.base import Finding, RunContext, load_thresholds
from tests.rules.helpers import analysed, diagnose_scenario


def test_fires__healthy_on_healthy_pretrain_seed_3():
    run, found = diagnose_scenario("healthy_pretrain", 3)
    h = [f for f in found if f.code == "HEALTHY"]
    assert len(h) == 1, [(f.code, f.severity, f.message) for f in found]
    assert h[0].severity == "info" and h[0].metrics[0] == "train/loss"
    assert "train/loss" in h[0].evidence["metrics"]
    assert h[0].evidence["metrics"]["train/loss"]["final"] < h[0].evidence["metrics"]["train/loss"]["initial"]


def test_quiet__healthy_when_a_warning_was_raised():
    run, t = analysed("healthy_pretrain", 3)
    ctx = RunContext(run.name, **{k: t[k] for k in ("features", "segments", "spikes", "metrics", "events")})
    ctx.findings = [Finding(run.name, "LOSS_SPIKE", "warning", 0.8, ["train/loss"], 10, 20, "m")]
    assert healthy_mod.healthy(ctx, load_thresholds()["HEALTHY"]) == []
    ctx.findings = [Finding(run.name, "CONVERGED", "info", 0.8, ["train/loss"], 10, 20, "m")]
    assert len(healthy_mod.healthy(ctx, load_thresholds()["HEALTHY"])) == 1
