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


def diagnose_scenario(scenario: str, seed: int, thresholds=None):
    """(Run, list of Finding) for one generated scenario."""
    from engine.rules import run_rules
    from engine.rules.base import RunContext
    run, t = analysed(scenario, seed)
    ctx = RunContext(run.name, features=t["features"], segments=t["segments"], spikes=t["spikes"],
                     metrics=t["metrics"], events=t["events"])
    return run, run_rules(ctx, thresholds)


def codes(findings, severities=("info", "warning", "critical")):
    return {f.code for f in findings if f.severity in severities}


def matches(finding, label) -> bool:
    """The generator's matching rule: same code, a shared metric, start and end within tolerance."""
    tol = label["tolerance_steps"]
    return (finding.code == label["code"] and bool(set(finding.metrics) & set(label["metrics"]))
            and finding.step_start is not None and finding.step_end is not None
            and abs(finding.step_start - label["step_start"]) <= tol
            and abs(finding.step_end - label["step_end"]) <= tol)
