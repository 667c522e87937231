"""CONVERGED: the loss reached its floor; more steps would not help."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import curves, fitted_gain, floor_start, group_by_objective, sign, span, tail_progress


def converged_state(ctx: RunContext, m: str, th: Thresholds) -> dict | None:
    """The figures of a converged curve, or None when it is not converged (shared with
    CONVERGED_EARLY)."""
    f = ctx.feature(m)
    imp = ctx.x(m, "improvement_rel")
    if not (imp >= th.min_improvement_rel):
        return None
    if ctx.x(m, "since_best_rel") > th.max_since_best_rel or ctx.x(m, "since_best_noise") > th.max_since_best_noise:
        return None
    if f["extra"].get("nonfinite_tail"):
        return None
    tp = tail_progress(ctx, m)
    if not (math.isfinite(tp["share"]) and tp["share"] <= th.max_tail_share):
        return None
    gain = fitted_gain(ctx, m)
    if math.isfinite(gain) and gain > th.max_gain_rel and tp["z"] >= th.improving_z:
        return None  # still significantly improving and the power law promises more
    near = f["extra"].get("step_near_best") or f.get("step_90pct")
    if near is not None:
        for sh in f["extra"].get("shifts") or []:
            worse = sign(ctx, m) * (sh.get("delta") or 0.0) > 0
            dsp = sh.get("delta_spread")
            if sh["step"] > near and worse and (dsp is None or abs(dsp) >= th.reset_shift_spread):
                return None  # knocked off its floor later (restart, data change): the tail is a recovery
    return dict(metric=m, tail_share=tp["share"], tail_change_noise=tp["change_noise"], expected_gain_rel=gain,
                step_near_best=near, best_value=ctx.x(m, "best_value"), best_step=f.get("best_step"),
                final_value=ctx.x(m, "final_value"), final_step=f.get("final_step"),
                step_first=f.get("step_first"), improvement_rel=imp, span=span(ctx, m))


@rule(code="CONVERGED", summary="The loss has reached its floor: more steps would not help.")
def converged(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: per loss the change over the last quarter of the run as a share of the
    total improvement and in noise units, the fitted power law's expected gain from
    doubling the steps (when the fit is plausible), the step where the curve came within
    noise of its best, and the distance of the end from the best.
    Why: a curve whose tail moves less than its noise and less than max_tail_share of
    what it gained, with a power law that promises under max_gain_rel more, has
    converged for this model, data and schedule.
    Advice: stop here (or earlier next time, see the step reached); to go lower, change
    something else: model size, data, learning-rate schedule.
    A curve knocked off its floor after it got there (a worsening level shift of at
    least reset_shift_spread raw spreads: a warm restart, a data refresh) is not
    converged: its tail is a recovery.
    Known false alarms: a cosine schedule near its end flattens any curve (the gain
    would come back with a new schedule); a plateau of a hard phase that would have
    broken later.
    """
    out = []
    early = th.early_rel
    for obj, ms in group_by_objective(ctx, curves(ctx, min_points=th.min_points)).items():
        states = [s for s in (converged_state(ctx, m, th) for m in ms) if s]
        # converged early is CONVERGED_EARLY's finding, not this one
        states = [s for s in states if not (s["step_near_best"] is not None and s["span"] > 0 and
                                            (s["step_near_best"] - s["step_first"]) / s["span"] <= early)]
        if not states:
            continue
        lead = states[0]
        # where the floor starts: within floor_rel of the best (the near-best step is within
        # noise of it, wider than floor_rel on a noisy curve and so placed early)
        start = floor_start(ctx, lead["metric"], th.floor_rel) if th.floor_rel > 0 else lead["step_near_best"]
        conf = logistic(th.conf_slope * (th.max_tail_share - lead["tail_share"]) / th.max_tail_share + th.conf_bias)
        gain = lead["expected_gain_rel"]
        msg = (f"{lead['metric']} has converged: it reached {fmt(lead['best_value'])} around step {fmt_step(start)} "
               f"and its last quarter moved {pct(lead['tail_share'])} of its total improvement"
               + (f"; the fitted power law gives {pct(gain)} more for twice the steps" if math.isfinite(gain) else "")
               + ": more steps would not help.")
        out.append(ctx.finding("CONVERGED", "info", conf, [s["metric"] for s in states], start, lead["final_step"],
                               msg, dict(curves=states, max_tail_share=th.max_tail_share, max_gain_rel=th.max_gain_rel),
                               "Stop here; to improve further change the model, the data or the schedule rather "
                               "than the number of steps."))
    return out
