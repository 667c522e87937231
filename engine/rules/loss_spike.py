"""LOSS_SPIKE: sudden short-lived jumps of a training loss."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import CHANGE_EVENTS, curves, finite_points, line_at, span, taken_back


@rule(code="LOSS_SPIKE", summary="The training loss jumped far above its local level, with a recovery class.")
def loss_spike(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: the spikes table of each training loss: step, value, height in local
    noise units (robust z-score against a rolling median of the detrended curve), the
    recovery time and class (fast, slow, never; "unjudged" for a spike too close to the
    end to tell); the total count per class, the rate of fast spikes per logged point
    and whether their heights grow.
    Why: a loss far outside its noise band for a few steps is a bad batch meeting a
    fragile parameter state (PaLM, OPT, BLOOM logbooks); fast recoveries are mostly
    harmless, slow ones cost the steps spent recovering, and a spike that never
    recovers is a shift or the start of a divergence.
    Severity: an isolated spike that recovers fast (within max(10 logged points, 0.5% of
    the span): the analysis' fast class) is info -- data-order spikes of this kind are
    normal in LLM training (the modded-nanogpt records share them at the same steps
    across optimisers). Warning when a spike recovers slowly or never, when fast spikes
    recur at a high rate (more than max_fast_rate of the logged points, at least
    min_recurring of them) or grow (the last grow_count fast spikes each higher than
    the one before, the last grow_ratio x the first). Critical when a spike never
    recovers and the curve ends diverged (since_best_rel >= diverge_rise_rel and
    since_best_noise >= diverge_rise_noise, DIVERGENCE's bar).
    Slow spikes that outlast the detector's baseline window (41 points: a median filter
    keeps such an edge) are found from the segments instead: a worsening level shift of
    min_height noise levels and min_transient_z HAC SEs that the next segment takes back
    by min_taken_back of its size (REGIME_SHIFT leaves those out).
    A slow or unrecovered spike within explain_rel of the run of a logged event (LR
    change, data refresh, resume, phase) is info and cites it: the logged change made the
    jump (a new data mixture, a warm restart); a critical (diverged) one stays critical.
    Advice: for slow or unrecovered spikes, restart ~100 steps before the spike and skip
    the batches around it (PaLM), lower the learning rate or clip tighter; for many
    fast spikes, consider loss/grad-norm based step skipping (OLMo-core, Levanter) and
    check the data loader for corrupt or duplicated shards.
    Known false alarms: heavy-tailed but healthy noise (tiny batches) gives isolated
    fast spikes near min_height (info only); evaluation curves logged rarely are never
    judged. A quantised curve (most consecutive values equal, e.g. a memorised loss
    logged as 0.0001/0.0002) has no noise to measure heights against: there a spike
    must also rise by min_excess_of_range of the curve's total descent, else it is one
    step of the logging resolution, not a spike.
    """
    out = []
    for m in curves(ctx, splits=("train", "none"), min_points=th.min_points):
        f = ctx.feature(m)
        spikes = [s for s in ctx.spikes_of(m) if s["height"] is not None and s["height"] >= th.min_height
                  and _material(ctx, m, s, th)]
        out.extend(_transients(ctx, m, th))
        if not spikes:
            continue
        spacing = ctx.x(m, "median_spacing")
        final_step = f.get("final_step")
        for s in spikes:
            s["cls"] = s["recovery_class"] or "never"
            if s["cls"] == "never" and final_step is not None and math.isfinite(spacing) and spacing > 0 \
                    and (final_step - s["step"]) / spacing < th.min_points_after:
                s["cls"] = "unjudged"  # no points after it to tell a fast recovery from a shift
        fast = [s for s in spikes if s["cls"] == "fast"]
        counts = {c: sum(1 for s in spikes if s["cls"] == c) for c in ("fast", "slow", "never", "unjudged")}
        n = max(finite_points(ctx, m), 1)
        rate = len(fast) / n
        recurring = len(fast) >= th.min_recurring and rate > th.max_fast_rate
        growing = _growing(fast, th)
        fast_sev = "warning" if (recurring or growing) else "info"
        diverged = (ctx.x(m, "since_best_rel") >= th.diverge_rise_rel
                    and ctx.x(m, "since_best_noise") >= th.diverge_rise_noise)
        why_fast = ("recurring at a high rate" if recurring else "") + (" and " if recurring and growing else "") + \
            ("growing" if growing else "")
        summarise_fast = len(fast) > th.max_fast_findings
        total = span(ctx, m)
        for s in spikes:
            cls = s["cls"]
            if summarise_fast and cls == "fast":
                continue
            end = s["step"] + s["recovery_steps"] if s["recovered"] and s["recovery_steps"] is not None \
                else final_step
            conf = logistic((s["height"] - th.min_height) / th.conf_scale + th.conf_bias)
            if s["recovered"]:
                rec = f"recovered in {s['recovery_steps']:,} steps ({cls})"
            elif cls == "unjudged":
                rec = "came at the end of the log, too late to tell whether it recovers"
            else:
                rec = "never came back to its level before"
            sev = {"fast": fast_sev, "slow": "warning", "never": "critical" if diverged else "warning",
                   "unjudged": "info"}[cls]
            # a jump at a logged change (a data refresh, an LR warm restart, a resume) is that
            # change's doing, not a bad batch: info, citing the event
            event = ctx.nearest_event(s["step"], th.explain_rel * total, CHANGE_EVENTS) if total > 0 else None
            if event is not None and sev == "warning":
                sev = "info"
            msg = (f"{m} spiked to {fmt(s['value'])} at step {fmt_step(s['step'])}, {fmt(s['height'])} noise levels "
                   f"above its local level, and {rec}"
                   + (f"; fast spikes are {why_fast} ({len(fast)} in {n:,} points)" if cls == "fast" and why_fast
                      else "")
                   + ("; the loss ends diverged" if sev == "critical" else "")
                   + (f", at a {event['kind']} event ({event['detail']})" if event is not None else "") + ".")
            ev = dict(metric=m, step=s["step"], value=s["value"], height_noise=s["height"],
                      recovery_steps=s["recovery_steps"], recovery_class=cls, counts=counts,
                      fast_rate=rate, recurring=recurring, growing=growing, diverged=diverged,
                      min_height=th.min_height, max_fast_rate=th.max_fast_rate,
                      explained_by=event["kind"] if event is not None else None, event=event)
            if cls in ("fast", "unjudged"):
                advice = ("A fast recovery is usually harmless (a bad batch); if spikes recur or grow, check the "
                          "batches at these steps and consider skipping steps whose loss or grad norm is > 6 sd "
                          "above a rolling mean.")
            elif cls == "slow":
                advice = (f"Restart ~100 steps before step {fmt_step(s['step'])} and skip the batches around it, or "
                          "lower the learning rate / clip gradients tighter.")
            else:
                advice = (f"The loss did not return to its level: restart from a checkpoint before step "
                          f"{fmt_step(s['step'])} with a lower learning rate and skip the batches there.")
            out.append(ctx.finding("LOSS_SPIKE", sev, conf, [m], s["step"], end, msg, ev, advice))
        if summarise_fast:
            steps = [s["step"] for s in fast]
            hmax = max(s["height"] for s in fast)
            msg = (f"{m} had {len(fast)} fast-recovering spikes between steps {fmt_step(min(steps))} and "
                   f"{fmt_step(max(steps))} (highest {fmt(hmax)} noise levels), each back to its level within a few "
                   f"steps" + (f"; they are {why_fast} ({len(fast)} in {n:,} points)" if why_fast else "") + ".")
            ev = dict(metric=m, steps=steps[:50], heights=[s["height"] for s in fast][:50], counts=counts,
                      fast_rate=rate, recurring=recurring, growing=growing, max_fast_findings=th.max_fast_findings)
            out.append(ctx.finding("LOSS_SPIKE", fast_sev, th.conf_many_fast, [m], min(steps), max(steps), msg, ev,
                                   "Frequent fast spikes: check for bad or duplicated shards; loss/grad-norm step "
                                   "skipping (OLMo-core, Levanter) removes them cheaply."))
    return out


