"""CONVERGED_EARLY: the loss reached its floor early; the rest of the run bought little."""

from __future__ import annotations

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import curves, group_by_objective, span, tail_progress


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
    Known false alarms: a schedule whose LR decay is still to come would have bought
    more later (the power-law check helps only when the fit is plausible); a curve that
    hides a slow late phase (grokking) behind a flat stretch.
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
