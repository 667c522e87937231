"""REWARD_COLLAPSE: the optimised reward peaked and gave back most of its gain while KL kept growing."""

from __future__ import annotations

import math

from engine.rules._cross import noise_of, value_at
from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.reward_hacking import proxies


@rule(code="REWARD_COLLAPSE", summary="The optimised reward peaked and fell back while KL kept growing.",
      scope="cross")
def reward_collapse(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: per optimised (proxy) reward: its smoothed peak value and step, its start
    and final values, the drop since the peak in noise units and as a share of the gain
    it had made; the KL curves of the same objective at the peak step and at the end.
    Why: this is not reward hacking (there the optimised reward keeps rising while the
    true objective falls): here the optimised reward itself falls back while the policy
    keeps drifting from the reference (KL grows). The policy is degrading: length
    collapse (completions hitting the token limit), entropy collapse, a broken reward
    function or an LR too high for RL. The GRPO chaos-economy log shows it: reward peaks
    at step 80-85 and ends below zero while KL rises 0.00001 -> 0.05.
    Advice: keep the checkpoint at the reward peak; lower the LR or raise the KL
    coefficient; read completions after the peak (length, truncation, repetition); check
    the reward functions on those completions.
    Known false alarms: very noisy rewards with few points (a drop of ~2 noise levels
    is weak evidence: the confidence says so); a curriculum that makes prompts harder
    later (reward falls for a good reason: see the events).
    """
    out = []
    for p in proxies(ctx):
        f = ctx.feature(p)
        best, final, init = ctx.x(p, "best_value"), ctx.x(p, "final_value"), ctx.x(p, "initial_value")
        best_step, final_step = f.get("best_step"), f.get("final_step")
        noise = noise_of(ctx, p)
        if not (ctx.x(p, "n_finite") >= th.min_points and best_step is not None and math.isfinite(noise)
                and all(math.isfinite(v) for v in (best, final, init))):
            continue
        gain = best - init
        drop = best - final
        if gain <= 0 or drop <= 0:
            continue
        drop_share = drop / gain
        drop_noise = drop / noise
        after = (final_step - best_step) / max(ctx.x(p, "median_spacing"), 1.0)
        if drop_share < th.min_drop_share or drop_noise < th.min_drop_noise or after < th.min_points_after:
            continue
        kls = []
        for kl in ctx.select(kind="kl", objective=ctx.role(p)["objective"]):
            if ctx.feature(kl) is None or "std" in ctx.role(kl)["role"]:
                continue
            k_at, k_end = value_at(ctx, kl, best_step), ctx.x(kl, "final_value")
            k_noise = noise_of(ctx, kl)
            rise_noise = (k_end - k_at) / k_noise if math.isfinite(k_noise) and k_noise > 0 else math.nan
            if math.isfinite(rise_noise) and rise_noise >= th.min_kl_rise_noise:
                kls.append(dict(kl=kl, kl_at_peak=k_at, kl_final=k_end, kl_rise_noise=rise_noise))
        if not kls:
            continue
        k = kls[0]
        conf = min(th.max_confidence, max(0.5, logistic((drop_noise - th.min_drop_noise) + 2 * (drop_share - th.min_drop_share))))
        msg = (f"{p} peaked at {fmt(best)} around step {fmt_step(best_step)} and fell back to {fmt(final)} "
               f"({pct(drop_share)} of its gain, {fmt(drop_noise, 2)} noise levels) while {k['kl']} kept growing "
               f"({fmt(k['kl_at_peak'])} -> {fmt(k['kl_final'])}): the policy is degrading, not hacking the reward.")
        evidence = dict(proxy=p, initial=init, peak=best, peak_step=best_step, final=final, drop_share=drop_share,
                        drop_noise=drop_noise, noise=noise, evals_after_peak=after, kl=kls, thresholds=th.as_dict())
        advice = (f"Keep the checkpoint near step {fmt_step(best_step)}; lower the LR or raise the KL coefficient; read "
                  "completions after the peak (length, truncation, repetition) and check the reward functions on them.")
        out.append(ctx.finding("REWARD_COLLAPSE", "warning", conf, [p] + [x["kl"] for x in kls], int(best_step),
                               int(final_step), msg, evidence, advice))
    # one finding per objective: the reward with the largest drop leads, the others are listed
    by_obj: dict[str, list[Finding]] = {}
    for f in out:
        by_obj.setdefault(ctx.role(f.metrics[0])["objective"], []).append(f)
    merged = []
    for fs in by_obj.values():
        fs.sort(key=lambda f: (len(ctx.role(f.metrics[0])["role"].split(",")) > 1, -f.evidence["drop_noise"]))
        lead = fs[0]
        if len(fs) > 1:
            more = [f.metrics[0] for f in fs[1:]]
            lead.message = lead.message[:-1] + f"; {', '.join(more)} fell back too."
            lead.metrics = lead.metrics + [m for m in more if m not in lead.metrics]
            lead.evidence["also"] = [f.evidence for f in fs[1:]]
        merged.append(lead)
    return merged
