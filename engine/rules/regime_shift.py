"""REGIME_SHIFT: a level shift of the loss, explained by an event or not."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import CHANGE_EVENTS, curves, finite_points, span, taken_back


def _spacing(ctx: RunContext, sh: dict) -> float:
    """The mean step spacing of the curve of shift ``sh`` (its span over its points)."""
    return sh["span"] / max(finite_points(ctx, sh["metric"]) - 1, 1)


def _epoch_boundaries(ctx: RunContext) -> tuple[float, float] | None:
    """(first step, steps per epoch) from a logged epoch counter (kind other, named
    epoch): HF/Lightning log it at every step, so its features give the rate."""
    for m in ctx.metric_names():
        if m.split("/")[-1].lower() not in ("epoch", "epochs", "train/epoch"):
            continue
        f = ctx.feature(m)
        if f is None:
            continue
        e0, e1 = ctx.x(m, "initial_value"), ctx.x(m, "final_value")
        s0, s1 = f.get("step_first"), f.get("final_step")
        if None in (s0, s1) or not (math.isfinite(e0) and math.isfinite(e1)) or e1 - e0 < 1 or s1 <= s0:
            continue
        spe = (s1 - s0) / (e1 - e0)
        return s0 - e0 * spe, spe
    return None


@rule(code="REGIME_SHIFT", summary="The loss jumped to a new level and stayed there.")
def regime_shift(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: the level shifts of each loss (the jump between the fitted lines of two
    adjacent segments at their boundary, in noise units, in units of the raw spread
    around the two lines -- which holds the slow wander of autocorrelated noise that
    the residual noise misses -- and relative to the level),
    the step, and the event that explains it: an lr_change, data_refresh, resume or
    phase event within explain_rel of the run, or an epoch boundary computed from a
    logged epoch counter. Shifts in several losses of one objective within the
    tolerance are one finding.
    Why: a lasting jump of the loss level that no schedule explains means the data or
    the state changed: a bad or reordered shard, a changed mixture, a resume that
    restored the wrong state (optimizer, data position), a precision change. The same
    jump at an LR drop, a data refresh or an epoch boundary (multi-epoch SFT: the model
    meets the examples again) is expected and reported as info.
    Advice: unexplained: compare the data order and loader state around the step, check
    for a resume or a config change there, and record deliberate changes as events;
    explained: nothing to fix.
    A jump within explain_rel of a logged event needs only min_shift_noise_at_event
    noise levels and min_shift_spread_at_event spreads (the event says where to look).
    The jump must also stand min_shift_z (at an event min_shift_z_at_event) Newey-West
    standard errors of the difference of the two lines at the boundary (analysis
    delta_z): strongly autocorrelated noise (AR 0.95) wanders by several spreads now and
    then, and two lines fitted through its wander disagree at their boundary, but their
    HAC errors are wide there; a step of the level is narrow and sharp.
    A worsening jump away from any logged event that the segment after it takes back by
    max_taken_back of its size beyond the trend before it (a slow-recovering spike the
    spike detector missed) did not stay: it is not reported here.
    Known false alarms: steps of a schedule that is not logged (an LR drop without an lr
    curve or event); eval-only curves too short to see a shift (both sides need the
    analysis' min_shift_points).
    """
    out = []
    epochs = _epoch_boundaries(ctx)
    shifts = []
    for m in curves(ctx, min_points=th.min_points):
        level = ctx.x(m, "final_value")
        first = ctx.feature(m).get("step_first") or 0
        for s in ctx.feature(m)["extra"].get("shifts") or []:
            dz, d = s.get("delta_noise"), s.get("delta")
            if s["step"] - first < th.skip_start_rel * span(ctx, m):
                continue
            guard = th.spike_guard_rel * span(ctx, m)
            if any(abs(sp["step"] - s["step"]) <= guard for sp in ctx.spikes_of(m)):
                continue  # a spike's tail seen as a jump: LOSS_SPIKE reports it
            # at a logged event (LR change, data refresh, resume, phase) a change is expected
            # there: a smaller jump is believable than anywhere else in the run
            at_event = ctx.nearest_event(s["step"], th.explain_rel * span(ctx, m), CHANGE_EVENTS) is not None
            need_noise = th.min_shift_noise_at_event if at_event else th.min_shift_noise
            need_spread = th.min_shift_spread_at_event if at_event else th.min_shift_spread
            if dz is None or d is None or abs(dz) < need_noise:
                continue
            dsp = s.get("delta_spread")
            if dsp is not None and abs(dsp) < need_spread:
                continue  # within the slow wander of autocorrelated noise
            jz = s.get("delta_z")
            if jz is not None and abs(jz) < (th.min_shift_z_at_event if at_event else th.min_shift_z):
                continue  # not distinguishable from autocorrelated wander (HAC standard error)
            rel = abs(d) / abs(level) if level else math.inf
            if rel < th.min_shift_rel:
                continue
            back = taken_back(ctx, m, s["step"], d)
            if back is not None and back >= th.max_taken_back and not at_event \
                    and (d > 0) == (ctx.role(m)["direction"] == "min"):
                continue  # a worsening jump the next stretch takes back: a transient (slow spike recovery)
            shifts.append(dict(metric=m, step=int(s["step"]), delta=d, delta_noise=dz, delta_spread=dsp, delta_z=jz,
                               delta_rel=rel,
                               objective=ctx.role(m)["objective"], span=span(ctx, m)))
    shifts.sort(key=lambda s: (s["step"], s["metric"]))
    used = set()
    for i, s in enumerate(shifts):
        if i in used:
            continue
        tol = max(th.group_rel * s["span"], 1)
        # a sparse (eval) curve sees the jump at its first point after it: a later shift of
        # such a curve joins when that point is within one of its own spacings of the jump
        group = [s] + [t for j, t in enumerate(shifts) if j > i and j not in used and t["objective"] == s["objective"]
                       and (abs(t["step"] - s["step"]) <= tol
                            or 0 <= t["step"] - s["step"] <= _spacing(ctx, t) + tol)
                       and t["metric"] != s["metric"]]
        used.update(j for j, t in enumerate(shifts) if any(t is g for g in group))
        group.sort(key=lambda t: (ctx.role(t["metric"])["split"] not in ("train", "none"), t["metric"]))
        lead = group[0]
        within = th.explain_rel * lead["span"]
        ev = ctx.nearest_event(lead["step"], within, CHANGE_EVENTS)
        if ev is None:
            # a sparse (eval) curve sees a change at its first point after it: an event
            # since the previous point of each shifted curve explains the jump
            for g in group:
                gap = _spacing(ctx, g)
                cands = ctx.events_in(g["step"] - max(within, gap), g["step"], CHANGE_EVENTS)
                if cands:
                    ev = cands[-1]
                    break
        explained_by, why = None, ""
        if ev is not None:
            explained_by, why = ev["kind"], f" at a {ev['kind']} event ({ev['detail']})"
        elif epochs is not None:
            s0, spe = epochs
            k = round((lead["step"] - s0) / spe)
            if k >= 1 and abs(lead["step"] - (s0 + k * spe)) <= max(within, th.epoch_tol_rel * spe):
                explained_by, why = "epoch", f" at the start of epoch {k + 1}"
        severity = "info" if explained_by else "warning"
        direction = "up" if lead["delta"] > 0 else "down"
        worse = (lead["delta"] > 0) == (ctx.role(lead["metric"])["direction"] == "min")
        conf = logistic((abs(lead["delta_noise"]) - th.min_shift_noise) / th.conf_scale + th.conf_bias)
        msg = (f"{lead['metric']} shifted {direction} by {fmt(abs(lead['delta']))} ({pct(lead['delta_rel'])} of its "
               f"level, {fmt(abs(lead['delta_noise']))} noise levels) at step {fmt_step(lead['step'])}"
               + (why if explained_by else ", and no logged event explains it") + ".")
        evidence = dict(shifts=group, min_shift_spread=th.min_shift_spread, explained_by=explained_by, event=ev, worse=worse,
                        epoch_steps=epochs[1] if epochs else None, min_shift_noise=th.min_shift_noise,
                        min_shift_rel=th.min_shift_rel)
        if explained_by:
            advice = "Expected after this event; nothing to fix."
        else:
            advice = (f"Check what changed at step {fmt_step(lead['step'])}: the data order or shard, a resume "
                      "(optimizer and data-loader state), a config or precision change; record deliberate "
                      "changes as events.")
        out.append(ctx.finding("REGIME_SHIFT", severity, conf, [g["metric"] for g in group], lead["step"],
                               lead["step"], msg, evidence, advice))
    return out
