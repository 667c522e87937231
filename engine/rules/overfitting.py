"""OVERFITTING: a held-out curve left its best by more than its noise while training kept improving."""

from __future__ import annotations

import math

from engine.rules._cross import noise_of, sign_of, spacing_of, span_of, train_val_pairs, value_at
from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule


def _pair_evidence(ctx: RunContext, pair, th: Thresholds) -> dict | None:
    """Figures of one train/val pair, or None when the pair cannot be judged."""
    v, t = pair.val, pair.train
    fv = ctx.feature(v)
    sg = sign_of(pair.direction)
    n_val = ctx.x(v, "n_finite")
    best, final = ctx.x(v, "best_value"), ctx.x(v, "final_value")
    best_step, final_step = fv.get("best_step"), fv.get("final_step")
    noise_v = noise_of(ctx, v)
    spacing = spacing_of(ctx, v)
    if not (n_val >= th.min_val_points and math.isfinite(best) and math.isfinite(final) and best_step is not None
            and math.isfinite(noise_v) and math.isfinite(spacing)):
        return None
    rise = sg * (final - best)  # > 0: the held-out curve ended worse than its best
    rise_rel = rise / abs(best) if best != 0 else math.nan
    rise_noise = rise / noise_v
    evals_after = (final_step - best_step) / spacing
    # training progress after the held-out best, read on the train curve's fitted segments
    t_at_best = value_at(ctx, t, best_step)
    t_final = ctx.x(t, "final_value")
    noise_t = noise_of(ctx, t)
    train_gain = sg * (t_at_best - t_final)  # > 0: train kept improving
    train_gain_noise = train_gain / noise_t if math.isfinite(noise_t) and noise_t > 0 else (
        math.inf if train_gain > 0 else 0.0)
    train_gain_rel = train_gain / abs(t_at_best) if t_at_best else math.nan
    tz = ctx.x(t, "tail_slope_z")  # evidence only: a multi-epoch staircase has flat tails within epochs
    vz = ctx.x(v, "tail_slope_z")
    val_tail_z = sg * vz if math.isfinite(vz) else 0.0  # > 0: the held-out tail is still getting worse
    # a single noisy end point hides a clear rise: a smaller rise counts when the held-out
    # tail's own trend (HAC slope over the last quarter) confirms it
    risen = rise_noise >= th.min_rise_noise or (rise_noise >= th.min_rise_noise_trend and val_tail_z >= th.min_val_tail_z)
    # a task score whose best is its first evaluation never learned (stuck at chance, as in
    # a 4-class classifier flat at 28.6%): UNDERFITTING's case, not overfitting. A loss may
    # legitimately be best at its first eval (the first eval came after the fit).
    never_learned = pair.kind not in ("loss", "perplexity") and fv.get("step_first") is not None \
        and best_step <= fv["step_first"]
    ok = (not never_learned and rise_rel >= th.min_rise_rel and risen and evals_after >= th.min_evals_after
          and train_gain_noise >= th.min_train_gain_noise and train_gain_rel >= th.min_train_gain_rel)
    best_raw = fv["extra"].get("best_step_raw")
    return dict(ok=ok, train=t, val=v, kind=pair.kind, direction=pair.direction,
                val_best=best, val_best_step=int(best_step), val_best_raw_step=None if best_raw is None else int(best_raw),
                val_best_raw=ctx.x(v, "best_value_raw"), val_final=final, val_final_step=int(final_step),
                val_noise=noise_v, val_points=int(n_val), val_spacing=spacing, rise=rise, rise_rel=rise_rel,
                rise_noise=rise_noise, evals_after_best=evals_after, train_at_val_best=t_at_best, train_final=t_final,
                train_gain=train_gain, train_gain_rel=train_gain_rel, train_gain_noise=train_gain_noise,
                train_tail_slope_z=tz, val_tail_slope_z=vz)


@rule(code="OVERFITTING", summary="A held-out curve turned worse after its best while training kept improving.",
      scope="cross")
