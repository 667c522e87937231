"""The rule registry: an explicit list, no import magic.

``RULES`` lists every rule function (each carries ``.rule``: code, summary, scope).
``run_rules(ctx, thresholds)`` runs them on one RunContext: objective and cross rules
first (in list order), then summary rules (HEALTHY) which see the findings so far in
``ctx.findings``. Each finding's confidence goes through its rule's calibration curve
(``calibrate``: keys calib_raw/calib_p of its thresholds table, when present). Between the
two, ``apply_precedence`` folds the "how far along is this loss" findings (STILL_IMPROVING,
CONVERGED, CONVERGED_EARLY) into a run-level finding that makes their advice misleading
(see PRECEDENCE). Findings are returned sorted by severity (critical first), then step.

To add a rule: write its module, import it below, append its function to RULES, add
its table to engine/thresholds.toml (see engine/rules/base.py).
"""

from __future__ import annotations

from pathlib import Path

from engine.rules import (converged, converged_early, divergence, erratic, healthy, loss_spike, nonfinite, plateau,
                          plateau_broken, regime_shift, still_improving, underfitting)
from engine.rules import correlated_spikes as _correlated_spikes
from engine.rules import generalization_gap as _generalization_gap
from engine.rules import objective_imbalance as _objective_imbalance
from engine.rules import grad_norm_instability as _grad_norm_instability
from engine.rules import overfitting as _overfitting
from engine.rules import reward_collapse as _reward_collapse
from engine.rules import reward_hacking as _reward_hacking
from engine.rules.base import Finding, RunContext, Thresholds, load_thresholds

# --- per-objective rules (one module each)
PER_OBJECTIVE: list = [
    nonfinite.nonfinite, divergence.divergence, loss_spike.loss_spike, erratic.erratic, plateau.plateau,
    plateau_broken.plateau_broken, regime_shift.regime_shift, converged.converged,
    converged_early.converged_early, still_improving.still_improving, underfitting.underfitting,
]

# --- cross-objective rules (append yours here)
CROSS: list = [
    _overfitting.overfitting,
    _reward_hacking.reward_hacking,
    _reward_collapse.reward_collapse,
    _correlated_spikes.correlated_spikes,
    _grad_norm_instability.grad_norm_instability,
    _generalization_gap.generalization_gap,
    _objective_imbalance.objective_imbalance,
]

RULES = PER_OBJECTIVE + CROSS + [healthy.healthy]

_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def calibrate(finding: Finding, th: Thresholds) -> Finding:
    """Map a rule's raw confidence through its calibration curve, when its table has one:
    ``calib_raw`` (increasing raw confidences) and ``calib_p`` (the share of findings
    that were right there, isotonic fit on the tuning scenarios; see
    benchmarks/eval_rules.py --fit-calibration), linear in between, flat outside. The raw
    value stays in evidence["raw_confidence"]. Empty lists: no calibration."""
    d = th.as_dict()
    xs, ys = d.get("calib_raw") or [], d.get("calib_p") or []
    if not xs or len(xs) != len(ys):
        return finding
    raw = float(finding.confidence)
    if raw <= xs[0]:
        p = ys[0]
    elif raw >= xs[-1]:
        p = ys[-1]
    else:
        i = next(k for k in range(1, len(xs)) if raw <= xs[k])
        w = (raw - xs[i - 1]) / (xs[i] - xs[i - 1]) if xs[i] > xs[i - 1] else 1.0
        p = ys[i - 1] + w * (ys[i] - ys[i - 1])
    if isinstance(finding.evidence, dict):
        finding.evidence.setdefault("raw_confidence", raw)
    finding.confidence = min(1.0, max(0.0, float(p)))
    return finding