def _transients(ctx: RunContext, m: str, th: Thresholds) -> list[Finding]:
    """Slow spikes the spike table cannot hold: a worsening level shift (analysis shifts:
    min_height noise levels and min_transient_z HAC standard errors) that the segment after
    it takes back by at least min_taken_back of its size beyond the trend before it. A
    jump that decays over more points than the detector's centred baseline window is an
    edge to a median filter (kept, not flagged); the segments see it as a jump and a
    steep return."""
    out = []
    total = span(ctx, m)
    worse_up = ctx.role(m)["direction"] == "min"
    guard = th.transient_guard_rel * total if total and total > 0 else 0
    segs = {g["step_start"]: g for g in ctx.segments_of(m)}
    for sh in ctx.feature(m)["extra"].get("shifts") or []:
        d, dz, jz = sh.get("delta"), sh.get("delta_noise"), sh.get("delta_z")
        if d is None or dz is None or jz is None or (d > 0) != worse_up:
            continue
        if abs(dz) < th.min_height or abs(jz) < th.min_transient_z:
            continue
        if any(abs(sp["step"] - sh["step"]) <= guard for sp in ctx.spikes_of(m)):
            continue  # the spike table has it
        back = taken_back(ctx, m, sh["step"], d)
        right = segs.get(sh["step"])
        if back is None or back < th.min_taken_back or right is None:
            continue
        step, end = int(sh["step"]), _recovery_end(ctx, m, sh["step"], d, back, abs(d / dz))
        event = ctx.nearest_event(step, th.explain_rel * total, CHANGE_EVENTS) if total and total > 0 else None
        peak = line_at(right, step)
        msg = (f"{m} jumped by {fmt(abs(d))} ({fmt(abs(dz))} noise levels) at step {fmt_step(step)} to about "
               f"{fmt(peak)} and decayed back by {pct(min(back, 1.0))} of the jump over the next "
               f"{end - step:,} steps (a slow spike)"
               + (f", at a {event['kind']} event ({event['detail']})" if event is not None else "") + ".")
        ev = dict(metric=m, step=step, value=peak, height_noise=abs(dz), delta=d, delta_z=jz, taken_back=back,
                  recovery_steps=end - step, recovery_class="slow", detected_as="level shift taken back",
                  explained_by=event["kind"] if event is not None else None, event=event,
                  min_taken_back=th.min_taken_back, min_transient_z=th.min_transient_z)
        conf = logistic((abs(dz) - th.min_height) / th.conf_scale + th.conf_bias)
        out.append(ctx.finding("LOSS_SPIKE", "info" if event is not None else "warning", conf, [m], step, end, msg,
                               ev, f"Restart ~100 steps before step {fmt_step(step)} and skip the batches around it, "
                                   "or lower the learning rate / clip gradients tighter."))
    return out


