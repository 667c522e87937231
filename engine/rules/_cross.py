"""Helpers shared by the cross-objective rules (pairing, reading a curve at a step).

Everything here reads the analysis tables through the RunContext, never raw arrays:
a curve's value at a step comes from the line fitted to the segment that holds it.
"""

from __future__ import annotations

import math

import polars as pl

from engine.infer import MetricRole, train_by_partner
from engine.rules.base import LOSS_KINDS, RunContext, TrainValPair

HELD_OUT = ("val", "test")


def _user_set(ctx: RunContext) -> set[str]:
    """Metrics whose roles a user mapping set (the METRICS table's ``inferred`` False)."""
    m = ctx.metrics
    if m is None or m.height == 0 or "inferred" not in m.columns:
        return set()
    return set(m.filter(~pl.col("inferred"))["metric"].to_list())


def train_val_pairs(ctx: RunContext) -> list[TrainValPair]:
    """Train vs held-out curves of one objective, same kind, role and direction.

    The run's roles first go through ``engine.infer.train_by_partner`` (a plain ``loss``
    logged next to ``eval_loss`` is the training split), then are paired like
    ``RunContext.pairs``: train with val (else test) of the same objective, kind and
    direction, the same role when one matches (HF ``eval_g0_loss`` has role g0 and pairs
    with ``loss``). Reward curves with different roles (proxy vs gold) are left to
    REWARD_HACKING; metrics without analysis rows are dropped.
    """
    user = _user_set(ctx)
    roles = {m: MetricRole(**ctx.role(m), inferred=m not in user) for m in ctx.metric_names()}
    roles = train_by_partner(roles)
    names = [m for m in ctx.metric_names() if ctx.feature(m) is not None]
    out = []
    for t in names:
        rt = roles[t]
        if rt.split != "train" or rt.direction == "none":
            continue
        for held in HELD_OUT:
            cands = [v for v in names if v != t and roles[v].split == held and roles[v].objective == rt.objective
                     and roles[v].kind == rt.kind and roles[v].direction == rt.direction]
            cands = [v for v in cands if roles[v].role == rt.role] or ([] if rt.kind == "reward" else cands)
            if cands:
                out.extend(TrainValPair(rt.objective, rt.kind, t, v, rt.direction) for v in cands)
                break
    return out


def sign_of(direction: str) -> float:
    """+1 when lower is better (min, none), -1 when higher is better."""
    return -1.0 if direction == "max" else 1.0


def value_at(ctx: RunContext, metric: str, step: float) -> float:
    """The curve's fitted value at ``step``: the line of the segment holding it (or the
    nearest segment), evaluated at ``step``. NaN when the metric has no segments."""
    segs = ctx.segments_of(metric)
    if not segs:
        return math.nan
    best = None
    for g in segs:
        if g["step_start"] <= step <= g["step_end"]:
            best = g
            break
    if best is None:
        best = min(segs, key=lambda g: min(abs(step - g["step_start"]), abs(step - g["step_end"])))
        step = min(max(step, best["step_start"]), best["step_end"])
    level, slope = best["level"], best["slope"]
    if level is None or not math.isfinite(level):
        return math.nan
    mid = 0.5 * (best["step_start"] + best["step_end"])
    return float(level + (slope * (step - mid) if slope is not None and math.isfinite(slope) else 0.0))


def noise_of(ctx: RunContext, metric: str) -> float:
    """Point noise of a curve: residual noise around the smoother, else difference-based."""
    v = ctx.x(metric, "noise_resid")
    if math.isfinite(v) and v > 0:
        return v
    v = ctx.x(metric, "noise")
    return v if math.isfinite(v) and v > 0 else math.nan


def spacing_of(ctx: RunContext, metric: str) -> float:
    v = ctx.x(metric, "median_spacing")
    return v if math.isfinite(v) and v > 0 else math.nan


def span_of(ctx: RunContext, metrics) -> tuple[int | None, int | None]:
    """(first step, last step) over ``metrics``."""
    firsts, lasts = [], []
    for m in metrics:
        f = ctx.feature(m)
        if f is None:
            continue
        if f.get("step_first") is not None:
            firsts.append(int(f["step_first"]))
        if f.get("step_last") is not None:
            lasts.append(int(f["step_last"]))
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)


def is_loss(kind: str) -> bool:
    return kind in LOSS_KINDS


def safe_div(a: float, b: float) -> float:
    return a / b if b and math.isfinite(b) and b != 0 else math.nan
