"""Helpers shared by the per-objective rules (read features/segments only)."""

from __future__ import annotations

import math

from engine.rules.base import RunContext

# logged changes that explain a jump of the loss (REGIME_SHIFT, LOSS_SPIKE)
CHANGE_EVENTS = ("lr_change", "data_refresh", "resume", "phase")

SCORED_KINDS = ("loss", "perplexity", "accuracy", "reward")


def curves(ctx: RunContext, *, kinds=("loss", "perplexity"), splits=("train", "none", "val", "test"),
           min_points: int = 1) -> list[str]:
    """Metrics of these kinds and splits that have a direction and a features row with
    at least ``min_points`` finite points, train first."""
    out = []
    for m in ctx.select(kind=kinds, split=splits):
        if ctx.role(m)["direction"] == "none" or ctx.feature(m) is None:
            continue
        if finite_points(ctx, m) < min_points:
            continue
        out.append(m)
    order = {"train": 0, "none": 1, "val": 2, "test": 3}
    return sorted(out, key=lambda m: (order.get(ctx.role(m)["split"], 4), m))


def finite_points(ctx: RunContext, m: str) -> int:
    v = ctx.x(m, "n_finite")
    if math.isnan(v):
        v = ctx.x(m, "n_points") - (0 if math.isnan(ctx.x(m, "n_nonfinite")) else ctx.x(m, "n_nonfinite"))
    return 0 if math.isnan(v) else int(v)


def sign(ctx: RunContext, m: str) -> float:
    """+1 when lower is better, -1 when higher is better."""
    return -1.0 if ctx.role(m)["direction"] == "max" else 1.0


def noise_of(ctx: RunContext, m: str) -> float:
    """The residual noise around the smoothed curve (the spread a reader sees), else the
    difference-based noise; NaN when neither is known."""
    for key in ("noise_resid", "noise"):
        v = ctx.x(m, key)
        if math.isfinite(v) and v > 0:
            return v
    return math.nan


def total_improvement(ctx: RunContext, m: str) -> float:
    """initial - best in oriented units (> 0 when the curve improved)."""
    return sign(ctx, m) * (ctx.x(m, "initial_value") - ctx.x(m, "best_value"))


def span(ctx: RunContext, m: str) -> float:
    f = ctx.feature(m)
    if f is None or f.get("step_first") is None or f.get("final_step") is None:
        return math.nan
    return float(f["final_step"] - f["step_first"])


def oriented_kind(ctx: RunContext, m: str, kind: str) -> str:
    """A segment kind in quality terms: 'improving', 'flat', 'worsening'."""
    if kind == "plateau":
        return "flat"
    up = kind == "ascent"
    better_up = ctx.role(m)["direction"] == "max"
    return "improving" if up == better_up else "worsening"


def stretch_line(ctx: RunContext, m: str, segs: list[dict]) -> dict | None:
    """One least-squares line through a stretch of consecutive segments, pooled from the
    segments' own fits (no raw arrays): each segment contributes its points' count (its
    length over the working spacing, median_spacing x block_size), mean step (its middle),
    mean value (its level) and within-segment Sxx / Sxy (slope x Sxx); the pooled slope is
    the OLS slope of the union. Its standard error pools the segments' HAC long-run
    variances (slope_se^2 x Sxx each, weighted by points) over the union's Sxx: it is
    autocorrelation- and sample-size-aware (and, leaving out the misfit between the
    pieces, rather small: strict for a flatness test). Returns dict(slope, se, level, mid,
    step_start, step_end, change, change_se, level_se) or None when a slope is missing;
    level_se is the HAC standard error of the level (the pooled long-run variance over the
    points' count), so the line's value at a step t has the standard error
    sqrt(level_se^2 + ((t - mid) se)^2) (see line_value)."""
    if not segs:
        return None
    d = ctx.x(m, "median_spacing") * max(ctx.x(m, "block_size"), 1.0) if math.isfinite(ctx.x(m, "block_size")) \
        else ctx.x(m, "median_spacing")
    rows = []
    for g in segs:
        sl, lv = g.get("slope"), g.get("level")
        if sl is None or lv is None or not (math.isfinite(sl) and math.isfinite(lv)):
            return None
        length = float(g["step_end"] - g["step_start"])
        n = length / d + 1.0 if math.isfinite(d) and d > 0 else 2.0
        sxx = n * (n * n - 1.0) / 12.0 * (d * d if math.isfinite(d) and d > 0 else length * length)
        se = g.get("slope_se")
        lrv = se * se * sxx if se is not None and math.isfinite(se) else math.nan
        rows.append((n, 0.5 * (g["step_start"] + g["step_end"]), lv, sl, sxx, lrv))
    ntot = sum(r[0] for r in rows)
    mid = sum(r[0] * r[1] for r in rows) / ntot
    ybar = sum(r[0] * r[2] for r in rows) / ntot
    sxx = sum(r[4] + r[0] * (r[1] - mid) ** 2 for r in rows)
    sxy = sum(r[3] * r[4] + r[0] * (r[1] - mid) * (r[2] - ybar) for r in rows)
    slope = sxy / sxx if sxx > 0 else 0.0
    lrv = sum(r[0] * r[5] for r in rows) / ntot if all(math.isfinite(r[5]) for r in rows) else math.nan
    se = math.sqrt(lrv / sxx) if sxx > 0 and math.isfinite(lrv) else math.nan
    a, b = segs[0]["step_start"], segs[-1]["step_end"]
    return dict(slope=slope, se=se, level=ybar, mid=mid, step_start=a, step_end=b,
                change=slope * (b - a), change_se=se * (b - a) if math.isfinite(se) else math.nan,
                level_se=math.sqrt(lrv / ntot) if math.isfinite(lrv) else math.nan)


