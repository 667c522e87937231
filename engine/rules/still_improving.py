"""STILL_IMPROVING: the loss was still falling when the run stopped."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import curves, fitted_gain, tail_progress


def _implied_tail_change(ctx: RunContext, m: str, gain_rel: float) -> float:
    """What the last quarter should have gained under the fitted power law
    L = L_inf + a t^-alpha that promises ``gain_rel`` (of the final value) for twice the
    steps: gain x ((3/4)^-alpha - 1) / (1 - 2^-alpha). NaN without a plausible fit."""
    alpha = ctx.x(m, "fit_alpha")
    final = ctx.x(m, "final_value")
    if not (math.isfinite(gain_rel) and math.isfinite(alpha) and alpha > 0 and math.isfinite(final)):
        return math.nan
    return gain_rel * abs(final) * (0.75 ** -alpha - 1.0) / (1.0 - 2.0 ** -alpha)


@rule(code="STILL_IMPROVING", summary="The loss was still improving significantly when the run ended: more steps would help.")
def still_improving(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: the tail slope of a training loss (last quarter, HAC standard error) as a
    z-score in the improving direction, the tail's improvement as a share of the total
    and in noise units, the power law's expected gain from doubling the steps (when the
    fit is plausible), and whether the held-out curve of the same objective is rising.
    Why: a tail slope many standard errors below zero that still buys a visible share of
    the improvement means the run stopped on the way down; the power law says how much
    the next doubling would buy.
    Advice: continue from the last checkpoint (with the LR schedule extended, not
    restarted) or plan a longer run: the expected gain is in the evidence.
    A fit's promise counts only when the last quarter gained at least
    min_fit_consistency of what that same power law implies for it (a converged curve
    with a fit extrapolating far below it is not improving).
    Known false alarms: a cosine schedule's final decay steepens the tail without more
    to gain at a constant LR; a training loss that improves by memorising while the
    validation loss rises (then this rule stays quiet and OVERFITTING speaks).
    """
    out = []
    held_rising = {}
    for p in ctx.pairs():
        r = ctx.x(p.val, "since_best_noise")
        rr = ctx.x(p.val, "since_best_rel")
        held_rising[p.train] = held_rising.get(p.train, False) or (r >= th.val_rise_noise and rr >= th.val_rise_rel)
    for m in curves(ctx, splits=("train", "none"), min_points=th.min_points):
        f = ctx.feature(m)
        if f["extra"].get("nonfinite_tail") or held_rising.get(m):
            continue
        tp = tail_progress(ctx, m)
        gain = fitted_gain(ctx, m)
        if not (tp["z"] >= th.min_slope_z and tp["change_noise"] >= th.min_tail_noise):
            continue
        if not (gain >= th.min_gain_rel if math.isfinite(gain) else tp["share"] >= th.min_tail_share):
            continue
        implied = _implied_tail_change(ctx, m, gain)
        if math.isfinite(implied) and implied > 0 and tp["change"] < th.min_fit_consistency * implied:
            continue  # the fit promises far more than the tail shows: an extrapolation, not progress
        if ctx.x(m, "since_best_noise") > th.max_since_best_noise:
            continue
        start = f["extra"].get("tail_start_step", f.get("step_first"))
        margin = (gain - th.min_gain_rel) / th.min_gain_rel if math.isfinite(gain) else \
            (tp["share"] - th.min_tail_share) / th.min_tail_share
        conf = logistic(th.conf_slope * min((tp["z"] - th.min_slope_z) / th.min_slope_z, margin) + th.conf_bias)
        msg = (f"{m} was still improving at the end: its last quarter (from step {fmt_step(start)}) gained "
               f"{pct(tp['share'])} of its total improvement (slope {fmt(tp['z'])} standard errors)"
               + (f", and the fitted power law gives {pct(gain)} more for twice the steps" if math.isfinite(gain) else "")
               + ".")
        ev = dict(metric=m, tail_start_step=start, tail_slope_z=tp["z"], tail_share=tp["share"],
                  tail_change_noise=tp["change_noise"], expected_gain_rel=gain, final_value=ctx.x(m, "final_value"),
                  fit_l_inf=ctx.x(m, "fit_l_inf"), min_slope_z=th.min_slope_z, min_tail_share=th.min_tail_share)
        out.append(ctx.finding("STILL_IMPROVING", "info", conf, [m], start, f.get("final_step"), msg, ev,
                               "Continue from the last checkpoint with the schedule extended, or plan a longer run."))
    return out
