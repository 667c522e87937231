"""PLATEAU_BROKEN: a flat stretch that ended in a new descent."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import (curves, cuts, line_at, line_value, noise_of, oriented_kind, practically_flat, sign,
                                 span, stall_onset, stretch_line)

_EVENT_KINDS = ("lr_change", "data_refresh", "resume", "phase", "note")


def _knee(g: dict, stall: dict, s: int):
    """The step inside segment ``g`` where its fitted line crosses the stall's pooled line
    from the worse side (it starts worse than the stall's line and ends better), or None
    when the two lines do not cross inside g."""
    if g.get("slope") is None or not math.isfinite(g["slope"]):
        return None
    t0, t1 = g["step_start"], g["step_end"]
    d0, d1 = (s * (line_at(g, t) - line_value(stall, t)[0]) for t in (t0, t1))
    if not (d0 > 0 > d1):
        return None
    return int(round(t0 + (t1 - t0) * d0 / (d0 - d1)))


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
    The stall is judged as one stretch: from the last segment before the break, it walks
    back over segments that are practically flat or do not improve (AR wander cut into
    small "ascents"), and over wander dips: a descent whose line ends more than
    onset_within_noise noise levels below the pooled line of the stall after it (the stall
    takes the dip back) while the stretch from it stays flat as a whole (AR(0.72-0.87)
    stalls hold dips of 6.8-12 noise levels: seeds 19 v00, 20 v04, 24 v07; a descent that
    ends at the stall's level is its approach, not a dip: seeds 9 v02, 21 v08, where a
    flat-stretch test alone let a 6-8 noise-level approach into a long stall), never across
    a level shift of shift_min_z HAC SEs (smaller jumps are wander), then over a split-off
    slow descent starting within onset_within_noise noise levels of the level
    (stall_onset). The longest such stretch whose pooled line (the OLS
    line of the union, pooled from the segments' fits; HAC SE from their long-run
    variances) moves at most flat_within_noise noise levels, give or take flat_z of its
    HAC SEs, is the stall: under AR(0.8) noise a flat stall's line moves by a few noise
    levels and its pieces are each "significant", so neither a per-segment test nor the
    plain noise band finds it.
    The break is a descent (b improves and moves more than the noise band) whose slope is
    steeper than the stall's pooled slope by min_break_z combined Newey-West SEs
    (strongly autocorrelated noise wanders above its trend for a while and comes back:
    a "stall" and a "break" its HAC errors cannot tell apart; the pooled slope, not the
    last piece's, which a wander rise makes look like a sharp turn), or an improving level
    shift of shift_min_z HAC SEs into it, or a held transition: a descent shorter than the
    stall, steeper than it by held_break_z SEs, after which the fall held (below). A real
    break is an exponential-like fall: one line through it misfits, and the misfit inflates
    its HAC SE (seed 10: breaks of 12-14 noise levels at 5.7-7 slope SEs), while the level
    the curve holds after it is well measured.
    Where the stall starts and ends, the two lines' knees: the descent before it, when its
    line starts above the stall's line and ends below it (the segmentation merged the
    stall's first part into the descent; a line through a convex descent-then-hold ends
    below the curve), enters the stall where the two lines cross (seed 17 v04: the segment
    boundary 1.12 tolerances late, the knee 0.11; seed 11 v14 1.19 -> 0.66); the descent b,
    when its line starts above the stall's line (a last wander rise of the stall merged
    into it), leaves the stall where they cross (seed 19 v02: the boundary 1.05 tolerances
    early, the knee 0.41). Start errors over the 256 labels of seeds 1-4, 9-12, 17-24: mean
    |e| 0.20 -> 0.13 tolerances (7 beyond half a tolerance instead of 20), end errors
    0.085 -> 0.065 (none beyond half a tolerance, 4 before).
    The fall runs over b and the improving segments after it that are each steeper than
    the stall by min_break_z SEs (a break cut in pieces, often at a jump down); the drop is
    from the stall line's end to the fall's end, or on to the next segment's start when
    the curve stands lower there (a jump at a boundary included), and it must hold: the
    next segment starts min_drop_noise noise levels and hold_min_z HAC SEs (the two lines'
    values there, Newey-West; REGIME_SHIFT's 14-SE bar for a level change that AR wander
    does not make) below the stall's end; when the fall reaches the last segment, its own
    end must stand that far below. When the stall ends in a rise (a worsens), the curve
    must also stand that far below a's start: a fall that only takes the rise back is a
    bump coming down (a slow loss spike, seed 20 v11: 0.6 noise levels below where the
    rise began; AR(0.95) wander, healthy_noisy_pretrain seed 22 v06: 2.3), not a break.
    Wander drops and comes back: the noisy descent before an SFT epoch step holds 7.8-9.3 SEs (seed 2), a wander bump at a run's end 8.2 (seed
    10 healthy_step_lr v06), true breaks >= 21.
    At a logged phase event (an epoch boundary) a step down is the staircase of
    multi-epoch training: neither a break nor part of the drop, and taken out before
    the hold is judged.
    Known false alarms: the train loss of the generator's overfitting classifier runs
    (seeds 23 v14, 24 v14) approaches its floor, holds, and at the val-loss best starts
    falling again by 1% an epoch (train x exp(-0.01 (epoch - best))): a real slope break
    in the data that the label does not tolerate. The piecewise-linear fit of a smoothly
    curving loss can call a short stretch flat (plateaus shorter than min_len_rel are
    ignored); a stall segment that starts well before the true stall because the
    segmentation merged the last slow part of the descent into it (seed 4 v14, seeds 1-2
    v17/v20/v23: one segment from 2.6-3.1 noise sd above the held level; long slow runs,
    seed 17 v05/v06/v10: 0.85-1.03 tolerances early; the start is then early by about the
    tolerance or more). The knees move a start inside the segment before the stall, never
    inside the stall's own first segment, whose line carries no finer information: that
    needs a boundary refinement in the analysis.
    """
    out = []
    for m in curves(ctx, splits=("train", "none"), min_points=th.min_points):
        segs = ctx.segments_of(m)
        total = span(ctx, m)
        noise = noise_of(ctx, m)
        if len(segs) < 2 or not total or not math.isfinite(noise):
            continue
        s = sign(ctx, m)
        shifts = {x["step"]: x for x in (ctx.feature(m)["extra"].get("shifts") or [])}
        # level shifts that stand shift_min_z HAC SEs cut a stall; smaller ones are AR wander
        cut_steps = {st for st, x in shifts.items() if x.get("delta_z") is None or abs(x["delta_z"]) >= th.shift_min_z}

        def flat(g):
            return practically_flat(ctx, m, g, th.flat_within_noise)

        def in_stall(g):  # flat unless shown (at flat_z HAC SEs) to move more than the band, or not improving
            return (practically_flat(ctx, m, g, th.flat_within_noise, th.flat_z)
                    or oriented_kind(ctx, m, g["kind"]) != "improving")

        def wander_dip(g):  # (index) a descent the stall after it takes back: its line ends
            # onset_within_noise noise levels below the stretch after it, and the stretch from
            # it to a stays flat as a whole
            rest = stretch_line(ctx, m, segs[g + 1:k + 1])
            return (rest is not None
                    and s * (line_value(rest, segs[g]["step_end"])[0] - line_at(segs[g], segs[g]["step_end"]))
                    > th.onset_within_noise * noise
                    and practically_flat(ctx, m, segs[g:k + 1], th.flat_within_noise, th.flat_z))

        for k, (a, b) in enumerate(zip(segs[:-1], segs[1:])):
            if not in_stall(a):
                continue
            # the break: a descent steeper than the stall by min_break_z combined HAC SEs, or
            # an improving level shift of shift_min_z HAC SEs into a segment that does not worsen
            # (the loss resumed improving: b is a descent that moves more than the noise band)
            if flat(b) or oriented_kind(ctx, m, b["kind"]) != "improving":
                continue
            jump = shifts.get(b["step_start"])
            # (a step down at a logged phase event is the staircase of multi-epoch training:
            # neither a break nor part of the drop)
            staircase = ctx.nearest_event(b["step_start"], th.explain_rel * total, ("phase",)) is not None
            shift_break = (jump is not None and jump.get("delta_z") is not None and s * jump["delta"] < 0
                           and abs(jump["delta_z"]) >= th.shift_min_z and not staircase)
            j = k  # the candidate stall: flat or non-improving segments before b, no cut crossed,
            # and wander dips inside it (see wander_dip)
            while j > 0 and not cuts(segs, j, cut_steps) and (in_stall(segs[j - 1]) or wander_dip(j - 1)):
                j -= 1
            j = stall_onset(ctx, m, segs, j, th.onset_within_noise, cut_steps)
            # the longest stretch ending with a that is flat as a whole (its pooled line moves
            # within flat_within_noise noise levels, up to flat_z of its HAC SEs)
            i = next((i for i in range(j, k + 1)
                      if practically_flat(ctx, m, segs[i:k + 1], th.flat_within_noise, th.flat_z)), None)
            if i is None:
                continue
            stall = stretch_line(ctx, m, segs[i:k + 1])
            stall_start = segs[i]["step_start"]
            # a descent whose line crosses the stall's line inside it, ending below it (the
            # segmentation merged the first part of the stall into it, and its line, a compromise
            # of the descent and the hold, overshoots): the stall starts at the two lines' knee
            if stall is not None and i > 0 and not cuts(segs, i, cut_steps) \
                    and oriented_kind(ctx, m, segs[i - 1]["kind"]) == "improving":
                stall_start = _knee(segs[i - 1], stall, s) or stall_start
            share = (a["step_end"] - stall_start) / total
            if share < th.min_len_rel:
                continue
            # the fall: the descent b and the improving segments after it that are each steeper
            # than the stall by min_break_z combined HAC SEs (a break that the segmentation cut
            # in pieces, often at a jump down)
            e = k + 1
            while e + 1 < len(segs) and oriented_kind(ctx, m, segs[e + 1]["kind"]) == "improving":
                g = segs[e + 1]
                if not (math.isfinite(stall["se"]) and g.get("slope_se") and g["slope"] is not None
                        and s * (stall["slope"] - g["slope"]) >= th.min_break_z * math.hypot(stall["se"], g["slope_se"])):
                    break
                e += 1
            fall = segs[e]
            # from the stall's line at its end to the fall's line at its end (a jump at the
            # boundary included)
            end_b = fall["step_end"]
            b_line, fall_line = stretch_line(ctx, m, [b]), stretch_line(ctx, m, [fall])
            if b_line is None or fall_line is None:
                continue
            b_end, b_end_se = line_value(fall_line, end_b)
            st_end, st_end_se = (line_value(stall, a["step_end"]) if not staircase
                                 else line_value(b_line, b["step_start"]))
            # where the curve stands after the fall: the next segment's start (a staircase
            # step at it taken out), or the fall's end when it reaches the last segment
            after, after_se = b_end, b_end_se
            if e + 1 < len(segs):
                nxt = segs[e + 1]
                nxt_line = stretch_line(ctx, m, [nxt])
                if nxt_line is None:
                    continue
                after, after_se = line_value(nxt_line, nxt["step_start"])
                if ctx.nearest_event(nxt["step_start"], th.explain_rel * total, ("phase",)) is not None:
                    after -= line_at(nxt, nxt["step_start"]) - b_end
            # the drop: to the descent's end, or on to the next segment's start when the fall
            # goes on there (a jump down after the descent is part of the break)
            drop = max(s * (st_end - b_end), s * (st_end - after))
            level = stall["level"]
            drop_noise = drop / noise
            drop_rel = drop / abs(level) if level else math.nan
            if not (drop_noise >= th.min_drop_noise and drop_rel >= th.min_drop_rel):
                continue
            # the fall holds: the curve after the descent stands below the stall's end (the
            # descent's start at a staircase step) by min_drop_noise noise levels and by
            # hold_min_z HAC SEs of the two lines' values there (AR wander drops and comes
            # back); when the descent is the last segment, its own end must stand that far below
            # a stall that ends in a rise (a: a worsening segment): a fall that only takes the
            # rise back is a bump (a slow spike, AR wander) coming down, not a break: the curve
            # must also stand that far below a's start (its line's value there, HAC SE)
            ref, ref_se = st_end, st_end_se
            if oriented_kind(ctx, m, a["kind"]) == "worsening" and not staircase:
                a0, a0_se = line_value(stretch_line(ctx, m, [a]), a["step_start"])
                if s * (a0 - ref) < 0:
                    ref, ref_se = a0, a0_se
            if s * (ref - after) < th.min_drop_noise * noise:
                continue
            hold_z = s * (ref - after) / math.hypot(ref_se, after_se)
            if not hold_z >= th.hold_min_z:  # (NaN: not shown)
                continue
            # a slope break is a change of slope that the autocorrelated noise cannot make:
            # the descent is steeper than the stall (its pooled line: a last wander piece of
            # the stall that happens to rise is no evidence) by min_break_z combined HAC SEs;
            # or, the fall held, a transition: the descent is shorter than the stall and
            # steeper than it by held_break_z SEs (a break is an exponential-like fall whose
            # misfit to one line inflates its HAC SE: 5.7-7 SEs on seed 10)
            break_z = None
            if math.isfinite(stall["se"]) and b.get("slope_se") and b["slope"] is not None:
                break_z = s * (stall["slope"] - b["slope"]) / math.hypot(stall["se"], b["slope_se"])
            transition = (break_z is not None and break_z >= th.held_break_z
                          and end_b - b["step_start"] < a["step_end"] - stall_start)
            if not shift_break and not transition and (break_z is None or break_z < th.min_break_z):
                continue
            # a descent whose line starts above the stall's line (the segmentation merged a last
            # wander rise of the stall into it): the stall ends where the descent's line crosses
            # the stall's line (the two lines' knee)
            stall_end = a["step_end"]
            if not shift_break and not staircase:
                stall_end = _knee(b, stall, s) or stall_end
            ev_near = ctx.nearest_event(a["step_end"], th.explain_rel * total, _EVENT_KINDS)
            conf = logistic(min((drop_noise - th.min_drop_noise) / th.min_drop_noise,
                                (share - th.min_len_rel) / th.min_len_rel) * th.conf_slope + th.conf_bias)
            why = (f" after a {ev_near['kind']} at step {fmt_step(ev_near['step'])} ({ev_near['detail']})"
                   if ev_near else "")
            msg = (f"{m} was flat at about {fmt(level)} from step {fmt_step(stall_start)} to step "
                   f"{fmt_step(stall_end)} ({pct(share)} of the run), then fell by {fmt(drop)} "
                   f"({fmt(drop_noise)} noise levels){why}.")
            ev = dict(metric=m, plateau_start=stall_start, plateau_segment_start=a["step_start"], plateau_end=stall_end, share_of_run=share,
                      level=level, drop=drop, drop_noise=drop_noise, drop_rel=drop_rel,
                      stall_change_noise=stall["change"] / noise, stall_segments=k + 1 - i,
                      broken_by="level_shift" if shift_break else "descent" if break_z >= th.min_break_z else "held_descent",
                      shift_z=jump.get("delta_z") if shift_break else None,
                      explained_by=ev_near["kind"] if ev_near else None,
                      event=ev_near, min_len_rel=th.min_len_rel, min_drop_noise=th.min_drop_noise, break_z=break_z,
                      hold_z=hold_z, fall_segments=e - k, stall_first_segment_start=segs[i]["step_start"], b_ratio=(end_b - b['step_start']) / max(a['step_end'] - stall_start, 1))
            advice = ("The LR change broke the plateau: decay earlier next time." if ev_near and ev_near["kind"] == "lr_change"
                      else "Nothing logged explains the break: keep checkpoints around it; if stalls recur, try a "
                           "schedule with an earlier decay or a higher peak learning rate.")
            out.append(ctx.finding("PLATEAU_BROKEN", "info", conf, [m], stall_start, stall_end, msg, ev,
                                   advice))
    return out
