"""OBJECTIVE_IMBALANCE: one task or modality stalled while the other objectives of the run kept improving."""

from __future__ import annotations

import math

from engine.rules._cross import noise_of, sign_of, value_at
from engine.rules.base import LOSS_KINDS, Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule


def _stall_start(ctx: RunContext, m: str, sg: float, th: Thresholds):
    """Earliest segment start S (not the first segment's) from which the curve's net
    improvement to the end, read on its fitted segments, is at most max_stall_gain_noise
    noise levels, with at least min_stall_rel of the run after S. Returns (S, change in
    noise units) or None. A net change over the stall, not the segments' kinds: noise
    wiggles cut a flat stretch into plateau and short descent pieces."""
    f = ctx.feature(m)
    first, last = f.get("step_first"), f.get("step_last")
    noise = noise_of(ctx, m)
    final = ctx.x(m, "final_value")
    if first is None or last is None or last <= first or not math.isfinite(noise) or not math.isfinite(final):
        return None
    for g in ctx.segments_of(m)[1:]:
        start = int(g["step_start"])
        if (last - start) / (last - first) < th.min_stall_rel:
            break
        gain_noise = sg * (value_at(ctx, m, start) - final) / noise
        if gain_noise <= th.max_stall_gain_noise:
            return start, gain_noise
    return None


@rule(code="OBJECTIVE_IMBALANCE", summary="One objective stalled while the other objectives of the run kept improving.",
      scope="cross")
def objective_imbalance(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: the loss curves of one split that belong to different objectives (tasks,
    modalities: ``text/loss``, ``image/loss``...): for each, the earliest segment start
    from which its net improvement to the end (read on its fitted segments) stays within
    max_stall_gain_noise noise levels (the stall) and that change in noise units, and every other objective's improvement over the
    same steps (relative and in noise units); GradNorm-style training rates
    L(end)/L(stall) per objective.
    Why: with shared parameters, objectives compete; one that stops improving for a
    large part of the run while the others keep learning is being starved (the
    "greedy learner" of modality-imbalance work: one modality converges first and
    suppresses the rest), which a single aggregate loss hides.
    Advice: re-weight the objectives (GradNorm, uncertainty weighting), rebalance the
    data mixture or sampling rates, or use modality-specific LRs / gradient modulation
    (OGM-GE); check that the stalled objective's data and labels still arrive.
    Known false alarms: an objective that has genuinely converged to its floor early
    (easier task) while the others catch up; a deliberate curriculum that stops feeding
    one task (see the events).
    """
    out = []
    for split in ("train", "none", "val", "test"):
        ms = [m for m in ctx.select(kind=LOSS_KINDS, split=split, direction="min") if ctx.feature(m) is not None]
        objectives = {ctx.role(m)["objective"] for m in ms}
        if len(objectives) < 2:
            continue
        for m in ms:
            f = ctx.feature(m)
            first, last = f.get("step_first"), f.get("step_last")
            if first is None or last is None or last <= first or ctx.x(m, "n_finite") < th.min_points:
                continue
            sg = sign_of(ctx.role(m)["direction"])
            stall = _stall_start(ctx, m, sg, th)
            if stall is None:
                continue
            start, own_noise = stall
            movers = []
            for o in ms:
                if ctx.role(o)["objective"] == ctx.role(m)["objective"]:
                    continue
                at, fin = value_at(ctx, o, start), ctx.x(o, "final_value")
                gain = sign_of(ctx.role(o)["direction"]) * (at - fin)
                on = noise_of(ctx, o)
                gain_noise = gain / on if math.isfinite(on) and on > 0 else math.nan
                gain_rel = gain / abs(at) if at else math.nan
                if gain_noise >= th.min_other_gain_noise and gain_rel >= th.min_other_gain_rel:
                    movers.append(dict(metric=o, at_stall=at, final=fin, gain_rel=gain_rel, gain_noise=gain_noise,
                                       rate=fin / at if at else math.nan))
            if not movers:
                continue
            movers.sort(key=lambda d: -d["gain_rel"])
            share = (last - start) / (last - first)
            conf = min(th.max_confidence, max(0.5, logistic(2.0 * (share - th.min_stall_rel) / th.min_stall_rel
                                                            + 0.5 * len(movers) + 0.5)))
            msg = (f"{m} stalled from step {fmt_step(start)} ({pct(share)} of the run, change "
                   f"{fmt(-own_noise, 2)} noise levels) while "
                   + ", ".join(f"{d['metric']} improved {pct(d['gain_rel'])}" for d in movers)
                   + " over the same steps.")
            evidence = dict(stalled=m, split=split, stall_step=start, stall_share=share, stalled_change_noise=-own_noise,
                            stalled_at_start=value_at(ctx, m, start), stalled_final=ctx.x(m, "final_value"),
                            others=movers, thresholds=th.as_dict())
            advice = (f"Re-weight the objectives (GradNorm, uncertainty weighting) or rebalance the data mixture toward "
                      f"{ctx.role(m)['objective']}; try objective-specific LRs or gradient modulation; check that its "
                      "data and labels still arrive.")
            out.append(ctx.finding("OBJECTIVE_IMBALANCE", "warning", conf, [m] + [d["metric"] for d in movers], start,
                                   int(last), msg, evidence, advice))
    return out
