"""DIVERGENCE: a training loss climbs far above its best and stays there."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import curves, group_by_objective, noise_of, sign


@rule(code="DIVERGENCE", summary="The training loss rose far above its best value and did not come back.")
def divergence(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: per training loss the best (smoothed) value and step, the final value, the
    rise since the best relative to the best (since_best_rel) and in noise units
    (since_best_noise), and whether the end is flat (a collapse to a constant such as
    ln(vocab) after a blow-up: the final value is compared with ln of common vocabulary
    and class counts).
    Why: a loss that leaves its minimum by a large share and many noise levels without
    recovering means the optimisation left the basin it was in (too high a learning
    rate, a numeric blow-up, corrupted state); a flat end at ln(V) means the model now
    predicts the uniform distribution: it has forgotten everything.
    Advice: restart from the checkpoint at or before the best step with a lower peak
    learning rate, longer warmup, tighter gradient clipping or a lower Adam beta2;
    check the data around the onset.
    Known false alarms: a deliberate change of task or data mixture that raises the loss
    (record it as an event); a second-stage run whose loss is on another scale.
    Validation losses are only listed with a diverging training loss, never alone (a
    rising validation loss alone is OVERFITTING).
    """
    cand = curves(ctx, splits=("train", "none"), min_points=th.min_points)
    hits = []
    for m in cand:
        best, final = ctx.x(m, "best_value"), ctx.x(m, "final_value")
        rise_rel = ctx.x(m, "since_best_rel")
        rise_noise = ctx.x(m, "since_best_noise")
        if not (math.isfinite(rise_rel) and math.isfinite(best)):
            continue
        if rise_rel < th.min_rise_rel or not (rise_noise >= th.min_rise_noise or math.isinf(rise_noise)):
            continue
        hits.append(m)
    out = []
    for obj, ms in group_by_objective(ctx, hits).items():
        m = ms[0]
        f = ctx.feature(m)
        best, final = ctx.x(m, "best_value"), ctx.x(m, "final_value")
        rise_rel, rise_noise = ctx.x(m, "since_best_rel"), ctx.x(m, "since_best_noise")
        onset = f.get("best_step")
        end = f.get("final_step")
        # a flat end at ln(V): uniform predictions
        flat_ln = None
        noise_tail = ctx.x(m, "noise_tail")
        for k in th.uniform_counts:
            if abs(final - math.log(k)) <= th.uniform_tol_rel * math.log(k):
                flat_ln = k
                break
        # held-out curves of the same objective that rose too are listed with it
        vals = [v for v in curves(ctx, splits=("val", "test")) if ctx.role(v)["objective"] == obj
                and ctx.x(v, "since_best_rel") >= th.min_rise_rel]
        conf = logistic(th.conf_slope * (math.log(max(rise_rel, 1e-9) / th.min_rise_rel))
                        + th.conf_bias)
        msg = (f"{m} bottomed out at {fmt(best)} at step {fmt_step(onset)} and ended at {fmt(final)}, "
               f"{pct(rise_rel)} above its best ({fmt(rise_noise, 3)} noise levels)"
               + (f", flat at ln({flat_ln:,}) = {math.log(flat_ln):.2f}: the model predicts uniformly" if flat_ln else "")
               + ".")
        ev = dict(metric=m, best_value=best, best_step=onset, final_value=final, final_step=end,
                  since_best_rel=rise_rel, since_best_noise=rise_noise, noise=noise_of(ctx, m),
                  noise_tail=noise_tail, flat_at_ln=flat_ln, also=ms[1:] + vals,
                  min_rise_rel=th.min_rise_rel, min_rise_noise=th.min_rise_noise)
        advice = (f"Restart from the checkpoint nearest step {fmt_step(onset)} with a lower learning rate, a longer "
                  "warmup or tighter gradient clipping (or Adam beta2 0.95); inspect the data around the onset.")
        out.append(ctx.finding("DIVERGENCE", "critical", conf, ms + vals, onset, end, msg, ev, advice))
    return out