# Run-level precedence: (superseding code, superseded codes). When the superseding finding
# names every metric of a superseded finding, the latter is dropped and recorded in the
# superseding finding's evidence["supersedes"] (code, metrics, steps). Why each:
# - OVERFITTING: the held-out curve of the objective has turned; "still improving, train
#   longer" or "converged, stop here" about its training loss points the wrong way: the
#   decision is the best checkpoint and early stopping, which OVERFITTING gives.
# - UNDERFITTING: a loss that barely left its chance level is not "converged" (there is
#   nothing to stop early for) and a slow drift down is not progress worth more steps.
# - DIVERGENCE, NONFINITE: a curve that blew up is neither converged nor improving.
# - STILL_IMPROVING: its tail improves by min_slope_z HAC standard errors and the fitted
#   power law pins down a gain; CONVERGED / CONVERGED_EARLY about the same curves rest on
#   the tail's small share of the total improvement, which a long power-law tail always
#   has: the significance test is the stronger evidence ("stop here" would be wrong).
PRECEDENCE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("OVERFITTING", ("STILL_IMPROVING", "CONVERGED", "CONVERGED_EARLY")),
    ("UNDERFITTING", ("STILL_IMPROVING", "CONVERGED", "CONVERGED_EARLY")),
    ("DIVERGENCE", ("STILL_IMPROVING", "CONVERGED", "CONVERGED_EARLY")),
    ("NONFINITE", ("STILL_IMPROVING", "CONVERGED", "CONVERGED_EARLY")),
    ("STILL_IMPROVING", ("CONVERGED", "CONVERGED_EARLY")),
)


def apply_precedence(findings: list[Finding], precedence=PRECEDENCE) -> list[Finding]:
    """Drop the findings that a run-level finding supersedes (PRECEDENCE): a finding of a
    superseded code whose metrics all appear in one superseding finding of the same run.
    The dropped ones are listed in the superseding finding's evidence["supersedes"] so
    nothing disappears silently."""
    drop: set[int] = set()
    for top, lower in precedence:
        for sup in findings:
            if sup.code != top:
                continue
            names = set(sup.metrics)
            for i, f in enumerate(findings):
                if i in drop or f.code not in lower or f.run != sup.run or not f.metrics:
                    continue
                if set(f.metrics) <= names:
                    drop.add(i)
                    if isinstance(sup.evidence, dict):
                        sup.evidence.setdefault("supersedes", []).append(
                            dict(code=f.code, metrics=list(f.metrics), step_start=f.step_start,
                                 step_end=f.step_end))
    return [f for i, f in enumerate(findings) if i not in drop]


def rule_by_code(code: str):
    for fn in RULES:
        if fn.rule.code == code:
            return fn
    raise KeyError(f"no rule {code!r}; known: {', '.join(fn.rule.code for fn in RULES)}")


def resolve_thresholds(thresholds) -> dict[str, Thresholds]:
    """None -> shipped defaults; a path -> defaults overridden by that file; a dict of
    Thresholds -> as is; a plain dict {code: {key: value}} -> defaults with those keys
    replaced (checked like a user file)."""
    if thresholds is None:
        return load_thresholds()
    if isinstance(thresholds, (str, Path)):
        return load_thresholds(thresholds)
    if isinstance(thresholds, dict) and all(isinstance(v, Thresholds) for v in thresholds.values()):
        base = load_thresholds()
        base.update(thresholds)
        return base
    if isinstance(thresholds, dict):
        from engine.rules.base import override_thresholds
        return override_thresholds(load_thresholds(), thresholds, source="<thresholds dict>")
    raise TypeError(f"thresholds: expected None, a TOML path or a dict, got {type(thresholds).__name__}")


def run_rules(ctx: RunContext, thresholds=None, *, rules=None) -> list[Finding]:
    """All rules on one run; returns its findings (critical first, then by step)."""
    th = resolve_thresholds(thresholds)
    rules = RULES if rules is None else rules
    ctx.findings = []
    ordered = [r for r in rules if r.rule.scope != "summary"] + [r for r in rules if r.rule.scope == "summary"]
    folded = False
    for fn in ordered:
        code = fn.rule.code
        if fn.rule.scope == "summary" and not folded:
            ctx.findings = apply_precedence(ctx.findings)
            folded = True
        try:
            got = fn(ctx, th[code])
        except Exception as e:  # a rule bug must name the rule and the run
            raise RuntimeError(f"rule {code} failed on run {ctx.run!r}: {type(e).__name__}: {e}") from e
        if got is None:
            continue
        if isinstance(got, Finding):
            got = [got]
        for f in got:
            calibrate(f, th[code])
        ctx.findings.extend(got)
    if not folded:
        ctx.findings = apply_precedence(ctx.findings)
    return sorted(ctx.findings, key=lambda f: (_SEVERITY_ORDER[f.severity],
                                               f.step_start if f.step_start is not None else -1, f.code))


__all__ = ["RULES", "PER_OBJECTIVE", "CROSS", "PRECEDENCE", "apply_precedence", "run_rules", "rule_by_code", "resolve_thresholds",
           "RunContext", "Finding", "load_thresholds"]
