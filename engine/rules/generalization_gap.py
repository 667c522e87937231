"""GENERALIZATION_GAP: held-out results sit far from training results without getting worse."""

from __future__ import annotations

import math

from engine.rules._cross import noise_of, sign_of, train_val_pairs, value_at
from engine.rules.base import LOSS_KINDS, Finding, RunContext, Thresholds, fmt, fmt_step, pct, rule


@rule(code="GENERALIZATION_GAP", summary="Held-out results sit far from training results, without getting worse.",
      scope="cross")
def generalization_gap(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: per train/held-out pair of one objective: the final gap (held-out minus
    train, oriented so that positive means held-out is worse), relative to the held-out
    level for losses and in absolute units for accuracies, in noise units; the gap at
    mid-run (read on both curves' fitted segments) and its growth; the step from which
    the gap stays above the threshold; whether the held-out curve still improves (tail
    slope z). OVERFITTING takes precedence: a pair that overfits is not reported here.
    Why: a held-out loss that ends far above the training loss (AutoTrainer flags
    accuracy gaps >= 0.1) means the model generalises poorly even if the held-out
    curve never turns up: more capacity goes to memorising than to the task.
    Severity: always info. A large gap that grows while the held-out curve stalls is
    what healthy multi-epoch fine-tuning looks like too (the train loss drops at each
    epoch boundary), so the gap alone never warns; when the held-out curve turns
    worse, OVERFITTING warns instead. Growth and the held-out tail are in the evidence.
    Advice: more or more varied data, augmentation, regularisation (weight decay,
    dropout), a smaller model or fewer epochs; check that train and held-out sets
    come from the same distribution.
    Known false alarms: a held-out set that is harder by design (another domain); a
    train loss computed with dropout/augmentation on (then the gap is smaller or
    negative); multi-epoch fine-tuning where memorisation of the train set is expected.
    """
    out = []
    for pair in train_val_pairs(ctx):
        t, v = pair.train, pair.val
        sg = sign_of(pair.direction)
        fv, ft = ctx.feature(v), ctx.feature(t)
        if ctx.x(v, "n_finite") < th.min_val_points or fv.get("final_step") is None:
            continue
        vt_final, tt_final = ctx.x(v, "final_value"), ctx.x(t, "final_value")
        if not (math.isfinite(vt_final) and math.isfinite(tt_final)):
            continue
        is_loss = pair.kind in LOSS_KINDS
        gap = sg * (vt_final - tt_final)
        ref = abs(vt_final) if is_loss else 1.0
        gap_rel = gap / ref if ref else math.nan
        limit = th.min_gap_rel if is_loss else th.min_gap_accuracy
        noise = noise_of(ctx, v)
        gap_noise = gap / noise if math.isfinite(noise) and noise > 0 else math.nan
        if not (gap_rel >= limit and gap_noise >= th.min_gap_noise):
            continue
        # held-out not worse than its best (else OVERFITTING's business)
        rise = sg * (vt_final - ctx.x(v, "best_value"))
        if math.isfinite(noise) and noise > 0 and rise / noise >= th.max_val_rise_noise:
            continue
        first = max(fv.get("step_first") or 0, ft.get("step_first") or 0)
        last = int(fv["final_step"])
        mid = first + 0.5 * (last - first)
        g_mid = sg * (value_at(ctx, v, mid) - value_at(ctx, t, mid))
        g_mid_rel = g_mid / (abs(value_at(ctx, v, mid)) if is_loss else 1.0)
        growth = gap_rel - g_mid_rel
        # the first of 20 probe steps from which the gap stays above the limit
        start = last
        for k in range(20, -1, -1):
            s = first + (last - first) * k / 20
            vv, tt = value_at(ctx, v, s), value_at(ctx, t, s)
            g = sg * (vv - tt) / (abs(vv) if is_loss and vv else 1.0)
            if not (g >= limit):
                break
            start = int(round(s))
        tz = ctx.x(v, "tail_slope_z")
        val_improving = math.isfinite(tz) and sg * tz <= -th.improving_z
        growing = growth >= th.min_growth_rel
        severity = "info"  # multi-epoch fine-tuning memorises by design (healthy SFT): a gap alone is no warning
        conf = th.confidence if gap_noise >= 2 * th.min_gap_noise else th.confidence_weak
        unit = "of the held-out level" if is_loss else "absolute"
        msg = (f"{v} ends {fmt(vt_final)} against {fmt(tt_final)} for {t}: a gap of {pct(gap_rel)} {unit} "
               f"({fmt(gap_noise, 2)} noise levels) from step {fmt_step(start)}, "
               + ("growing" if growing else "stable") + f" since mid-run ({pct(g_mid_rel)}), while {v} "
               + ("still improves." if val_improving else "no longer improves."))
        evidence = dict(train=t, val=v, kind=pair.kind, val_final=vt_final, train_final=tt_final, gap=gap,
                        gap_rel=gap_rel, gap_noise=gap_noise, gap_mid_rel=g_mid_rel, growth_rel=growth,
                        val_tail_slope_z=tz, val_rise_since_best_noise=rise / noise if noise else math.nan,
                        thresholds=th.as_dict())
        advice = ("More or more varied data, augmentation, regularisation (weight decay, dropout), a smaller model or "
                  "fewer epochs; check that train and held-out sets come from the same distribution.")
        out.append(ctx.finding("GENERALIZATION_GAP", severity, conf, [t, v], start, last, msg, evidence, advice))
    # one finding per objective: the loss pair leads, accuracy pairs are listed with it
    by_obj: dict[str, list[Finding]] = {}
    for f in out:
        by_obj.setdefault(ctx.role(f.metrics[1])["objective"], []).append(f)
    merged = []
    for fs in by_obj.values():
        fs.sort(key=lambda f: (f.evidence["kind"] not in LOSS_KINDS, -f.evidence["gap_noise"]))
        lead = fs[0]
        for f in fs[1:]:
            lead.metrics += [m for m in f.metrics if m not in lead.metrics]
        if len(fs) > 1:
            lead.evidence["also"] = [f.evidence for f in fs[1:]]
            lead.message = lead.message[:-1] + "; " + ", ".join(f.evidence["val"] for f in fs[1:]) + " too."
        merged.append(lead)
    return merged
