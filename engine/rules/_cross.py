"""Helpers shared by the cross-objective rules (pairing, reading a curve at a step).

Everything here reads the analysis tables through the RunContext, never raw arrays:
a curve's value at a step comes from the line fitted to the segment that holds it.
"""

from __future__ import annotations

import math

from engine.rules.base import LOSS_KINDS, RunContext, TrainValPair

HELD_OUT = ("val", "test")


def train_val_pairs(ctx: RunContext) -> list[TrainValPair]:
    """Train vs held-out curves of one objective, same kind and direction.

    ``ctx.pairs()`` pairs split "train" with "val"/"test"; Hugging Face logs the
    training loss as plain ``loss`` (split "none"), so a held-out curve without a
    train partner is paired with a split-"none" curve of the same objective, kind and
    direction (``loss`` with ``eval_loss``, ``mean_token_accuracy`` with
    ``eval_mean_token_accuracy``). Reward curves with different roles (proxy vs gold)
    are left to REWARD_HACKING.
    """
    out = [p for p in ctx.pairs()]
    paired_val = {p.val for p in out}
    for v in ctx.metric_names():
        rv = ctx.role(v)
        if rv["split"] not in HELD_OUT or rv["direction"] == "none" or v in paired_val:
            continue
        cands = [t for t in ctx.metric_names() if t != v and ctx.role(t)["split"] == "none"
                 and ctx.role(t)["kind"] == rv["kind"] and ctx.role(t)["objective"] == rv["objective"]
                 and ctx.role(t)["direction"] == rv["direction"] and ctx.feature(t) is not None]
        # prefer the partner whose role matches (or is empty: HF eval sets eval_g0_* pair with loss)
        same = [t for t in cands if ctx.role(t)["role"] == rv["role"]] or [t for t in cands if not ctx.role(t)["role"]]
        for t in same[:1]:
            out.append(TrainValPair(rv["objective"], rv["kind"], t, v, rv["direction"]))
    keep = []
    for p in out:
        rt, rv = ctx.role(p.train), ctx.role(p.val)
        if p.kind == "reward" and rt["role"] != rv["role"]:
            continue
        if ctx.feature(p.train) is None or ctx.feature(p.val) is None:
            continue
        keep.append(p)
    return keep


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
