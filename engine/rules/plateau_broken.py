"""PLATEAU_BROKEN: a flat stretch that ended in a new descent."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import curves, noise_of, oriented_kind, practically_flat, span, stall_onset

_EVENT_KINDS = ("lr_change", "data_refresh", "resume", "phase", "note")


@rule(code="PLATEAU_BROKEN", summary="A plateau of the loss ended and the loss resumed improving.")
def plateau_broken(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: a plateau segment of a training loss (length as a share of the run, level)
    followed by an improving segment; the improvement of that segment in noise units
    and relative to the plateau level; the event (lr_change, data_refresh, resume,
    phase) nearest to the end of the plateau, when one lies within explain_rel of the run.
    Why: a loss that sits flat and then descends again was held back: by a learning rate
    (a drop breaks it), by a hard phase of learning (grokking-like transitions, induction
    heads), or by data. Knowing when and what broke it tells whether the flat stretch was
    wasted compute.
    Advice: if an LR change broke it, the earlier LR was too high (or the decay came
    late): schedule the decay earlier; if nothing explains it, the stall may recur: keep
    checkpoints around such transitions.
    A segment counts as flat when it is a plateau or its fitted line moves by at most
    flat_within_noise noise levels over its length (AR noise makes a flat stretch's
    slope "significant", up or down, while it moves less than the noise); consecutive
    flat segments are one stall.
    The stall's start moves back over a descent segment whose fitted line starts within
    onset_within_noise noise levels of the plateau level (a split-off, practically
    empty slope at the start of the stall).
    The slope of the descent must differ from the stall's by min_break_z combined
    Newey-West standard errors (strongly autocorrelated noise wanders above its trend
    for a while and comes back: a "stall" and a "break" whose slopes its HAC errors
    cannot tell apart).
    Known false alarms: the piecewise-linear fit of a smoothly curving loss can call a
    short stretch flat (plateaus shorter than min_len_rel are ignored).
    """
    out = []
    for m in curves(ctx, splits=("train", "none"), min_points=th.min_points):
        segs = ctx.segments_of(m)
        total = span(ctx, m)
        noise = noise_of(ctx, m)
        if len(segs) < 2 or not total or not math.isfinite(noise):
            continue
        shift_steps = {s["step"] for s in (ctx.feature(m)["extra"].get("shifts") or [])}

        def flat(g):
            return practically_flat(ctx, m, g, th.flat_within_noise)

        for k, (a, b) in enumerate(zip(segs[:-1], segs[1:])):
            if not flat(a) or flat(b) or oriented_kind(ctx, m, b["kind"]) != "improving":
                continue
            j = k  # the stall: the practically flat segments before a, then stall_onset's walk back
            while j > 0 and flat(segs[j - 1]) and segs[j]["step_start"] not in shift_steps:
                j -= 1
            onset = stall_onset(ctx, m, segs, j, th.onset_within_noise, shift_steps)
            stall_start = segs[onset]["step_start"]
            share = (a["step_end"] - stall_start) / total
            if share < th.min_len_rel:
                continue
            drop = abs(b["slope"] * (b["step_end"] - b["step_start"])) if b["slope"] is not None else math.nan
            level = a["level"]
            drop_noise = drop / noise
            drop_rel = drop / abs(level) if level else math.nan
            if not (drop_noise >= th.min_drop_noise and drop_rel >= th.min_drop_rel):
                continue
            # the break is a change of slope that the autocorrelated noise cannot make:
            # the two fitted slopes differ by min_break_z combined HAC standard errors
            if a.get("slope_se") and b.get("slope_se") and a["slope"] is not None and b["slope"] is not None:
                break_z = abs(a["slope"] - b["slope"]) / math.hypot(a["slope_se"], b["slope_se"])
                if break_z < th.min_break_z:
                    continue
            else:
                break_z = None
            ev_near = ctx.nearest_event(a["step_end"], th.explain_rel * total, _EVENT_KINDS)
            conf = logistic(min((drop_noise - th.min_drop_noise) / th.min_drop_noise,
                                (share - th.min_len_rel) / th.min_len_rel) * th.conf_slope + th.conf_bias)
            why = (f" after a {ev_near['kind']} at step {fmt_step(ev_near['step'])} ({ev_near['detail']})"
                   if ev_near else "")
            msg = (f"{m} was flat at about {fmt(level)} from step {fmt_step(stall_start)} to step "
                   f"{fmt_step(a['step_end'])} ({pct(share)} of the run), then fell by {fmt(drop)} "
                   f"({fmt(drop_noise)} noise levels){why}.")
            ev = dict(metric=m, plateau_start=stall_start, plateau_segment_start=a["step_start"], plateau_end=a["step_end"], share_of_run=share,
                      level=level, drop=drop, drop_noise=drop_noise, drop_rel=drop_rel,
                      explained_by=ev_near["kind"] if ev_near else None,
                      event=ev_near, min_len_rel=th.min_len_rel, min_drop_noise=th.min_drop_noise, break_z=break_z)
            advice = ("The LR change broke the plateau: decay earlier next time." if ev_near and ev_near["kind"] == "lr_change"
                      else "Nothing logged explains the break: keep checkpoints around it; if stalls recur, try a "
                           "schedule with an earlier decay or a higher peak learning rate.")
            out.append(ctx.finding("PLATEAU_BROKEN", "info", conf, [m], stall_start, a["step_end"], msg, ev,
                                   advice))
    return out
