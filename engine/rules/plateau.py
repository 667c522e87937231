"""PLATEAU: a long stretch where the loss stopped improving."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import (curves, cuts, noise_of, oriented_kind, practically_flat, span, stall_onset,
                                 total_improvement)

_CUT_EVENTS = ("lr_change", "data_refresh", "resume")


def _lr_state(ctx: RunContext, m: str, th: Thresholds) -> str:
    """'decayed', 'constant' or 'unknown' from the lr curves (same objective first)."""
    lrs = ctx.select(kind="lr")
    same = [x for x in lrs if ctx.role(x)["objective"] == ctx.role(m)["objective"]]
    for x in same or lrs:
        top, final = ctx.x(x, "max_value"), ctx.x(x, "final_value")
        if math.isfinite(top) and top > 0 and math.isfinite(final):
            return "decayed" if final < th.lr_decayed_rel * top else "constant"
    return "unknown"


def _wander(ctx: RunContext, m: str, g: dict, after: dict, within_noise: float) -> bool:
    """A worsening segment ``g`` whose level is within ``within_noise`` noise levels of the
    level of the next segment ``after`` (already part of the stall): on a flat stretch AR
    noise wanders, and the segmentation cuts the wander into significant "ascents" whose
    fitted lines move more than the noise while their levels stay on the stall's."""
    if within_noise <= 0 or oriented_kind(ctx, m, g["kind"]) != "worsening":
        return False
    noise = noise_of(ctx, m)
    return (math.isfinite(noise) and g.get("level") is not None and after.get("level") is not None
            and abs(g["level"] - after["level"]) <= within_noise * noise)


def _sibling_learned(ctx: RunContext, m: str, th: Thresholds) -> bool:
    """Another loss or accuracy curve of ``m``'s objective (its eval twin, an accuracy)
    improved by at least sibling_learned_noise of its own noise levels, on at least
    sibling_min_points finite points: the model is learning, whatever ``m`` shows."""
    obj = ctx.role(m)["objective"]
    for m2 in curves(ctx, kinds=("loss", "perplexity", "accuracy"), min_points=th.sibling_min_points):
        if m2 == m or ctx.role(m2)["objective"] != obj:
            continue
        gain, noise = total_improvement(ctx, m2), noise_of(ctx, m2)
        if math.isfinite(gain) and math.isfinite(noise) and noise > 0 and gain >= th.sibling_learned_noise * noise:
            return True
    return False


