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


def _lr_decayed(ctx: RunContext, m: str, th: Thresholds) -> bool:
    """True when a logged learning rate (of the same objective first) ended below
    lr_decayed_rel of its peak: a decaying schedule buys the tail's slope, and a power law
    fitted through it extrapolates the schedule, not more steps."""
    lrs = ctx.select(kind="lr")
    same = [x for x in lrs if ctx.role(x)["objective"] == ctx.role(m)["objective"]]
    for x in same or lrs:
        top, final = ctx.x(x, "max_value"), ctx.x(x, "final_value")
        if math.isfinite(top) and top > 0 and math.isfinite(final):
            return final < th.lr_decayed_rel * top
    return False


def _gain_se_lrv(ctx: RunContext, m: str) -> float:
    """The standard error of the fit's expected gain (relative to the final value),
    inflated for autocorrelated residuals: the fit's SE assumes independent residuals;
    with lag-1 autocorrelation rho (of the residuals around the smoother, clipped to
    [0, 0.95]) the long-run variance is (1 + rho) / (1 - rho) times larger. NaN when
    unknown."""
    se = ctx.x(m, "expected_gain_rel_se")
    if not (math.isfinite(se) and se >= 0):
        return math.nan
    rho = ctx.x(m, "resid_acf1")
    rho = min(max(rho, 0.0), 0.95) if math.isfinite(rho) else 0.0
    return se * math.sqrt((1.0 + rho) / (1.0 - rho))


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
    A smaller promise (min_gain_rel_precise, 0.5%, up to min_gain_rel) counts when the fit
    pins it down: at least min_gain_z (10) of its standard errors, the fit's SE inflated
    by sqrt((1 + rho) / (1 - rho)) for the residuals' lag-1 autocorrelation rho (the fit
    assumes independent residuals), and no logged LR of the objective decayed below
    lr_decayed_rel of its peak (a decay buys the tail's slope). Why: a long constant-LR
    run far down its power law promises under 1.5% for doubling yet is plainly still
    improving (seeds 1-4: tail 9.5 HAC SEs, fit SE 1/146 of the promise, the tail
    gaining what the law implies); the tail's significance alone is not enough: the
    tails of converged classifier runs are as significant (HAC z 3-12, 1-4 noise levels,
    0.2-1% of the total improvement: the same range as these runs), and only the fit
    (none, or one promising far more than the tail shows) tells them apart; underfitting
    curves' flat fits (alpha 0.1-0.3) promise 1-2% known only to within 20-90%.
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
        if math.isfinite(gain):
            gain_se = _gain_se_lrv(ctx, m)
            established = (gain >= th.min_gain_rel_precise and math.isfinite(gain_se)
                           and gain >= th.min_gain_z * gain_se and not _lr_decayed(ctx, m, th))
            if not (gain >= th.min_gain_rel or established):
                continue
        elif not tp["share"] >= th.min_tail_share:
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
