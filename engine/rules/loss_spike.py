"""LOSS_SPIKE: sudden short-lived jumps of a training loss."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, rule
from engine.rules.common import curves


@rule(code="LOSS_SPIKE", summary="The training loss jumped far above its local level, with a recovery class.")
def loss_spike(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: the spikes table of each training loss: step, value, height in local
    noise units (robust z-score against a rolling median of the detrended curve), the
    recovery time and class (fast, slow, never); the total count per class.
    Why: a loss far outside its noise band for a few steps is a bad batch meeting a
    fragile parameter state (PaLM, OPT, BLOOM logbooks); fast recoveries are mostly
    harmless, slow ones cost the steps spent recovering, and a spike that never
    recovers is a shift or the start of a divergence.
    Advice: for slow or unrecovered spikes, restart ~100 steps before the spike and skip
    the batches around it (PaLM), lower the learning rate or clip tighter; for many
    fast spikes, consider loss/grad-norm based step skipping (OLMo-core, Levanter) and
    check the data loader for corrupt or duplicated shards.
    Known false alarms: heavy-tailed but healthy noise (tiny batches) gives isolated
    fast spikes near min_height; evaluation curves logged rarely are never judged.
    """
    out = []
    for m in curves(ctx, splits=("train", "none"), min_points=th.min_points):
        spikes = [s for s in ctx.spikes_of(m) if s["height"] is not None and s["height"] >= th.min_height]
        if not spikes:
            continue
        f = ctx.feature(m)
        fast = [s for s in spikes if s["recovery_class"] == "fast"]
        counts = {c: sum(1 for s in spikes if s["recovery_class"] == c) for c in ("fast", "slow", "never")}
        summarise_fast = len(fast) > th.max_fast_findings
        for s in spikes:
            cls = s["recovery_class"] or "never"
            if summarise_fast and cls == "fast":
                continue
            end = s["step"] + s["recovery_steps"] if s["recovered"] and s["recovery_steps"] is not None \
                else f.get("final_step")
            conf = logistic((s["height"] - th.min_height) / th.conf_scale + th.conf_bias)
            rec = (f"recovered in {s['recovery_steps']:,} steps ({cls})" if s["recovered"]
                   else "never came back to its level before")
            msg = (f"{m} spiked to {fmt(s['value'])} at step {fmt_step(s['step'])}, {fmt(s['height'])} noise levels "
                   f"above its local level, and {rec}.")
            ev = dict(metric=m, step=s["step"], value=s["value"], height_noise=s["height"],
                      recovery_steps=s["recovery_steps"], recovery_class=cls, counts=counts,
                      min_height=th.min_height)
            if cls == "fast":
                advice = ("A fast recovery is usually harmless; if spikes recur, check the batches at these steps and "
                          "consider skipping steps whose loss or grad norm is > 6 sd above a rolling mean.")
            elif cls == "slow":
                advice = (f"Restart ~100 steps before step {fmt_step(s['step'])} and skip the batches around it, or "
                          "lower the learning rate / clip gradients tighter.")
            else:
                advice = (f"The loss did not return to its level: restart from a checkpoint before step "
                          f"{fmt_step(s['step'])} with a lower learning rate and skip the batches there.")
            out.append(ctx.finding("LOSS_SPIKE", "warning", conf, [m], s["step"], end, msg, ev, advice))
        if summarise_fast:
            steps = [s["step"] for s in fast]
            hmax = max(s["height"] for s in fast)
            msg = (f"{m} had {len(fast)} fast-recovering spikes between steps {fmt_step(min(steps))} and "
                   f"{fmt_step(max(steps))} (highest {fmt(hmax)} noise levels), each back to its level within a few steps.")
            ev = dict(metric=m, steps=steps[:50], heights=[s["height"] for s in fast][:50], counts=counts,
                      max_fast_findings=th.max_fast_findings)
            out.append(ctx.finding("LOSS_SPIKE", "info", th.conf_many_fast, [m], min(steps), max(steps), msg, ev,
                                   "Frequent fast spikes: check for bad or duplicated shards; loss/grad-norm step "
                                   "skipping (OLMo-core, Levanter) removes them cheaply."))
    return out