@rule(code="PLATEAU", summary="The loss has been flat for a long stretch up to the end of the run (not learning).")
def plateau(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: the trailing run of plateau segments of a training loss (a plateau is a
    segment whose projected change, with its HAC 95% interval, lies inside the noise
    band: statistically and practically flat), its start, length as a share of the run,
    level, slope and standard error; whether it starts at the first step (the model
    never learned). The onset moves back over a descent segment whose fitted line
    starts within onset_within_noise noise levels of the plateau level (the
    segmentation often splits the first, noise-dominated part of a stall off as a
    statistically significant but practically empty slope). A trailing segment whose
    fitted line moves by at most flat_within_noise noise levels counts as flat too, and
    so does a worsening segment before it whose level is within wander_within_noise noise
    levels of the next one's (AR noise wandering on the stall, cut into "ascents"). The
    walk stops at a level shift of at least shift_min_spread raw spreads, and at a logged
    lr_change, data_refresh or resume event: a stall that would reach back across one
    starts at the event (the curve before it ran under another LR or data; a warm restart
    or a new mixture bumps the loss, and its relaxation can look flat next to the
    stretch before the event); a spike of the curve within explain_rel of that event (its
    bump) moves the start on to the spike's recovery.
    Why: a loss flat within its noise for a large share of the run means the optimizer
    makes no progress: learning rate too low or decayed to nothing, a dead or saturated
    network, labels the model cannot use, or a bug feeding the same batch.
    Advice: if it follows a fast descent, try a learning-rate increase or a schedule
    (cosine, step decay) and compare with the power-law expectation; if it starts at
    step 0, check the labels, the loss wiring, the learning rate (too small or zero),
    and frozen parameters.
    Not "never learned" when another loss or accuracy curve of the objective (the eval
    twin) improved by sibling_learned_noise of its noise levels: a noisy train loss can
    hide a small descent that the held-out curves show plainly.
    Known false alarms: a run that converged smoothly to its floor (CONVERGED covers that:
    plateaus shorter than min_len_rel of the run are left to it, and so is a flat end
    after a descent when no lr curve tells the schedule: an epoch classifier that
    converged looks exactly like a stall); a deliberately long constant-LR stage of a
    WSD schedule before its decay.
    """
    out = []
    for m in curves(ctx, splits=("train", "none"), min_points=th.min_points):
        segs = ctx.segments_of(m)
        if not segs or not practically_flat(ctx, m, segs[-1], th.flat_within_noise):
            continue
        # level shifts cut the stall; those under shift_min_spread raw spreads (below what
        # REGIME_SHIFT reports: AR wander on the stall) do not
        shift_steps = {s["step"] for s in (ctx.feature(m)["extra"].get("shifts") or [])
                       if s.get("delta_spread") is None or abs(s["delta_spread"]) >= th.shift_min_spread}
        # the stall starts at the first of the trailing flat segments, or earlier at a
        # split-off slow descent that already starts within onset_within_noise of its level
        # a logged lr_change / data_refresh / resume cuts the stall like a level shift: the
        # stall starts after the event (the curve before it ran under other conditions)
        ev_steps = {e["step"] for e in ctx.events_in(segs[0]["step_start"], segs[-1]["step_end"], _CUT_EVENTS)}
        stops = shift_steps | ev_steps
        j = len(segs) - 1
        while j > 0 and not cuts(segs, j, stops) and (
                practically_flat(ctx, m, segs[j - 1], th.flat_within_noise)
                or _wander(ctx, m, segs[j - 1], segs[j], th.wander_within_noise)):
            j -= 1
        i = stall_onset(ctx, m, segs, j, th.onset_within_noise, stops)
        start, end = segs[i]["step_start"], segs[-1]["step_end"]
        cut_at = [e for e in ev_steps if start < e <= end]
        if cut_at:
            # ...and after the transient the event caused: a spike of m within explain_rel of
            # it (a warm restart's or a new mixture's bump) ends at its recovery, and the
            # recovering curve is moving, not stalled (analysis bridges the bump by a line)
            e = max(cut_at)
            near = th.explain_rel * (segs[-1]["step_end"] - segs[0]["step_start"])
            rec = [sp["step"] + sp["recovery_steps"] for sp in ctx.spikes_of(m)
                   if abs(sp["step"] - e) <= near and sp.get("recovery_steps") is not None]
            start = min(max([e] + rec), end)
        total = span(ctx, m)
        if not total or total <= 0:
            continue
        share = (end - start) / total
        from_start = i == 0 and start == segs[0]["step_start"]
        if from_start and ctx.x(m, "improvement_rel") >= th.max_improvement_from_start:
            continue  # "flat from the start" of a curve that improved: its noise hides a slow descent
        if from_start and any(g["kind"] != "plateau" for g in segs[i:]):
            continue  # "never learned" needs statistically flat segments, not just practically flat ones
        if from_start and _sibling_learned(ctx, m, th):
            continue  # the held-out curves of the objective show the model learning: the train noise hides it
        lr = _lr_state(ctx, m, th)
        if lr == "decayed" and not from_start:
            continue  # a flat end under a decayed LR is annealing / convergence, not a stall
        if lr == "unknown" and not from_start:
            continue  # without the schedule a flat end after a descent is convergence as far as the data tell
        need = th.min_len_rel
        if share < need and not (from_start and share >= th.min_len_rel_from_start):
            continue
        g = segs[-1]
        conf = logistic((share - th.min_len_rel) / th.conf_scale + th.conf_bias)
        level = g["level"]
        if from_start:
            msg = (f"{m} has been flat at about {fmt(level)} from the first step to step {fmt_step(end)}: "
                   "the model is not learning.")
            advice = ("Check the learning rate (too small, zero, or a schedule bug), that parameters are not "
                      "frozen, that the loss uses the model output and the labels are right.")
        else:
            msg = (f"{m} has been flat at about {fmt(level)} from step {fmt_step(start)} to step {fmt_step(end)} "
                   f"({pct(share)} of the run) after improving before.")
            advice = ("Progress stalled: try a higher learning rate or a decay schedule, check data for repetition, "
                      "or stop here and save the compute.")
        ev = dict(metric=m, start_step=start, end_step=end, share_of_run=share, level=level, slope=g["slope"],
                  slope_se=g["slope_se"], from_start=from_start, segments=len(segs) - i,
                  min_len_rel=need, lr_schedule=lr)
        out.append(ctx.finding("PLATEAU", "warning", conf, [m], start, end, msg, ev, advice))
    return out
