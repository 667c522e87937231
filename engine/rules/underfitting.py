"""UNDERFITTING: the loss stays near where it started (often chance level)."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import curves, tail_progress


def _acc_gain_share(ctx: RunContext, a: str, chance_k: int | None) -> float:
    """Share of the way from chance to a perfect score the best value covered (scores
    in [0, 1], or in percent when they exceed 1); NaN for direction min.

    Chance is 1/k when the objective's loss started at ln(k), else 1/2: the chance level
    of pairwise preference accuracy (reward models) and the highest chance level of a
    balanced k-way task. The gain is measured from the lower of chance and the first
    value: an accuracy whose first eval already sits above chance had learned before it
    was first logged, and that learning counts."""
    if ctx.role(a)["direction"] != "max":
        return math.nan
    init, best = ctx.x(a, "initial_value"), ctx.x(a, "best_value")
    top = 100.0 if ctx.x(a, "max_value") > 1.0 else 1.0
    chance = top / chance_k if chance_k else top / 2.0
    ref = min(init, chance) if math.isfinite(init) else math.nan
    return (best - ref) / (top - ref) if top > ref else math.nan


@rule(code="UNDERFITTING", summary="The loss barely moved from its starting (chance) level: the model is not fitting the data.")
def underfitting(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: per training loss the relative improvement from the first value to the
    best (improvement_rel), the final value and whether the start sits at a chance
    level ln(k) (k = 2 for a reward model or binary task, 10, 100, 1000 classes,
    common vocabulary sizes); the improvement of accuracy curves of the same objective,
    as the share of the way from chance to a perfect score their best covered (chance
    1/k when the loss started at ln(k), else 1/2: pairwise preference accuracy of a
    reward model, and the highest chance of a balanced k-way task; measured from the
    first value when that sits below chance); the tail still improving or not (a slow
    but steady descent is not underfitting).
    Why: a classifier or LM whose loss stays near ln(k) predicts close to uniformly: it
    has not found signal. Less than max_improvement_rel over a whole run (or
    max_improvement_rel_at_chance from a start at ln(k): the best of a noisy curve
    hovering under chance dips below it), with a flat tail, means more steps of the
    same will not fix it.
    Advice: raise the learning rate, check labels and inputs line up (shuffle bugs,
    wrong target column), check the model is big enough and the loss/activation pair
    is right; overfit a tiny batch first to prove the pipeline can learn.
    Known false alarms: fine-tuning from a strong start (the loss begins low and has
    little to gain; a start far below chance lowers confidence); tasks whose floor is
    truly near the start (noisy labels). A reward model's pairwise loss rarely falls far
    below ln 2 (a healthy one ends near 0.5-0.6) while its accuracy climbs from 0.5 to
    0.62-0.75: the accuracy's gain from chance (>= 0.25 of the way to perfect on seeds
    1-4, underfitting classifiers <= 0.19) keeps it quiet; measured from the accuracy's
    first eval (often already 0.55-0.63) it was as low as 0.13.
    Known misses: an imbalanced binary task whose majority-class accuracy exceeds 1/2
    looks like learning from the 1/2 reference.
    """
    out = []
    for m in curves(ctx, splits=("train", "none"), min_points=th.min_points):
        imp = ctx.x(m, "improvement_rel")
        init = ctx.x(m, "initial_value")
        chance = None
        if ctx.role(m)["direction"] == "min":
            for k in th.chance_counts:
                if abs(init - math.log(k)) <= th.chance_tol_rel * math.log(k):
                    chance = k
                    break
        # a start at chance level ln(k) allows a little more: the best of a noisy curve
        # that hovers just under chance dips below it by a few noise levels
        limit = th.max_improvement_rel_at_chance if chance else th.max_improvement_rel
        if not math.isfinite(imp) or imp >= limit:
            continue
        tp = tail_progress(ctx, m)
        if tp["z"] >= th.max_tail_z and tp["share"] >= 0.2:
            continue  # slowly but surely learning
        f = ctx.feature(m)
        obj = ctx.role(m)["objective"]
        accs = [a for a in curves(ctx, kinds=("accuracy",), min_points=3) if ctx.role(a)["objective"] == obj]
        acc_imp = {a: _acc_gain_share(ctx, a, chance) for a in accs}
        if accs and any(math.isfinite(v) and v >= th.max_acc_gain_share for v in acc_imp.values()):
            continue
        conf = logistic(th.conf_slope * (th.max_improvement_rel - imp) / th.max_improvement_rel + th.conf_bias
                        + (th.conf_chance if chance else 0.0))
        final = ctx.x(m, "final_value")
        msg = (f"{m} improved only {pct(imp)} over the run, from {fmt(init)} to {fmt(final)}"
               + (f", near chance level ln({chance}) = {math.log(chance):.3g}" if chance else "") + ".")
        ev = dict(metric=m, improvement_rel=imp, initial_value=init, final_value=final, chance_k=chance,
                  tail_slope_z=tp["z"], accuracy_gain_share=acc_imp, max_improvement_rel=th.max_improvement_rel)
        out.append(ctx.finding("UNDERFITTING", "warning", conf, [m] + accs, f.get("step_first"), f.get("final_step"),
                               msg, ev, "Raise the learning rate, check that inputs and labels line up, prove the "
                               "pipeline can overfit a tiny batch, then consider a bigger model."))
    return out
