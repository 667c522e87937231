"""DIVERGENCE: a training loss climbs far above its best and stays there."""

from __future__ import annotations

import math

import numpy as np

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, logistic, pct, rule
from engine.rules.common import curves, finite_points, group_by_objective, line_at, noise_of, sign


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
    Onset: a gradual climb starts where a fitted rise leaves the pre-rise trend (see
    _climb_onset: a power-law decay that goes on after the onset plus an exponentially
    growing rise from t0, fitted to the segments' lines with their HAC SEs); the smoothed
    best (where the curve turns) is late for it, since the decay still outweighs the
    young rise for a while, and with autocorrelated noise on a flat bottom it lands
    anywhere on that bottom (seeds 1-4, 9-12 x 16: 56 of 65 climbs within the label
    tolerance, errors -1.5 to +1.9 tolerances; the fit: 63 of 65, median +0.02, the
    middle half within +-0.2). Without a fit (fewer than climb_min_segments segments from
    climb_fit_from_rel on, no ascent after the best) the smoothed best. An
    abrupt one (a blow-up, a collapse to ln(V)) starts at its jump: the first worsening
    segment after the best that, with the breaks at both its ends, carries at least
    jump_share of the whole rise (final - best) and starts within min_rise_noise noise
    levels of the best (a climb's steep end starts far above it); within it the jump sits where a step
    from the level before (the previous segment's line at its end, y0) to the level
    after (the next segment's line at its start, y1) puts the segment's mean (its
    least-squares level): step = end - (end - start) x (level - y0) / (y1 - y0), exact
    for a step and independent of the noise. The smoothed best alone is wrong there:
    before a jump the curve is often flat within its autocorrelated noise for many
    steps (constant LR), and the argmin of the smoothed curve lands anywhere on that
    stretch (seeds 1-4: 1,000-1,200 steps early on 3 of 48 jumps). On seeds 1-4 x 24
    the first worsening segment of a climb carries at most 25% of the rise, that of a
    jump at least 83%. The last segment is never a jump: no level after it is seen, and
    a climb's steep end runs to the end of the log (two climbs of seeds 9 and 12 were
    taken for jumps there, 8-10 tolerances late).
    Short curves (short_min_points to min_points finite points, too few to smooth or to
    estimate noise) need stronger evidence: the end at least short_min_rise_rel above
    the raw best and a collapse there (a constant tail, or the end at ln(k)); a healthy
    short curve falls or wanders and never passes both.
    Advice: restart from the checkpoint at or before the best step with a lower peak
    learning rate, longer warmup, tighter gradient clipping or a lower Adam beta2;
    check the data around the onset.
    The climb fit assumes the rise grows like exp(k t) (an instability feeding on itself)
    and starts on the curve's bottom; a rise that begins while the loss still falls fast,
    or grows like a low power of time (starting with zero slope), is not the model it
    fits (untested on such curves).
    Known false alarms: a deliberate change of task or data mixture that raises the loss
    (record it as an event); a second-stage run whose loss is on another scale.
    Validation losses are only listed with a diverging training loss, never alone (a
    rising validation loss alone is OVERFITTING).
    """
    hits, short = [], {}
    for m in curves(ctx, splits=("train", "none"), min_points=th.short_min_points):
        best, final = ctx.x(m, "best_value"), ctx.x(m, "final_value")
        if finite_points(ctx, m) < th.min_points:
            ev = _short_collapse(ctx, m, th)
            if ev is not None:
                short[m] = ev
                hits.append(m)
            continue
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
        jump = _jump_onset(ctx, m, th) if m not in short else None
        climb = _climb_onset(ctx, m, th) if m not in short and jump is None else None
        if jump is not None:
            onset = jump["step"]
        elif climb is not None:
            onset = climb["step"]
        noise_tail = ctx.x(m, "noise_tail")
        if m in short:  # too few points to smooth: the raw best and the rise from it
            best, onset, rise_rel = short[m]["best"], short[m]["best_step"], short[m]["rise_rel"]
            nz = noise_of(ctx, m)
            rise_noise = (final - best) / nz if nz > 0 else math.inf
        # a flat end at ln(V): uniform predictions
        flat_ln = _uniform_count(final, th)
        # held-out curves of the same objective that rose too are listed with it
        vals = [v for v in curves(ctx, splits=("val", "test")) if ctx.role(v)["objective"] == obj
                and ctx.x(v, "since_best_rel") >= th.min_rise_rel]
        conf = logistic(th.conf_slope * (math.log(max(rise_rel, 1e-9) / th.min_rise_rel))
                        + th.conf_bias)
        if jump is not None:
            where = f"jumped at step {fmt_step(onset)} (after its best {fmt(best)} at step {fmt_step(f.get('best_step'))})"
        elif climb is not None:
            where = (f"started an accelerating rise at step {fmt_step(onset)} (fitted; its best {fmt(best)} "
                     f"at step {fmt_step(f.get('best_step'))})")
        else:
            where = f"bottomed out at {fmt(best)} at step {fmt_step(onset)}"
        msg = (f"{m} {where} and ended at {fmt(final)}, "
               f"{pct(rise_rel)} above its best ({fmt(rise_noise, 3)} noise levels)"
               + (f", flat at ln({flat_ln:,}) = {math.log(flat_ln):.2f}: the model predicts uniformly" if flat_ln else "")
               + ".")
        ev = dict(metric=m, best_value=best, best_step=onset if m in short else f.get("best_step"),
                  onset_step=onset, onset_kind="jump" if jump is not None else "rise" if climb is not None else "turn",
                  jump=jump, climb=climb,
                  final_value=final, final_step=end,
                  since_best_rel=rise_rel, since_best_noise=rise_noise, noise=noise_of(ctx, m),
                  noise_tail=noise_tail, flat_at_ln=flat_ln, also=ms[1:] + vals,
                  min_rise_rel=th.min_rise_rel, min_rise_noise=th.min_rise_noise,
                  short_curve=short.get(m))
        advice = (f"Restart from the checkpoint nearest step {fmt_step(onset)} with a lower learning rate, a longer "
                  "warmup or tighter gradient clipping (or Adam beta2 0.95); inspect the data around the onset.")
        out.append(ctx.finding("DIVERGENCE", "critical", conf, ms + vals, onset, end, msg, ev, advice))
    return out


def _jump_onset(ctx: RunContext, m: str, th: Thresholds):
    """The step of an abrupt rise: the first worsening segment ending after the best step
    whose rise from the level before it (the previous segment's line at its end) to the
    level after it (the next segment's line at its start, else its own line's end) is at
    least jump_share of the whole rise (final - best), and that starts from a level still
    within min_rise_noise noise levels of the best (not yet diverged by this rule's own
    bar: the steep last segments of a gradual climb start far above it, seeds 1-4 x 24:
    >= 12.7 noise levels, jumps <= 6); the jump is placed where a step
    between those two levels gives the segment's mean (its least-squares level).
    None for a gradual climb (no segment carries that share) or without segments."""
    segs = ctx.segments_of(m)
    f = ctx.feature(m)
    s = sign(ctx, m)
    best_step = f.get("best_step")
    best, noise = ctx.x(m, "best_value"), noise_of(ctx, m)
    rise = s * (ctx.x(m, "final_value") - best)
    if best_step is None or not (math.isfinite(rise) and rise > 0 and noise > 0) or th.jump_share <= 0:
        return None
    for i, g in enumerate(segs):
        worse = g["kind"] == ("ascent" if s > 0 else "descent")
        if not worse or g["step_end"] <= best_step or g.get("level") is None or not math.isfinite(g["level"]):
            continue
        if i + 1 == len(segs):
            break  # the last segment: no level after it is seen, the rise goes on to the end (a climb's steep end)
        y0 = s * (line_at(segs[i - 1], segs[i - 1]["step_end"]) if i > 0 else best)
        y1 = s * (line_at(segs[i + 1], segs[i + 1]["step_start"]) if i + 1 < len(segs) else line_at(g, g["step_end"]))
        if not (math.isfinite(y0) and math.isfinite(y1)) or y1 - y0 < th.jump_share * rise:
            continue
        if not (y0 - s * best <= th.min_rise_noise * noise):
            continue  # the curve had already diverged before it: a climb's steep end, not the jump
        frac = min(max((s * g["level"] - y0) / (y1 - y0), 0.0), 1.0)  # share of the segment after the jump
        step = int(round(g["step_end"] - (g["step_end"] - g["step_start"]) * frac))
        return dict(step=step, segment_start=g["step_start"], segment_end=g["step_end"], level_before=s * y0,
                    level_after=s * y1, share_of_rise=(y1 - y0) / rise)
    return None


def _uniform_count(final: float, th: Thresholds):
    """The first class/vocabulary count k with ``final`` within uniform_tol_rel of ln(k), else None."""
    if not math.isfinite(final):
        return None
    for k in th.uniform_counts:
        if abs(final - math.log(k)) <= th.uniform_tol_rel * math.log(k):
            return k
    return None


def _short_collapse(ctx: RunContext, m: str, th: Thresholds):
    """A curve too short to smooth (short_min_points <= n < min_points) diverged when it
    ended far above its raw best (by short_min_rise_rel of it) and collapsed there: the
    last points are a constant (tail change and difference noise within short_flat_rel
    of the level: most steps repeat the value) or
    the end sits at ln(V) of a class/vocabulary count. A falling or noisy short curve
    never passes both. Returns the evidence (raw best, its step, the rise) or None."""
    best = ctx.x(m, "best_value_raw")
    final = ctx.x(m, "final_value")
    if not (math.isfinite(best) and math.isfinite(final)) or best <= 0:
        return None
    rise_rel = (final - best) / abs(best)
    if rise_rel < th.short_min_rise_rel:
        return None
    tail, noise = ctx.x(m, "tail_change"), ctx.x(m, "noise")
    # a constant: the tail does not move and most steps repeat the value (difference noise ~ 0)
    flat = (math.isfinite(tail) and abs(tail) <= th.short_flat_rel * abs(final)
            and math.isfinite(noise) and noise <= th.short_flat_rel * abs(final))
    flat_ln = _uniform_count(final, th)
    if not (flat or flat_ln):
        return None
    return dict(best=best, best_step=ctx.feature(m)["extra"].get("best_step_raw"), rise_rel=rise_rel,
                flat_tail=flat, n_points=finite_points(ctx, m))


def _climb_onset(ctx: RunContext, m: str, th: Thresholds):
    """The start of a gradual (accelerating) rise, fitted to the segment table.

    Model (oriented values, lower is better): y(t) = c0 + c1 d_q(t) + a (exp(k (t - t0)_+ /
    span) - 1), a >= 0: the pre-rise trend a power-law decay d_q(t) = t^-q (log t for
    q = 0) that goes on after the onset, plus a rise that grows exponentially from t0 (an
    instability grows in proportion to its size; k is its e-foldings per span of the log). The segments are least-squares lines of the curve, so the model
    is fitted to them as they are to the data: each segment's observed (level, slope) is
    compared with the least-squares line of the model over the same steps, the level
    residual weighted by sqrt(n / (slope_se^2 Sxx)) and the slope residual by 1/slope_se
    (both from the segment's HAC slope SE: the long-run variance slope_se^2 Sxx, n points
    of spacing median_spacing x block_size): a projected, autocorrelation-aware least
    squares. c0, c1, a are solved exactly; q (climb_decay_powers), k (a log grid,
    climb_rates) and t0 (climb_grid steps, then refined) by search. The growth rate and
    the onset trade off (a faster rise starts later): k must be searched finely (seeds
    1-4, 9-12 x 16: 41 rates from 0.5 to 100, 61 of 65 climbs within tolerance; 161
    rates, 63; 321, 63). Segments from climb_fit_from_rel of the
    span on take part (the power-law regime; the first steps are warmup). t0 is searched
    from step_near_best (the first step the smoothed curve is within 2 noise levels or 1%
    of its best) on: a rise starts on the curve's bottom; earlier, a tiny fast-growing
    rise trades off against the pre-rise trend's curvature and the fit cannot tell them
    apart (seeds 1-4, 9-12 x 16: the only two fits before step_near_best were 2.4-3.5
    tolerances early; every labelled onset lies at or after it within 0.1 tolerance).
    None without an ascent after the best, with fewer than climb_min_segments segments in
    the fit, or when no rise improves the fit."""
    f = ctx.feature(m)
    s = sign(ctx, m)
    segs = ctx.segments_of(m)
    best_step, T, first = f.get("best_step"), f.get("final_step"), f.get("step_first")
    if best_step is None or T is None or first is None or T <= first:
        return None
    if not any(g["kind"] == ("ascent" if s > 0 else "descent") and g["step_end"] > best_step for g in segs):
        return None
    d = ctx.x(m, "median_spacing") * max(ctx.x(m, "block_size"), 1.0) if math.isfinite(ctx.x(m, "block_size")) \
        else ctx.x(m, "median_spacing")
    if not (math.isfinite(d) and d > 0):
        return None
    use = [g for g in segs if g["step_start"] >= first + th.climb_fit_from_rel * (T - first)
           and g["step_end"] > g["step_start"]]
    if len(use) < th.climb_min_segments:
        return None
    a = np.array([g["step_start"] for g in use], dtype=float)
    b = np.array([g["step_end"] for g in use], dtype=float)
    lev = np.array([s * g["level"] if g["level"] is not None else math.nan for g in use], dtype=float)
    slo = np.array([s * g["slope"] if g["slope"] is not None else math.nan for g in use], dtype=float)
    se = np.array([g["slope_se"] if g["slope_se"] is not None else math.nan for g in use], dtype=float)
    if not (np.isfinite(lev).all() and np.isfinite(slo).all()):
        return None
    ok = np.isfinite(se) & (se > 0)
    if not ok.any():
        return None
    se = np.where(ok, se, np.median(se[ok]))
    n = (b - a) / d + 1.0
    sxx = n * (n * n - 1.0) / 12.0 * d * d
    w_lev, w_slo = np.sqrt(n / (se * se * sxx)), 1.0 / se
    G = 33  # points per segment standing in for its working points (the model is smooth on them)
    grid = a[:, None] + (b - a)[:, None] * np.linspace(0.0, 1.0, G)[None, :]
    gc = grid - grid.mean(axis=1, keepdims=True)
    gxx = (gc * gc).sum(axis=1)

    def col(v):  # the model's least-squares lines over the segments, weighted: (..., 2 x segments)
        return np.concatenate([v.mean(axis=-1) * w_lev, (v * gc).sum(axis=-1) / gxx * w_slo], axis=-1)

    y = col(np.stack([lev[:, None] + slo[:, None] * gc]))[0]  # == the observed (level, slope), weighted
    tt = grid - first + d  # steps counted from the log's start (> 0 for the power law)
    lo = f["extra"].get("step_near_best") if isinstance(f.get("extra"), dict) else None
    lo = max(float(lo if lo is not None else best_step), a[0])
    hi = T - th.climb_end_rel * (T - first)
    if hi <= lo:
        return None
    bases = []
    for q in th.climb_decay_powers:
        F = np.column_stack([col(np.ones_like(grid)), col(np.log(tt) if q == 0 else tt ** (-q))])
        Q, _ = np.linalg.qr(F)
        yr = y - Q @ (Q.T @ y)
        bases.append((q, Q, yr, float(yr @ yr)))
    base_rss = min(r[3] for r in bases)
    lo_r, hi_r, nr = th.climb_rates
    rates = np.geomspace(lo_r, hi_r, int(nr))

    def search(t0s):
        best = None
        u = np.clip(grid[None, :, :] - t0s[:, None, None], 0.0, None) / (T - first)
        for k in rates:
            R = col(np.expm1(k * u))  # (t0, 2 x segments)
            for q, Q, yr, yy in bases:
                Rr = R - (R @ Q) @ Q.T
                num, den = Rr @ yr, np.einsum("ij,ij->i", Rr, Rr)
                gain = np.where((num > 0) & (den > 0), num * num / np.where(den > 0, den, 1.0), 0.0)
                j = int(np.argmax(gain))
                if gain[j] > 0 and (best is None or yy - gain[j] < best[0]):
                    best = (yy - gain[j], float(t0s[j]), k, q, float(num[j] / den[j]))
        return best

    best = search(np.linspace(lo, hi, th.climb_grid))
    if best is None:
        return None
    h = (hi - lo) / (th.climb_grid - 1)
    fine = search(np.linspace(max(lo, best[1] - h), min(hi, best[1] + h), 21))
    if fine is not None and fine[0] < best[0]:
        best = fine
    rss, t0, k, q, amp = best
    step = int(round(t0 / d) * d) if d >= 1 else int(round(t0))
    return dict(step=step, rate=float(k), decay_power=q, amplitude=s * amp * math.expm1(k), rss=rss, rss_no_rise=base_rss,
                n_segments=len(use), search_from=int(round(lo)))