def overfitting(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: per train/held-out pair of one objective (same kind and direction; HF
    ``loss`` pairs with ``eval_loss``): the held-out curve's smoothed best value and step,
    its lowest logged value and step, its final value, the rise since the best (relative
    and in noise units; a smaller rise counts when the held-out tail slope is itself
    significantly worsening), the number of evaluations since the best; the train curve's
    value at the held-out best step (from its fitted segments), its final value and tail
    slope z. Early stopping: the step at which patience P evaluations without a new best
    would have stopped, and the share of the run's steps after it.
    Why: a held-out curve that leaves its minimum by more than its noise and a relative
    margin (Prechelt's generalisation loss GL = val/best - 1) while the training curve
    keeps improving means the model fits what does not generalise; a one-epoch uptick
    (UMLAUT's rule) is not enough, so the rise is measured on the end level against the
    smoothed best and in noise units.
    Advice: keep the checkpoint nearest the best step; add early stopping (patience P)
    or more regularisation (weight decay, dropout, fewer epochs, more data); check that
    the held-out set is not leaking into training.
    A task score (accuracy, F1, ...) whose best is its first evaluation is not judged:
    it never learned (UNDERFITTING), it did not overfit.
    Known false alarms: a tiny held-out set whose noise is underestimated from a few
    points; a deliberate LR warm restart or data-mixture change (see the events); the
    early-stopping step is computed from the median eval spacing and the lowest logged
    value, so on uneven eval cadences it is approximate and it is an upper bound
    (noisy evaluations may stop a run earlier).
    """
    found: dict[str, list[dict]] = {}
    for pair in train_val_pairs(ctx):
        ev = _pair_evidence(ctx, pair, th)
        if ev is not None and ev["ok"]:
            found.setdefault(pair.objective, []).append(ev)
    out = []
    for objective, evs in sorted(found.items()):
        # lead: a loss pair first (the quantity the model optimises), then the largest rise
        evs.sort(key=lambda e: (e["kind"] not in ("loss", "perplexity"), -e["rise_noise"]))
        lead = evs[0]
        metrics = []
        for e in evs:
            for m in (e["train"], e["val"]):
                if m not in metrics:
                    metrics.append(m)
        run_start, run_end = span_of(ctx, metrics)
        best_ckpt = lead["val_best_raw_step"] if lead["val_best_raw_step"] is not None else lead["val_best_step"]
        stop = best_ckpt + th.patience * lead["val_spacing"]
        stops = stop < lead["val_final_step"]
        stop_step = int(round(stop)) if stops else None
        total = (run_end - run_start) if run_end is not None and run_start is not None else math.nan
        saved = (run_end - stop) / total if stops and total > 0 else 0.0
        conf = logistic((lead["rise_noise"] - th.min_rise_noise) / 2.0) * (1 - 0.5 ** lead["evals_after_best"])
        conf = min(th.max_confidence, max(0.5, conf))
        others = len(evs) - 1
        msg = (f"{lead['val']} bottomed out at step {fmt_step(best_ckpt)} and has "
               f"{'risen' if lead['direction'] == 'min' else 'fallen'} {pct(lead['rise_rel'])} since "
               f"({fmt(lead['val_best'])} -> {fmt(lead['val_final'])}, {fmt(lead['rise_noise'], 2)} noise levels) "
               f"while {lead['train']} kept improving ({fmt(lead['train_at_val_best'])} -> {fmt(lead['train_final'])}); "
               f"best checkpoint step {fmt_step(best_ckpt)}"
               + (f", early stopping with patience {th.patience} would have stopped at step {fmt_step(stop_step)} "
                  f"and saved {pct(saved)} of the steps" if stops else
                  f", early stopping with patience {th.patience} would not have stopped before the end")
               + (f"; {others} more held-out curve{'s' if others > 1 else ''} of {objective} overfit too" if others else "")
               + ".")
        evidence = dict(objective=objective, lead=_round(lead), pairs=[_round(e) for e in evs[1:]],
                        onset_step=lead["val_best_step"], best_checkpoint_step=best_ckpt, patience=th.patience,
                        early_stop_step=stop_step, compute_saved_rel=saved, run_start_step=run_start,
                        run_end_step=run_end, thresholds=th.as_dict())
        advice = (f"Keep the checkpoint nearest step {fmt_step(best_ckpt)}; add early stopping on {lead['val']} "
                  f"(patience {th.patience}) or more regularisation (weight decay, dropout, fewer epochs, more data); "
                  "check that held-out examples do not leak into training.")
        out.append(ctx.finding("OVERFITTING", "warning", conf, metrics, best_ckpt, lead["val_final_step"],
                               msg, evidence, advice))
    return out


def _round(e: dict) -> dict:
    return {k: v for k, v in e.items() if k != "ok"}