def line_value(line: dict, step: float) -> tuple[float, float]:
    """(value, HAC standard error) of a stretch_line at ``step``: the intercept at the mean
    step and the slope of an OLS line are uncorrelated, so the variance is
    level_se^2 + ((step - mid) se)^2 (NaN when an SE is missing)."""
    v = line["level"] + line["slope"] * (step - line["mid"])
    var = line["level_se"] ** 2 + ((step - line["mid"]) * line["se"]) ** 2
    return v, math.sqrt(var) if math.isfinite(var) else math.nan


def practically_flat(ctx: RunContext, m: str, g, within_noise: float, z: float = 0.0) -> bool:
    """A plateau segment, or (within_noise > 0) one whose fitted line moves by at most
    ``within_noise`` noise levels over its length: AR noise makes the slope of a flat
    stretch statistically "significant" (up or down) while it moves less than the noise.

    ``g`` may be a list of consecutive segments: the stretch is judged as one (its pooled
    line, see stretch_line), so a stall that the segmentation cut into wander pieces is
    flat when the whole moves little, whatever each piece does. With z > 0 the move may
    exceed the band by up to z of its own HAC standard errors (the stretch is flat unless
    its move is shown, at z, to exceed the noise band: on short stretches with strongly
    autocorrelated noise a flat stall's line moves by a few noise levels)."""
    if isinstance(g, (list, tuple)):
        if len(g) == 1 and g[0]["kind"] == "plateau":
            return True
        line = stretch_line(ctx, m, list(g))
        noise = noise_of(ctx, m)
        if line is None or within_noise <= 0 or not math.isfinite(noise):
            return False
        slack = z * line["change_se"] if z > 0 and math.isfinite(line["change_se"]) else 0.0
        return abs(line["change"]) - slack <= within_noise * noise
    if g["kind"] == "plateau":
        return True
    sl, noise = g.get("slope"), noise_of(ctx, m)
    if not (within_noise > 0 and sl is not None and math.isfinite(sl) and math.isfinite(noise)):
        return False
    change = abs(sl * (g["step_end"] - g["step_start"]))
    se = g.get("slope_se")
    slack = z * se * (g["step_end"] - g["step_start"]) if z > 0 and se is not None and math.isfinite(se) else 0.0
    return change - slack <= within_noise * noise


def cuts(segs: list[dict], j: int, stop_steps) -> bool:
    """A step of ``stop_steps`` (level shifts: segment starts; logged events: anywhere)
    lies after the start of segment j - 1 and within segment j: a stall reaching back
    over segment j - 1 would cross it."""
    lo, hi = segs[j - 1]["step_start"], segs[j]["step_end"]
    return any(lo < s <= hi for s in stop_steps)


def trailing_flat_start(ctx: RunContext, m: str):
    """Start step of the trailing run of non-improving segments (None when the last
    segment improves)."""
    segs = ctx.segments_of(m)
    start = None
    for g in reversed(segs):
        if oriented_kind(ctx, m, g["kind"]) == "improving":
            break
        start = g["step_start"]
    return start


