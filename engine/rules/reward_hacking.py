"""REWARD_HACKING: the optimised (proxy) reward keeps rising while a gold reward / eval falls or KL runs away."""

from __future__ import annotations

import math

from engine.rules._cross import noise_of, sign_of, spacing_of, span_of, value_at
from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule


def _roles(ctx: RunContext, m: str) -> set[str]:
    return {x for x in ctx.role(m)["role"].split(",") if x}


def proxies(ctx: RunContext, objective: str | None = None) -> list[str]:
    """Optimised rewards: kind reward, direction max, not gold, logged on training rollouts."""
    out = []
    for m in ctx.select(kind="reward", direction="max"):
        r = ctx.role(m)
        if objective is not None and r["objective"] != objective:
            continue
        if "gold" in _roles(ctx, m) or r["split"] in ("val", "test") or ctx.feature(m) is None:
            continue
        out.append(m)
    return out


def golds(ctx: RunContext, objective: str) -> list[str]:
    """Held-out judges of the policy: a gold reward, or an eval reward/score of the same objective."""
    out = []
    for m in ctx.metric_names():
        r = ctx.role(m)
        if r["objective"] != objective or r["direction"] == "none" or ctx.feature(m) is None:
            continue
        if r["kind"] == "reward" and ("gold" in _roles(ctx, m) or r["split"] in ("val", "test")):
            out.append(m)
        elif r["kind"] == "accuracy" and r["split"] in ("val", "test"):
            out.append(m)
    return out


def gold_noise(ctx: RunContext, gold: str) -> float:
    """Point noise of a gold/eval curve: the lower of the residual noise about the
    smoother and the difference-based noise. On white noise the residual SD reads ~0.8
    of the point SD (the 1.5-spacing smoother follows part of it) and the difference-based
    one reads it unbiased, so a residual noise above the difference-based one holds
    signal: curvature a smoother of a 7-20 point eval curve cannot follow (a 7-point gold
    that rises 0.8 and turns over reads 0.14 residual, 0.11 difference-based, 0.03 true)."""
    a, b = ctx.x(gold, "noise_resid"), ctx.x(gold, "noise")
    vals = [v for v in (a, b) if math.isfinite(v) and v > 0]
    return min(vals) if vals else math.nan


def _gold_falls(ctx, proxy, gold, th):
    sg = sign_of(ctx.role(gold)["direction"])
    fg = ctx.feature(gold)
    best, final = ctx.x(gold, "best_value"), ctx.x(gold, "final_value")
    best_step, final_step = fg.get("best_step"), fg.get("final_step")
    noise = gold_noise(ctx, gold)
    spacing = spacing_of(ctx, gold)
    if not (ctx.x(gold, "n_finite") >= th.min_gold_points and best_step is not None and math.isfinite(noise)
            and math.isfinite(best) and math.isfinite(final)):
        return None
    drop = sg * (final - best)  # > 0: gold ended worse than its best
    scale = abs(best - ctx.x(gold, "initial_value")) or abs(best)
    drop_rel = drop / scale if scale else math.nan
    drop_noise = drop / noise
    evals_after = (final_step - best_step) / spacing if math.isfinite(spacing) else 0.0
    p_at, p_final = value_at(ctx, proxy, best_step), ctx.x(proxy, "final_value")
    p_noise = noise_of(ctx, proxy)
    p_gain = p_final - p_at
    p_gain_noise = p_gain / p_noise if math.isfinite(p_noise) and p_noise > 0 else math.nan
    decline_p = _decline_p(fg["extra"], sg, th)
    # the gold gave back min_gold_drop_rel of its gain, or (a turnover late in the run that
    # has not had the time to give much back) its points after the best fall significantly
    declined = drop_rel >= th.min_gold_drop_rel or (decline_p is not None and decline_p <= th.max_decline_p)
    ok = (drop_noise >= th.min_gold_drop_noise and declined
          and evals_after >= th.min_evals_after and p_gain_noise >= th.min_proxy_gain_noise)
    return dict(ok=ok, kind="gold_falls", gold=gold, gold_best=best, gold_best_step=int(best_step), gold_final=final,
                gold_noise=noise, gold_drop=drop, gold_drop_rel_of_gain=drop_rel, gold_drop_noise=drop_noise,
                evals_after_best=evals_after, proxy_at_gold_best=p_at, proxy_final=p_final,
                proxy_gain_noise=p_gain_noise, onset=int(best_step), end=int(final_step),
                gold_decline_p=decline_p, gold_points_after_best=fg["extra"].get("after_best_points"))