def _recovery_end(ctx: RunContext, m: str, step: int, d: float, back: float, noise: float) -> int:
    """Where a slow spike found as a shift (jump ``d`` at ``step``, the first segment after
    it taking back ``back``) is back within 2 noise levels of the trend before it: the end
    of the first segment after the jump, or further along later ones while each keeps
    taking back (falls faster than the trend before the jump, by 2 combined HAC standard
    errors of the two slopes), up to the step where the
    total taken back reaches 1 - 2 noise / |d| (linear along that segment's line)."""
    segs = ctx.segments_of(m)
    k = next(i for i, g in enumerate(segs) if g["step_start"] == step)
    before, need = segs[k - 1]["slope"], 1.0 - 2.0 * noise / abs(d)
    se0 = segs[k - 1]["slope_se"] if segs[k - 1]["slope_se"] is not None else math.nan
    total, end = back, segs[k]["step_end"]
    for g in segs[k + 1:]:
        if total >= need or g["slope"] is None or not math.isfinite(g["slope"]):
            break
        se = math.hypot(se0, g["slope_se"] if g["slope_se"] is not None else math.nan)
        if not (math.isfinite(se) and abs(g["slope"] - before) >= 2.0 * se):
            break  # its slope is the old trend's within 2 standard errors: the recovery is over
        length = g["step_end"] - g["step_start"]
        more = -(g["slope"] - before) * length / d
        if more <= 0:
            break
        if total + more > need:  # its line gets back to the trend inside this segment
            return int(round(g["step_start"] + (need - total) / more * length))
        total, end = total + more, g["step_end"]
    return int(end)


def _material(ctx: RunContext, m: str, s: dict, th: Thresholds) -> bool:
    """False for a 'spike' on a quantised curve (difference noise 0) that rises less than
    min_excess_of_range of the curve's total descent above its best raw value."""
    noise = ctx.x(m, "noise")
    if math.isfinite(noise) and noise > 0:
        return True
    best, first = ctx.x(m, "best_value_raw"), ctx.x(m, "initial_value")
    rng = abs(first - best) if math.isfinite(first) and math.isfinite(best) else math.nan
    if not (math.isfinite(rng) and rng > 0) or s["value"] is None:
        return True
    return (s["value"] - best) >= th.min_excess_of_range * rng


def _growing(fast: list[dict], th: Thresholds) -> bool:
    """The last grow_count fast spikes each higher than the one before, the last at least
    grow_ratio x the first of them."""
    k = th.grow_count
    if len(fast) < k:
        return False
    h = [s["height"] for s in fast[-k:]]
    return all(b > a for a, b in zip(h, h[1:])) and h[-1] >= th.grow_ratio * h[0]
