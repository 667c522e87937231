"""CORRELATED_SPIKES: spikes in several metrics at the same steps (a data problem) or right after grad-norm spikes (an optimisation problem)."""

from __future__ import annotations

import math

from engine.rules._cross import spacing_of
from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, rule

_KINDS = ("loss", "perplexity", "accuracy", "reward", "grad_norm")  # KL accelerates by design in RL: its jumps are REWARD_HACKING evidence


@rule(code="CORRELATED_SPIKES", summary="Spikes hit several metrics at the same steps (data) or followed grad-norm spikes (optimisation).",
      scope="cross")
def correlated_spikes(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: the spikes table of every loss, perplexity, accuracy, reward and grad-norm
    curve of the run (height in local noise units), grouped into clusters whose steps lie
    within a tolerance of max(tol_points x the coarsest spacing involved, tol_rel x span);
    per cluster: the metrics, their spike steps and heights, and whether a grad-norm
    spike came first; per set of co-spiking metrics, how many clusters chance alone
    would give (independent spikes at the observed counts) and the Poisson tail of the
    observed count: clusters that chance explains (tail >= max_chance_p) are dropped.
    Why: one bad batch or shard hits every objective it feeds at once, so loss spikes that
    coincide across tasks or modalities point at the data; a loss spike that follows a
    grad-norm spike by a few steps points at the optimiser (BLOOM 104B: the grad norm
    jumped ~4x a few iterations before the loss; OLMo 2 and Marin report the same order).
    Advice: data: find the batch/shard at those steps (skip it on restart, OLMo's
    fast_forward_batches) and check for corrupt or duplicated documents; optimisation:
    clip gradients, lower the LR or lengthen warmup, skip outlier steps.
    Known false alarms: a schedule event (LR warm restart, eval on a new set) that jolts
    every curve at once (see the events); curves that are the same quantity under two
    names (loss and perplexity of one objective) count as two metrics.
    """
    # spreads (reward std, role "std") and other direction-less curves move with their mean: only
    # curves with a direction, and the grad norm, count as separate witnesses
    metrics = [m for m in ctx.select(kind=_KINDS) if ctx.feature(m) is not None
               and (ctx.role(m)["kind"] == "grad_norm" or ctx.role(m)["direction"] != "none")]
    events = []
    for m in metrics:
        for s in ctx.spikes_of(m):
            if s["height"] >= th.min_height:
                events.append((int(s["step"]), m, float(s["height"])))
    if len(events) < 2:
        return []
    events.sort()
    firsts = [ctx.feature(m)["step_first"] for m in metrics if ctx.feature(m).get("step_first") is not None]
    lasts = [ctx.feature(m)["step_last"] for m in metrics if ctx.feature(m).get("step_last") is not None]
    span = (max(lasts) - min(firsts)) if firsts and lasts else 0
    clusters, cur = [], [events[0]]
    for e in events[1:]:
        involved = {x[1] for x in cur} | {e[1]}
        spacing = max((spacing_of(ctx, m) for m in involved if math.isfinite(spacing_of(ctx, m))), default=1.0)
        tol = max(th.tol_points * spacing, th.tol_rel * span)
        if e[0] - cur[0][0] <= tol:
            cur.append(e)
        else:
            clusters.append(cur)
            cur = [e]
    clusters.append(cur)
    # chance coincidences: spikes of metrics that spike independently still meet now and
    # then (llm.c GPT-2: 75 grad-norm and 8 loss spikes in 19,560 steps meet once). Per
    # set of co-spiking metrics, the expected number of chance clusters is
    # n(anchor) x prod over the others of min(1, n(m) x 2 tol / span) (anchor: the metric
    # with the fewest spikes); the clusters count only when seeing as many is unlikely
    # under independence (Poisson tail < max_chance_p).
    n_spk = {}
    for _, m, _ in events:
        n_spk[m] = n_spk.get(m, 0) + 1
    by_set: dict[frozenset, int] = {}
    for c in clusters:
        key = frozenset(m for _, m, _ in c)
        by_set[key] = by_set.get(key, 0) + 1
    chance_p = {}
    for key, k in by_set.items():
        if len(key) < 2 or span <= 0:
            continue
        spacing = max((spacing_of(ctx, m) for m in key if math.isfinite(spacing_of(ctx, m))), default=1.0)
        tol = max(th.tol_points * spacing, th.tol_rel * span)
        ms = sorted(key, key=lambda m: n_spk[m])
        lam = float(n_spk[ms[0]])
        for m in ms[1:]:
            lam *= min(1.0, n_spk[m] * 2 * tol / span)
        chance_p[key] = dict(expected=lam, observed=k, p=_poisson_tail(k, lam))
    out = []
    for c in clusters:
        names = sorted({m for _, m, _ in c})
        chance = chance_p.get(frozenset(names))
        if chance is not None and chance["p"] >= th.max_chance_p:
            continue
        grads = [e for e in c if ctx.role(e[1])["kind"] == "grad_norm"]
        others = [e for e in c if ctx.role(e[1])["kind"] != "grad_norm"]
        if not others or len(names) < 2:
            continue
        other_names = sorted({m for _, m, _ in others})
        grad_first = bool(grads) and min(g[0] for g in grads) <= min(o[0] for o in others)
        if grad_first:
            cause = "optimisation"
        elif len(other_names) >= th.min_metrics_data:
            cause = "data"
        else:
            continue  # one loss and a grad-norm spike after it: the grad norm reacts to the loss
        start, end = c[0][0], c[-1][0]
        heights = {m: max(h for _, mm, h in c if mm == m) for m in names}
        steps = {m: min(s for s, mm, _ in c if mm == m) for m in names}
        if cause == "optimisation":
            g = min(grads)
            msg = (f"{g[1]} spiked at step {fmt_step(g[0])} ({fmt(g[2], 3)} noise levels) and "
                   + ", ".join(f"{m} followed at step {fmt_step(steps[m])} ({fmt(heights[m], 3)})" for m in other_names)
                   + ": an optimisation problem (the update blew up before the loss did).")
            advice = ("Clip gradients (or adaptively), lower the peak LR or lengthen warmup, and skip steps whose grad "
                      "norm is an outlier; check the fp16 loss scale.")
        else:
            msg = (f"{len(other_names)} metrics spiked together at steps {fmt_step(start)}-{fmt_step(end)} ("
                   + ", ".join(f"{m} {fmt(heights[m], 3)}" for m in other_names)
                   + " noise levels)" + ("" if not grads else " with the grad norm after them")
                   + ": a data problem (one bad batch or shard hit every objective).")
            advice = ("Find the batch or shard consumed at those steps (skip it on restart) and check it for corrupt, "
                      "duplicated or mislabelled examples.")
        conf = min(th.max_confidence, max(0.5, logistic(0.8 * (len(names) - 2) + 0.5 * math.log2(
            max(min(heights.values()) / th.min_height, 1.0)) + 0.8)))
        evidence = dict(cause=cause, steps=steps, heights=heights, grad_first=grad_first, chance=chance,
                        thresholds=th.as_dict())
        out.append(ctx.finding("CORRELATED_SPIKES", "warning", conf, names, start, end, msg, evidence, advice))
    if len(out) > th.max_findings:
        out.sort(key=lambda f: -f.confidence)
        out = sorted(out[: th.max_findings], key=lambda f: f.step_start)
    return out


def _poisson_tail(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam)."""
    if k <= 0:
        return 1.0
    term = math.exp(-lam)
    cdf = term
    for i in range(1, k):
        term *= lam / i
        cdf += term
    return max(0.0, 1.0 - cdf)
