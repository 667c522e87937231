"""Shared helpers for rule tests: diagnose a generated scenario in memory (cached)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from data import generate as gen  # noqa: E402


@functools.lru_cache(maxsize=None)
def analysed(scenario: str, seed: int):
    """(Run, analysis tables) of one generated scenario, metric roles from its labels."""
    from engine.diagnose import analyse_frames
    run = gen.make_run(scenario, seed)
    tables = analyse_frames(gen.curves_frame(run), gen.metrics_frame(run), events_frame(run))
    return run, tables


def events_frame(run):
    import polars as pl
    return pl.DataFrame([dict(run=run.name, step=e["step"], kind=e["kind"], detail=e["detail"], source="user")
                         for e in run.events],
                        schema={"run": pl.String, "step": pl.Int64, "kind": pl.String, "detail": pl.String,
                                "source": pl.String})


def _rules_on(run, t, thresholds=None):
    from engine.rules import run_rules
    from engine.rules.base import RunContext
    ctx = RunContext(run.name, features=t["features"], segments=t["segments"], spikes=t["spikes"],
                     metrics=t["metrics"], events=t["events"])
    return run_rules(ctx, thresholds)


def diagnose_scenario(scenario: str, seed: int, thresholds=None):
    """(Run, list of Finding) for one generated scenario."""
    run, t = analysed(scenario, seed)
    return run, _rules_on(run, t, thresholds)


def diagnose_run(run, thresholds=None):
    """List of Finding for a Run built in a test (not cached)."""
    from engine.diagnose import analyse_frames
    return _rules_on(run, analyse_frames(gen.curves_frame(run), gen.metrics_frame(run), events_frame(run)),
                     thresholds)


def of(findings, code):
    """The findings of one code."""
    return [f for f in findings if f.code == code]


def found(code, scenario, seed):
    """(Run, findings of ``code``) for one generated scenario."""
    run, findings = diagnose_scenario(scenario, seed)
    return run, of(findings, code)


def assert_fires(code, scenario, seed):
    """Every label of ``code`` in the scenario is matched by a finding; returns the findings."""
    run, got = found(code, scenario, seed)
    labels = [e for e in run.expected if e["code"] == code]
    assert labels, f"{scenario} seed {seed} has no {code} label"
    for lab in labels:
        assert any(matches(f, lab) for f in got), (
            f"{code} missed {scenario} seed {seed}: label {lab}; found "
            f"{[(f.metrics, f.step_start, f.step_end, f.message) for f in got]}")
    return got


def assert_quiet(code, scenario, seed, severities=("info", "warning", "critical")):
    """No finding of ``code`` (of these severities) in the scenario."""
    run, got = found(code, scenario, seed)
    bad = [f for f in got if f.severity in severities]
    assert not bad, f"{code} fired on {scenario} seed {seed}: {[f.message for f in bad]}"


def codes(findings, severities=("info", "warning", "critical")):
    return {f.code for f in findings if f.severity in severities}


def matches(finding, label) -> bool:
    """The generator's matching rule: same code, a shared metric, start and end within tolerance."""
    tol = label["tolerance_steps"]
    return (finding.code == label["code"] and bool(set(finding.metrics) & set(label["metrics"]))
            and finding.step_start is not None and finding.step_end is not None
            and abs(finding.step_start - label["step_start"]) <= tol
            and abs(finding.step_end - label["step_end"]) <= tol)
