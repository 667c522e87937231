"""ERRATIC: the training loss swings by much more than it improves."""

from __future__ import annotations

import math

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import curves, trailing_flat_start


def white_oscillation_bar(n: float, z: float, floor: float) -> float:
    """The oscillation index white noise exceeds with probability ~Phi(-z) at n points.

    The index is the share of the n - 2 neighbouring difference pairs whose signs differ,
    i.e. the turning points of the curve over n - 2. For i.i.d. values the number of
    turning points has mean 2(n - 2)/3 and variance (16n - 29)/90 (Kendall & Stuart),
    so the share has mean 2/3 and standard error sqrt((16n - 29)/90)/(n - 2): 0.030
    at 200 points, 0.0094 at 2000. The bar is 2/3 + z SE, and at least ``floor``."""
    if not (math.isfinite(n) and n > 3):
        return math.inf
    se = math.sqrt((16.0 * n - 29.0) / 90.0) / (n - 2.0)
    return max(floor, 2.0 / 3.0 + z * se)


@rule(code="ERRATIC", summary="The loss swings from step to step by far more than it improves (often: LR too high).")
def erratic(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: the step-to-step noise of the last quarter (MAD of differences) relative
    to the final level (noise_tail_rel) and to the improvement over that stretch; the
    oscillation index (share of sign changes of the differences: ~0.67 for white noise,
    ~0.5-0.6 for the autocorrelated noise of healthy training, near 1 for a loss that
    alternates up and down), which must exceed the white-noise level by oscillation_z of
    its standard error at the curve's number of points (turning-point test: SE
    sqrt((16n - 29)/90)/(n - 2), 0.030 at 200 points) and at least min_oscillation;
    the onset: the changepoint of the step-to-step noise level when the noise grew at
    least min_noise_change_ratio-fold there, else the start of the trailing stretch
    without progress. A noise level that jumped noise_jump_ratio-fold
    at one step stands in for the oscillation index (which the calm stretch before the
    swings dilutes).
    Why: with a learning rate too high for the curvature the optimizer overshoots back
    and forth across a valley: the loss alternates by a sizeable share of its level while
    its trend stops improving. Healthy training noise is smaller and positively
    correlated from step to step.
    Advice: lower the learning rate (x0.3-0.5) or increase the batch size / gradient
    accumulation; add or lengthen warmup; check for a too-small Adam epsilon or too-high
    beta2 with noisy gradients.
    Known false alarms: tiny batches make healthy training noisy (raise min_noise_rel);
    a fixed bar of 0.7 sat within 1.2 standard errors of white noise at 200 points: a
    healthy reward model with nearly white 9% noise read 0.70 (seed 2) and warned;
    healthy losses on seeds 1-4 stay below 2/3 + 1.2 SE, true erratic ones are >= 6 SE
    above (those within 3 SE, short and diluted by the calm stretch, pass by the jump);
    accuracy and reward curves are never judged (accuracy is steppy by nature, RL
    rewards are noisy by design); multi-task losses logged per batch from alternating
    tasks alternate by construction.
    """
    out = []
    for m in curves(ctx, splits=("train", "none"), min_points=th.min_points):
        final = ctx.x(m, "final_value")
        nt = ctx.x(m, "noise_tail")
        osc = ctx.x(m, "oscillation")
        if not (math.isfinite(final) and final != 0 and math.isfinite(nt)):
            continue
        rel = nt / abs(final)
        tail_change = ctx.x(m, "tail_change")
        progress = -tail_change if ctx.role(m)["direction"] == "min" else tail_change
        noise_vs_progress = nt / max(progress, 1e-300) if math.isfinite(progress) and progress > 0 else math.inf
        jumped = ctx.x(m, "noise_change_ratio") >= th.noise_jump_ratio  # swings began abruptly
        bar = white_oscillation_bar(ctx.x(m, "n_finite"), th.oscillation_z, th.min_oscillation)
        if rel < th.min_noise_rel or not (osc >= bar or jumped) \
                or noise_vs_progress < th.min_noise_vs_progress:
            continue
        f = ctx.feature(m)
        # onset: where the step-to-step noise level jumped (the swings begin), when that
        # change is large; else the start of the trailing stretch without progress
        nc_step, nc_ratio = f["extra"].get("noise_change_step"), ctx.x(m, "noise_change_ratio")
        if nc_step is not None and nc_ratio >= th.min_noise_change_ratio:
            start = int(nc_step)
        else:
            start = trailing_flat_start(ctx, m)
        if start is None:
            start = ctx.feature(m)["extra"].get("tail_start_step", f.get("step_first"))
        end = f.get("final_step")
        z = min((rel - th.min_noise_rel) / th.min_noise_rel, (osc - th.min_oscillation) / 0.05)
        conf = logistic(th.conf_slope * z + th.conf_bias)
        msg = (f"{m} swings by {pct(rel)} of its level from step to step (oscillation index {osc:.2f}) and has "
               f"not improved since step {fmt_step(start)}.")
        ev = dict(metric=m, noise_tail=nt, final_value=final, noise_tail_rel=rel, oscillation=osc,
                  tail_change=tail_change, noise_vs_progress=noise_vs_progress, start_step=start,
                  min_noise_rel=th.min_noise_rel, min_oscillation=th.min_oscillation, oscillation_bar=bar,
                  noise_jumped=bool(jumped))
        out.append(ctx.finding("ERRATIC", "warning", conf, [m], start, end, msg, ev,
                               "Lower the learning rate (x0.3-0.5) or raise the batch size; lengthen warmup; "
                               "check gradient clipping."))
    return out