def group_by_objective(ctx: RunContext, metrics: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in metrics:
        out.setdefault(ctx.role(m)["objective"], []).append(m)
    return out


def clip01(x: float) -> float:
    return 0.0 if not math.isfinite(x) else min(1.0, max(0.0, x))


def fitted_gain(ctx: RunContext, m: str) -> float:
    """expected_gain_rel when the power-law fit is plausible (converged, asymptote on
    the right side of the best value, non-negative for a loss), else NaN."""
    f = ctx.feature(m)
    if f is None or not f.get("fit_ok"):
        return math.nan
    l_inf, best = ctx.x(m, "fit_l_inf"), ctx.x(m, "best_value")
    if not (math.isfinite(l_inf) and math.isfinite(best)):
        return math.nan
    s = sign(ctx, m)
    if s * (l_inf - best) > 0.0:  # asymptote worse than the best seen
        return math.nan
    if ctx.role(m)["kind"] in ("loss", "perplexity") and l_inf < 0 <= ctx.x(m, "min_value"):
        return math.nan
    return ctx.x(m, "expected_gain_rel")


def tail_progress(ctx: RunContext, m: str) -> dict:
    """How much the tail (last quarter) still improves: its change in oriented units
    (> 0 = improving), in noise units, as a share of the total improvement, and its
    slope z (oriented: > 0 = improving)."""
    s = sign(ctx, m)
    change = -s * ctx.x(m, "tail_change")
    noise = noise_of(ctx, m)
    total = total_improvement(ctx, m)
    z = -s * ctx.x(m, "tail_slope_z")
    return dict(change=change, change_noise=change / noise if noise and math.isfinite(noise) else math.nan,
                share=change / total if total and total > 0 else math.nan, z=z, total=total, noise=noise)


def line_at(g: dict, step: float) -> float:
    """The fitted line of a segment at ``step`` (its level is the value at the mean step,
    about the middle of the segment)."""
    mid = 0.5 * (g["step_start"] + g["step_end"])
    slope = g["slope"] if g.get("slope") is not None and math.isfinite(g["slope"]) else 0.0
    return g["level"] + slope * (step - mid)


def stall_onset(ctx: RunContext, m: str, segs: list[dict], i: int, within_noise: float, stop_steps=()) -> int:
    """Index of the first segment of the stall that ends with segment ``i`` (a plateau):
    walk back over earlier plateau segments and over improving segments whose fitted line
    already starts within ``within_noise`` noise levels of the plateau's level (a slow
    descent the segmentation split off the stall: AR noise makes the first part of a
    flat stretch look like a significant but practically empty slope). Never crosses a
    step in ``stop_steps`` (level shifts, logged events; see cuts). Returns ``i`` when
    nothing merges."""
    noise = noise_of(ctx, m)
    level = segs[i]["level"]
    s = sign(ctx, m)
    j = i
    while j > 0 and not cuts(segs, j, stop_steps):
        g = segs[j - 1]
        if g["kind"] == "plateau":
            j -= 1
            continue
        if oriented_kind(ctx, m, g["kind"]) != "improving" or not math.isfinite(noise) or level is None:
            break
        if s * (line_at(g, g["step_start"]) - level) > within_noise * noise:
            break
        j -= 1
    return j


def floor_start(ctx: RunContext, m: str, rel: float):
    """Step where the curve came within ``rel`` of its best value (the floor), from the
    steps where it had gained 90% and 99% of its total improvement: an exponential
    approach through those two points (rate ln 10 / (step_99pct - step_90pct), excess
    1% of the improvement at step_99pct) reaches rel * |best| at
    step_99pct + ln(0.01 * improvement / (rel * |best|)) / rate. Clamped to the curve's
    steps. step_near_best (within noise of the best: wider than rel on noisy curves,
    so early) when the two steps are missing or not increasing."""
    f = ctx.feature(m)
    ex = f["extra"]
    near = ex.get("step_near_best")
    t90, t99 = f.get("step_90pct"), ex.get("step_99pct")
    total, best = total_improvement(ctx, m), ctx.x(m, "best_value")
    if t90 is None or t99 is None or t99 <= t90 or not (total > 0) or not (math.isfinite(best) and best != 0):
        return near
    rate = math.log(10.0) / (t99 - t90)
    t = t99 + math.log(0.01 * total / (rel * abs(best))) / rate
    lo, hi = f.get("step_first"), f.get("final_step")
    if lo is not None:
        t = max(t, lo)
    if hi is not None:
        t = min(t, hi)
    return int(round(t))


def taken_back(ctx: RunContext, m: str, step: int, delta: float):
    """Share of a jump at ``step`` that the segment after it takes back beyond the trend
    of the segment before it: -(slope_after - slope_before) x length_after / delta. About
    0 or below for a new level the curve keeps (the trend goes on, or flattens, from the
    new level); near 1 for a transient that decays back (a loss spike recovering slowly
    over hundreds of steps, which the spike detector's rolling window follows up and
    misses). None when the boundary is not a segment start."""
    segs = ctx.segments_of(m)
    for i in range(1, len(segs)):
        left, right = segs[i - 1], segs[i]
        if right["step_start"] != step:
            continue
        if left["slope"] is None or right["slope"] is None or not delta:
            return None
        if not (math.isfinite(left["slope"]) and math.isfinite(right["slope"])):
            return None
        return -(right["slope"] - left["slope"]) * (right["step_end"] - right["step_start"]) / delta
    return None
