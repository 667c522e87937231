"""GRAD_NORM_INSTABILITY: the gradient norm grows, spikes repeatedly or goes non-finite after settling."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, rule


@rule(code="GRAD_NORM_INSTABILITY", summary="The gradient norm grew, spiked repeatedly or went non-finite after it had settled.",
      scope="cross")
def grad_norm_instability(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: per grad-norm curve (kind grad_norm): the settled level (lowest fitted
    segment level after the first settle_rel of the span, i.e. after warmup), the final
    level and their ratio; the first ascent segment after the settled one; the number of
    spikes (height >= min_spike_height local noise units) after settling and the first
    of them and their rate per logged point; whether the curve ends non-finite.
    Why: after warmup a healthy gradient norm settles and drifts slowly; one that grows
    several-fold, or keeps spiking (OLMo's spike score, 6-sigma rule over a rolling
    window), means the optimiser is leaving its stable region (LR too high for the
    curvature, loss-scale trouble, attention-logit growth) and often precedes loss
    spikes and divergence (BLOOM 104B: grad norm led the loss by a few iterations).
    Advice: lower the peak LR or lengthen warmup; clip gradients (or clip adaptively,
    ZClip); check the loss scale with fp16; add QK-norm or z-loss for attention-logit
    growth; skip steps whose grad norm is an outlier (OLMo-core SkipStepOptimizer).
    Isolated spikes that recover fast are normal in LLM pretraining (llm.c GPT-2 124M:
    75 spikes in 19,560 steps, none in the loss): spikes count only at min_spike_rate
    per logged point or more.
    Known false alarms: the tail of a deliberate LR increase (see events); a grad norm
    logged before clipping that grows as the loss nears zero on memorised data; a few
    isolated NaN grad norms from fp16 overflow that the scaler skipped (NONFINITE
    reports those; this rule needs a non-finite tail).
    """
    out = []
    for m in ctx.select(kind="grad_norm"):
        f = ctx.feature(m)
        if f is None or not f.get("n_points") or f.get("step_first") is None:
            continue
        first, last = int(f["step_first"]), int(f["step_last"])
        span = max(last - first, 1)
        settle = first + th.settle_rel * span
        segs = [g for g in ctx.segments_of(m) if g["level"] is not None and math.isfinite(g["level"])]
        late = [g for g in segs if g["step_end"] > settle]
        evidence = dict(metric=m, step_first=first, step_last=last, settle_step=int(settle))
        reasons, onsets = [], []
        growth = math.nan
        if late:
            low = min(late, key=lambda g: g["level"])
            settled = max(low["level"], 1e-12)
            final = ctx.x(m, "final_value")
            growth = final / settled if math.isfinite(final) else math.nan
            evidence.update(settled_level=low["level"], settled_segment=[low["step_start"], low["step_end"]],
                            final_value=final, growth=growth)
            after = [g for g in late if g["step_start"] >= low["step_start"]]
            asc = [g for g in after if g["kind"] == "ascent"]
            if growth >= th.min_growth and asc:
                reasons.append(f"grew x{fmt(growth, 2)} from its settled level {fmt(settled)} to {fmt(final)}")
                # onset: walk back from the end over segments that rise or already sit
                # onset_factor above the settled level; the growth began at the earliest
                k = len(after)
                while k > 0:
                    g = after[k - 1]
                    slope = g["slope"] if g["slope"] is not None and math.isfinite(g["slope"]) else 0.0
                    start_val = g["level"] - slope * (g["step_end"] - g["step_start"]) / 2
                    if g is low or not (g["kind"] == "ascent" or start_val >= th.onset_factor * settled):
                        break
                    k -= 1
                onsets.append(int(after[min(k, len(after) - 1)]["step_start"]))
        spikes = [s for s in ctx.spikes_of(m) if s["step"] > settle and s["height"] >= th.min_spike_height]
        # spikes per logged point after settling: isolated fast-recovering spikes are
        # normal in LLM pretraining (llm.c GPT-2: 75 in 19,560 steps, 0.4%)
        n_after = max(ctx.x(m, "n_points") * (last - settle) / span, 1.0)
        rate = len(spikes) / n_after
        evidence.update(n_spikes_after_settle=len(spikes), spike_rate=rate)
        spiky = len(spikes) >= th.min_spikes and rate >= th.min_spike_rate
        if spiky:
            evidence.update(first_spike_step=spikes[0]["step"],
                            max_spike_height=max(s["height"] for s in spikes))
            reasons.append(f"spiked {len(spikes)} times after step {fmt_step(int(settle))} "
                           f"(up to {fmt(evidence['max_spike_height'], 3)} noise levels)")
            # onset: the first spike of the densest run (spikes within a tenth of the span of the next)
            onsets.append(int(spikes[0]["step"]))
        tail_nonfinite = bool(f["extra"].get("nonfinite_tail")) and f.get("first_nonfinite_step") is not None
        if tail_nonfinite:
            reasons.append(f"went non-finite at step {fmt_step(f['first_nonfinite_step'])} and stayed so")
            onsets.append(int(f["first_nonfinite_step"]))
            evidence["first_nonfinite_step"] = f["first_nonfinite_step"]
        if not reasons:
            continue
        onset = min(onsets)
        n_signals = len(reasons)
        strength = (math.log2(growth / th.min_growth) if math.isfinite(growth) and growth >= th.min_growth else 0.0) \
            + (math.log2(len(spikes) / th.min_spikes) if spiky else 0.0)
        conf = min(th.max_confidence, max(0.5, logistic(1.0 * strength + 1.0 * (n_signals - 1) + 0.3)))
        severity = "critical" if tail_nonfinite else "warning"
        msg = f"{m} " + "; ".join(reasons) + f" (from step {fmt_step(onset)})."
        advice = ("Lower the peak LR or lengthen warmup; clip gradients (or adaptively, ZClip); check the fp16 loss "
                  "scale; add QK-norm or z-loss if attention logits grow; skip outlier steps (OLMo-core).")
        evidence.update(onset_step=onset, signals=reasons, thresholds=th.as_dict())
        out.append(ctx.finding("GRAD_NORM_INSTABILITY", severity, conf, [m], onset, last, msg, evidence, advice))
    return out
