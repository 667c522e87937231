"""CONVERGED_EARLY: the loss reached its floor early; the rest of the run bought little."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import curves, group_by_objective, line_at, sign, span, tail_progress, total_improvement


def _still_moving(ctx: RunContext, m: str, th: Thresholds) -> bool:
    """The tail (last quarter) of ``m`` still improves by sibling_improving_noise noise
    levels, and either by more than max_tail_share of its total improvement or while
    ``m`` itself came within noise of its best only after max_reached_rel of the run
    (the twin did not converge early: its late descent is small in share because most
    of it came early, yet it is above its noise)."""
    tp = tail_progress(ctx, m)
    if not tp["change_noise"] >= th.sibling_improving_noise:
        return False
    if tp["share"] > th.max_tail_share:
        return True
    f = ctx.feature(m)
    near, sp = f["extra"].get("step_near_best"), span(ctx, m)
    return near is not None and sp > 0 and (near - f["step_first"]) / sp > th.max_reached_rel
from engine.rules.converged import converged_state


def _line_se(g: dict, step: float) -> float:
    """Standard error of a segment's fitted line at ``step``: its HAC slope SE times
    sqrt(L^2/12 + (step - mid)^2) (for about evenly spaced points the level's variance
    at the mean step is slope_se^2 * L^2 / 12, since Sxx = n L^2 / 12)."""
    se = g.get("slope_se")
    if se is None or not math.isfinite(se):
        return math.nan
    length, mid = g["step_end"] - g["step_start"], 0.5 * (g["step_start"] + g["step_end"])
    return se * math.sqrt(length * length / 12.0 + (step - mid) ** 2)


def gain_after(ctx: RunContext, m: str, near: int) -> dict:
    """What the run bought after the near-best step ``near``: the oriented drop from the
    segment line at ``near`` to the last segment's line at the final step (> 0: the curve
    still improved), its standard error (the two line SEs, independent segments; one
    segment: its slope SE times the distance), its z, its share of the total improvement
    and the number of points after ``near`` (from the median spacing)."""
    f = ctx.feature(m)
    segs = [g for g in ctx.segments_of(m) if g.get("slope") is not None and math.isfinite(g["slope"])]
    end = f.get("final_step")
    out = dict(gain=math.nan, gain_se=math.nan, gain_z=math.nan, gain_share=math.nan, points_after=0)
    spacing = ctx.x(m, "median_spacing")
    if end is not None and math.isfinite(spacing) and spacing > 0:
        out["points_after"] = int(round((end - near) / spacing))
    if not segs or end is None:
        return out
    g0 = next((g for g in segs if g["step_start"] <= near <= g["step_end"]), None)
    if g0 is None:  # near falls in a gap between segments: the next segment's line
        g0 = next((g for g in segs if g["step_start"] > near), segs[-1])
    g1 = segs[-1]
    s = sign(ctx, m)
    gain = s * (line_at(g0, near) - line_at(g1, end))
    if g0 is g1:
        se = abs(g0["slope_se"]) * (end - near) if g0.get("slope_se") is not None else math.nan
    else:
        se = math.hypot(_line_se(g0, near), _line_se(g1, end))
    total = total_improvement(ctx, m)
    out.update(gain=gain, gain_se=se, gain_z=gain / se if math.isfinite(se) and se > 0 else math.nan,
               gain_share=gain / total if total > 0 else math.nan)
    return out


def bought_more(ga: dict, th: Thresholds) -> bool:
    """The rest of the run bought more than max_after_share of the total improvement, at
    min_after_z standard errors: (gain - max_after_share x total) / SE >= min_after_z."""
    g, se, share = ga["gain"], ga["gain_se"], ga["gain_share"]
    if not (math.isfinite(g) and math.isfinite(se) and se > 0 and math.isfinite(share) and share > 0):
        return False
    excess = g * (1.0 - th.max_after_share / share)  # gain - max_after_share * total
    return excess / se >= th.min_after_z


@rule(code="CONVERGED_EARLY", summary="Most of the improvement came early and the long flat tail could have been saved.")
def converged_early(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: the converged-curve figures of CONVERGED (tail share, tail noise units,
    plausible power-law gain) plus the step where the curve came within noise of its
    best (step_near_best) as a share of the run, and the share of steps after it.
    Why: when a loss is within its noise of its final best before max_reached_rel of the
    run and the tail is flat, every later step bought less than the noise: that compute
    could have gone to another run.
    Advice: stop at the given step next time (early stopping on the validation loss with
    patience of a few evals), or shorten the schedule so the decay happens where the
    curve still moves; a bigger model may use the remaining budget better.
    Not judged when a worsening level shift came after that step (see CONVERGED), nor
    when another curve of the same objective (the held-out twin) is not converged and its
    last quarter still improved by sibling_improving_noise noise levels: a very noisy
    train loss is "within noise of its best" almost from the start while its eval curve
    shows the descent going on.
    "Within noise of the best" says the rest bought little only when the noise band is
    small next to the total improvement: on a low-SNR curve (a reward model's train loss
    with 10% noise, whose 2-noise band is a quarter of its improvement; an SFT train
    loss whose second-epoch staircase step is under two noise levels) the near-best step
    comes early while the rest of the run still buys a fifth of the improvement. So the
    gain after the near-best step is measured (gain_after: the segment line at that step
    minus the last segment's line at the end, with its HAC standard error from the
    segments' slope SEs) and a curve is not judged converged early when that gain
    exceeds max_after_share (2%, CONVERGED's max_tail_share) of its total improvement by
    min_after_z (2) standard errors. Seeds 1-4, 9-12 x16: converged_early labels reach
    at most +0.7 SE (gain <= 2.5% of the improvement), healthy reward models with rate x
    total < 6 (labelled not early) +2.6 to +5.8 SE. A curve with fewer than
    min_points_after points after its near-best step does not carry the claim.
    Known false alarms: a long power law (a constant-LR pretraining run) gains little
    as a share of an improvement dominated by its first steps (0.5-2%, yet 10-40 SEs):
    STILL_IMPROVING supersedes this finding when its tail is significant (see
    engine/rules/__init__.py PRECEDENCE). A schedule whose LR decay is still to come
    would have bought more later (the power-law check helps only when the fit is
    plausible); a curve that hides a slow late phase (grokking) behind a flat stretch.
    """
    out = []
    for obj, ms in group_by_objective(ctx, curves(ctx, min_points=th.min_points)).items():
        states = []
        for m in ms:
            s = converged_state(ctx, m, th)
            if not s or s["step_near_best"] is None or not s["span"] or s["span"] <= 0:
                continue
            reached = (s["step_near_best"] - s["step_first"]) / s["span"]
            if reached > th.max_reached_rel:
                continue
            ga = gain_after(ctx, m, s["step_near_best"])
            if ga["points_after"] < th.min_points_after:
                continue  # 2-3 points after the near-best step cannot show a flat rest
            if bought_more(ga, th):
                continue  # the rest of the run bought a material, significant share
            s.update(gain_after=ga["gain"], gain_after_se=ga["gain_se"], gain_after_share=ga["gain_share"],
                     points_after=ga["points_after"])
            s["reached_rel"] = reached
            s["saved_rel"] = (s["final_step"] - s["step_near_best"]) / s["span"]
            states.append(s)
        if not states:
            continue
        # another curve of the objective (the held-out twin of a train loss, or vice versa)
        # still improving by more than its noise contradicts "the rest bought nothing"
        named = {s["metric"] for s in states}
        if any(_still_moving(ctx, m2, th) for m2 in ms if m2 not in named):
            continue
        # the earliest curve of the objective to get there (a smoothed train curve lags
        # its sparse eval twin or vice versa; either shows when the compute stopped paying)
        lead = min(states, key=lambda s: s["step_near_best"])
        conf = logistic(th.conf_slope * (th.max_reached_rel - lead["reached_rel"]) / th.max_reached_rel + th.conf_bias)
        msg = (f"{lead['metric']} was within noise of its best ({fmt(lead['best_value'])}) by step "
               f"{fmt_step(lead['step_near_best'])}, {pct(lead['reached_rel'])} into the run; the remaining "
               f"{pct(lead['saved_rel'])} of the steps gained {pct(lead['tail_share'])} of the improvement in the "
               "last quarter.")
        out.append(ctx.finding("CONVERGED_EARLY", "info", conf, [s["metric"] for s in states], lead["step_near_best"],
                               lead["final_step"], msg,
                               dict(curves=states, max_reached_rel=th.max_reached_rel),
                               f"Stop near step {fmt_step(lead['step_near_best'])} next time (early stopping with a "
                               f"patience of a few evaluations) and save about {pct(lead['saved_rel'])} of the compute, "
                               "or shorten the schedule."))
    return out