def _decline_p(extra: dict, sg: float, th: Thresholds):
    """One-sided p-value that the gold's points after its best (the best itself left out)
    decline: Student t of the OLS slope with n - 2 degrees of freedom (white-noise errors:
    eval points are far apart); None with fewer than min_points_after_best points."""
    n, b, se = extra.get("after_best_points") or 0, extra.get("after_best_slope"), extra.get("after_best_slope_se")
    if n < th.min_points_after_best or b is None or not se or not math.isfinite(se) or se <= 0:
        return None
    from scipy.stats import t as student_t
    return float(student_t.sf(sg * b / se, n - 2))  # sg * slope > 0: the gold got worse (sg as in drop)


def kl_acceleration(ctx: RunContext, kl: str, th: Thresholds):
    """Onset of super-linear KL growth from the KL curve's segments: the first segment
    (after the first skip_rel of the span) whose slope is accel_ratio times the smallest
    positive slope before it. Returns (onset step, ratio, slope before, slope after) or None."""
    segs = [g for g in ctx.segments_of(kl) if g["slope"] is not None and math.isfinite(g["slope"])]
    f = ctx.feature(kl)
    if len(segs) < 2 or f is None or f.get("step_first") is None:
        return None
    first, last = f["step_first"], f["step_last"]
    skip = first + th.skip_rel * (last - first)
    before = []
    for g in segs:
        if g["step_end"] <= skip:
            before.append(g["slope"])
            continue
        base = min((s for s in before if s > 0), default=None)
        if base is not None and g["slope"] >= th.kl_accel_ratio * base and g["kind"] == "ascent":
            return int(g["step_start"]), g["slope"] / base, base, g["slope"]
        before.append(g["slope"])
    return None


def _kl_runaway(ctx, proxy, kl, th):
    acc = kl_acceleration(ctx, kl, th)
    if acc is None:
        return None
    onset, ratio, s0, s1 = acc
    k_on, k_final = value_at(ctx, kl, onset), ctx.x(kl, "final_value")
    growth = k_final / k_on if k_on and k_on > 0 else math.inf
    p_at, p_final = value_at(ctx, proxy, onset), ctx.x(proxy, "final_value")
    p_noise = noise_of(ctx, proxy)
    p_gain_noise = (p_final - p_at) / p_noise if math.isfinite(p_noise) and p_noise > 0 else math.nan
    ok = ((k_final >= th.kl_max or growth >= th.kl_growth) and p_gain_noise >= th.min_proxy_gain_noise)
    return dict(ok=ok, kind="kl_runaway", kl=kl, kl_onset=onset, kl_accel_ratio=ratio, kl_slope_before=s0,
                kl_slope_after=s1, kl_at_onset=k_on, kl_final=k_final, kl_growth=growth, proxy_at_onset=p_at,
                proxy_final=p_final, proxy_gain_noise=p_gain_noise, onset=onset,
                end=int(ctx.feature(kl)["final_step"]))


@rule(code="REWARD_HACKING", summary="The optimised reward kept rising while a gold reward fell or KL ran away.",
      scope="cross")
def reward_hacking(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: per policy objective, the proxy reward (the optimised one: kind reward,
    direction max, not gold, not held-out) and either (a) a gold reward / held-out eval
    score: its smoothed best and step, final value, the drop since the best in noise
    units and as a share of what it had gained, and the proxy's gain over the same
    steps; or (b) the KL curve: the onset of super-linear growth (a segment whose slope
    is kl_accel_ratio times the smallest earlier slope), the KL at the onset and at the
    end, and the proxy's gain after the onset.
    Why: over-optimisation of a learned reward follows Gao et al. (2023): the proxy
    keeps rising with sqrt(KL) while the gold reward turns over; a KL that accelerates
    past the range TRL recommends (0-10 nats) while the proxy rises means the policy is
    buying reward by leaving the reference model (trl #204, rllm #143). This is an audit
    after the fact, not an early warning.
    Advice: keep the checkpoint at the gold best / before the KL onset; raise the KL
    coefficient or use an adaptive KL target; check samples after the onset for the
    exploit (format tricks, length, repetition); improve or ensemble the reward model.
    The gold's noise is the lower of its residual and difference-based estimates (see
    gold_noise): on a 7-20 point eval curve both read the curve's own motion as noise.
    A gold that turned over late may not have given back min_gold_drop_rel of its gain by
    the end: its decline also counts when the OLS slope of its points after the best (the
    best left out; analysis after_best_*) is negative at one-sided p <= max_decline_p, on
    at least min_points_after_best points.
    Known false alarms: a gold/eval curve with very few points (min_gold_points); a KL
    that grows because the task legitimately needs a large policy change; a proxy
    reward that is itself a held-out metric mislabelled as train.
    Known misses (seeds 1-4, 9-12 x16: 9 of 128 labels, all gold_falls; every KL runaway
    is found): (a) a 7-point gold whose smoothed best is its 5th point (2 evals after
    it): the drop is 8-20% of the gain, but both noise estimates read the curve's rise
    and turn as noise (0.09-0.13 against a true 0.03), so it is 0.8-1.5 noise levels, and
    2 points after the best carry no slope test; a curvature-free noise (second
    differences) would need the analysis to carry it; (b) a 10-20 point gold whose
    turnover comes at 50-60% of the run: by the end it gave back 1-7% of its gain
    (0.1-2.2 noise levels) and its points after the best decline at one-sided p
    0.02-0.44: weaker than max_decline_p (at p <= 0.05 one saturated healthy gold in 20
    with a best mid-run would decline by chance).
    """
    out = []
    for objective in sorted({ctx.role(m)["objective"] for m in proxies(ctx)}):
        evs = []
        for proxy in proxies(ctx, objective):
            for gold in golds(ctx, objective):
                e = _gold_falls(ctx, proxy, gold, th)
                if e and e["ok"]:
                    evs.append((proxy, e))
            for kl in ctx.select(kind="kl", objective=objective):
                if ctx.feature(kl) is None or "std" in _roles(ctx, kl):
                    continue
                e = _kl_runaway(ctx, proxy, kl, th)
                if e and e["ok"]:
                    evs.append((proxy, e))
        if not evs:
            continue
        evs.sort(key=lambda pe: pe[1]["onset"])
        proxy, lead = evs[0]
        metrics = [proxy]
        for _, e in evs:
            m = e.get("gold") or e.get("kl")
            if m not in metrics:
                metrics.append(m)
        kinds = sorted({e["kind"] for _, e in evs})
        parts = []
        for _, e in evs:
            if e["kind"] == "gold_falls" and "gold" not in [p[0] for p in parts]:
                parts.append(("gold", f"{e['gold']} peaked at step {fmt_step(e['gold_best_step'])} "
                                      f"({fmt(e['gold_best'])}) and fell to {fmt(e['gold_final'])} "
                                      f"({fmt(e['gold_drop_noise'], 2)} noise levels, {pct(e['gold_drop_rel_of_gain'])} of its gain)"))
            if e["kind"] == "kl_runaway" and "kl" not in [p[0] for p in parts]:
                parts.append(("kl", f"{e['kl']} accelerated from step {fmt_step(e['kl_onset'])} "
                                    f"(slope x{fmt(e['kl_accel_ratio'], 2)}) and reached {fmt(e['kl_final'])} "
                                    f"from {fmt(e['kl_at_onset'])}"))
        p_from = lead.get("proxy_at_gold_best", lead.get("proxy_at_onset"))
        msg = (f"{proxy} kept rising ({fmt(p_from)} -> {fmt(lead['proxy_final'])} after step {fmt_step(lead['onset'])}) "
               f"while " + " and ".join(p[1] for p in parts) + ": the policy is exploiting the reward.")
        strength = max((e.get("gold_drop_noise", 0) - th.min_gold_drop_noise) if e["kind"] == "gold_falls" else
                       math.log2(max(e["kl_accel_ratio"], 1.0)) for _, e in evs)
        conf = min(th.max_confidence, max(0.5, logistic(strength / 2.0 + 0.5 * (len(kinds) - 1) + 0.5)))
        first, last = span_of(ctx, metrics)
        evidence = dict(objective=objective, proxy=proxy, signals=kinds, details=[e for _, e in evs],
                        run_start_step=first, run_end_step=last, thresholds=th.as_dict())
        advice = (f"Keep the checkpoint before step {fmt_step(lead['onset'])}; raise the KL coefficient or use an "
                  "adaptive KL target; read samples after the onset for the exploit (format tricks, length, "
                  "repetition); improve or ensemble the reward model.")
        end = max(e["end"] for _, e in evs)
        out.append(ctx.finding("REWARD_HACKING", "warning", conf, metrics, lead["onset"], end, msg, evidence, advice))
    return out
