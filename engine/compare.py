"""Comparing runs: rank runs on a metric at equal steps, find where two runs part ways,
and read an LR range test.

Public API (polars frames and plain dicts; every figure is documented where computed):

- ``compare(store, metric, *, runs=None, group_by=None, at_step=None, ...)``: one row per
  run (or per group of seeds), ranked at one common step with a noise-aware standard
  error and a z saying whether the gap to the best is larger than the uncertainty.
- ``divergence_step(store, run_a, run_b, metric, *, z=3.0)``: the first step after which
  the smoothed curves differ by more than ``z`` combined noise levels and stay apart.
- ``lr_range_test(lr, loss)`` / ``lr_range_test(steps, loss, lr=lr)`` and
  ``lr_range_test_run(store, run)``: the suggested learning rate of an LR range test.
- ``overlay(store, metric, runs)``: raw and smoothed curves of several runs on one step
  axis (long frame, at most ``max_points`` per run), for the report's overlay panel.
- ``compare_cmd``: the ``losscope compare`` click command.

Everything here is vectorised numpy/polars over one metric of the compared runs
(read with a lazy scan filtered on run and metric); no per-point Python loops.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import click
import numpy as np
import polars as pl

from engine.errors import LosscopeError

_MAD_SCALE = 1.482602218505602  # MAD -> standard deviation for Gaussian data
_RHO_MAX = 0.95  # lag-1 autocorrelation is clipped here: (1+rho)/(1-rho) <= 39
_SEED_RE = re.compile(r"[-_.]?(?:seed|s)[-_=]?\d+$", re.IGNORECASE)


class NotRangeTestError(LosscopeError, ValueError):
    """The run is not an LR range test (its LR does not rise over most of the run)."""


# ------------------------------------------------------------------------------ helpers


def _finite_curve(store, run: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    df = store.scan_curves(run, metric).select("step", "value").sort("step").collect()
    steps = df["step"].to_numpy().astype(np.int64)
    values = df["value"].to_numpy().astype(np.float64)
    ok = np.isfinite(values)
    return steps[ok], values[ok]


def _lag1(r: np.ndarray) -> float:
    """Lag-1 autocorrelation of residuals, clipped to [0, _RHO_MAX] (negative
    autocorrelation would shrink the error bar; we never claim more precision than iid)."""
    if r.shape[0] < 3:
        return 0.0
    d = r - r.mean()
    den = float(np.dot(d, d))
    if den <= 0.0:
        return 0.0
    rho = float(np.dot(d[:-1], d[1:])) / den
    return min(max(rho, 0.0), _RHO_MAX)


def _robust_sd(r: np.ndarray) -> float:
    if r.shape[0] == 0:
        return math.nan
    sd = _MAD_SCALE * float(np.median(np.abs(r - np.median(r))))
    if sd == 0.0:  # more than half the residuals equal (quantised curves): fall back to rms
        sd = float(np.sqrt(np.mean((r - r.mean()) ** 2)))
    return sd


def local_estimate(steps: np.ndarray, values: np.ndarray, at_step: float, *, half_width_steps: float,
                   min_points: int = 30, min_eff: float = 30.0) -> dict:
    """The curve's level at ``at_step`` from a local straight-line fit, with its error bar.

    Points: the finite points with |step - at_step| <= half_width_steps; when fewer than
    ``min_points``, the window grows to the ``min_points`` nearest points. A line
    y = a + b (step - at_step) is fitted by least squares, points more than 5 robust sd
    from it are dropped and it is fitted again; ``value`` = a (a local-linear smoother
    evaluated at the step: unbiased on a sloped curve even when the window is
    one-sided at the end of a run, where an EMA would lag).

    Error bar: ``noise`` = robust sd of the residuals (1.4826 MAD); ``rho`` = their lag-1
    autocorrelation clipped to [0, 0.95]; ``n_eff`` = n (1 - rho) / (1 + rho) (the
    effective number of independent points under AR(1) noise); ``se`` = noise *
    sqrt((1/n + xbar^2 / Sxx) * (1 + rho) / (1 - rho)), the standard error of the fitted
    level with the variance inflated for autocorrelation. For a window centred on the
    step this is noise / sqrt(n_eff). It measures how well the logged points pin the
    curve down (measurement noise), not seed-to-seed variation: see ``compare``.
    When the window holds fewer than ``min_eff`` effective points (strongly
    autocorrelated noise, sparse logging) it is doubled, up to 4 times and at most to a quarter of the step: with few
    effective points both rho and the noise are underestimated and the se would be too
    small (tests/test_compare.py checks calibration for AR(1) noise, phi up to 0.9).
    Steps must be sorted and values finite.
    """
    cap = max(half_width_steps, 0.25 * abs(at_step))  # wider windows meet the warmup
    for _ in range(4):
        e = _local_fit(steps, values, at_step, half_width_steps, min_points)
        covers = at_step - half_width_steps <= steps[0] and at_step + half_width_steps >= steps[-1] \
            if steps.shape[0] else True
        if not (e["n_eff"] < min_eff) or covers or half_width_steps >= cap:
            return e
        half_width_steps = min(2.0 * half_width_steps, cap)
    return _local_fit(steps, values, at_step, half_width_steps, min_points)


def _local_fit(steps, values, at_step, half_width_steps, min_points) -> dict:
    n_all = steps.shape[0]
    out = dict(value=math.nan, se=math.nan, noise=math.nan, n=0, n_eff=math.nan, rho=math.nan)
    if n_all < 3:
        return out
    lo = int(np.searchsorted(steps, at_step - half_width_steps, "left"))
    hi = int(np.searchsorted(steps, at_step + half_width_steps, "right"))
    if hi - lo < min_points:
        k = min(min_points, n_all)
        c = int(np.searchsorted(steps, at_step))
        lo, hi = max(0, c - k // 2), min(n_all, max(0, c - k // 2) + k)
        lo = max(0, hi - k)
    x = (steps[lo:hi] - at_step).astype(np.float64)
    y = values[lo:hi]
    scale = float(np.max(np.abs(x))) or 1.0
    u = x / scale
    design = np.column_stack((np.ones_like(u), u, u * u))
    keep = np.ones(x.shape[0], dtype=bool)
    for _ in range(3):
        n = int(keep.sum())
        if n < 4:
            return out
        coef, *_ = np.linalg.lstsq(design[keep], y[keep], rcond=None)
        r_all = y - design @ coef
        sd = _robust_sd(r_all[keep])
        new_keep = np.abs(r_all) <= 5.0 * sd if sd > 0 else np.ones_like(keep)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    level = float(coef[0])
    r = r_all[keep]
    # small windows: the lag-1 estimate is biased low by about (1 + 4 rho) / n (Kendall),
    # more so on residuals of a fitted curve, and the residuals' spread misses the part
    # of the noise the fit absorbed (about 3 effective points' worth of variance)
    rho = _lag1(r)
    rho = min(rho + (2.0 + 4.0 * rho) / n, _RHO_MAX) if rho > 0 else rho
    infl = (1.0 + rho) / (1.0 - rho)
    sd = sd / math.sqrt(max(1.0 - 3.0 * infl / n, 0.25))
    try:
        lev = float(np.linalg.inv(design[keep].T @ design[keep])[0, 0])
    except np.linalg.LinAlgError:
        return out
    out.update(value=level, se=sd * math.sqrt(lev * infl), noise=sd, n=int(n), n_eff=n / infl, rho=rho)
    return out


def _direction(store, metric: str, runs: list[str], direction: str | None) -> str:
    if direction is not None:
        if direction not in ("min", "max"):
            raise LosscopeError(f"direction must be 'min' or 'max', got {direction!r}", metric=metric)
        return direction
    m = store.metrics().filter((pl.col("metric") == metric) & pl.col("run").is_in(runs))
    dirs = sorted(set(m["direction"].to_list()) - {"none", None, ""})
    if len(dirs) > 1:
        raise LosscopeError(f"runs disagree on the direction of the metric ({', '.join(dirs)}); "
                            "pass direction='min' or 'max'", metric=metric)
    if dirs:
        return dirs[0]
    from engine.infer import infer
    d = infer(metric).direction
    if d in ("min", "max"):
        return d
    raise LosscopeError("the metric has no direction (neither lower nor higher is known to be better); "
                        "set it in a mapping file or pass direction='min' or 'max'", metric=metric)


def _attr_lookup(attrs: dict, key: str):
    """``key`` in a run's attributes: a dotted path ('config.lr'), a top-level key, or a
    key one level down (attributes usually hold {"params": {...}, "config": {...}})."""
    cur = attrs
    for part in key.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            cur = None
            break
    if cur is not None:
        return cur
    for v in attrs.values():
        if isinstance(v, dict) and key in v:
            return v[key]
    return None


def _grouper(store, group_by, runs: list[str]) -> dict[str, str]:
    """run -> group label. See ``compare`` for what ``group_by`` may be."""
    if group_by is None:
        return {r: r for r in runs}
    if callable(group_by):
        return {r: str(group_by(r)) for r in runs}
    if isinstance(group_by, re.Pattern) or (isinstance(group_by, str) and group_by.startswith("re:")):
        pat = group_by if isinstance(group_by, re.Pattern) else re.compile(group_by[3:])
        return {r: pat.sub("", r) or r for r in runs}
    if isinstance(group_by, str) and group_by in ("seed", "name"):
        return {r: _SEED_RE.sub("", r) or r for r in runs}
    keys = [k.strip() for k in group_by.split(",")] if isinstance(group_by, str) else list(group_by)
    if not keys or any(not isinstance(k, str) or not k for k in keys):
        raise LosscopeError(f"group_by: expected attribute keys, got {group_by!r}")
    table = store.runs().filter(pl.col("run").is_in(runs))
    attrs = {r: json.loads(a or "{}") for r, a in zip(table["run"].to_list(), table["attributes"].to_list())}
    out = {}
    for r in runs:
        a = attrs.get(r, {})
        vals = [_attr_lookup(a, k) for k in keys]
        out[r] = ",".join(f"{k}={json.dumps(v, sort_keys=True, default=str)}" for k, v in zip(keys, vals))
    missing = [r for r in runs if all(_attr_lookup(attrs.get(r, {}), k) is None for k in keys)]
    if missing and len(missing) == len(runs):
        raise LosscopeError(f"group_by: no run has attribute(s) {', '.join(keys)} "
                            f"(looked in runs.attributes of {len(runs)} run(s))")
    return out


# ------------------------------------------------------------------------------ compare


def compare(store, metric: str, *, runs=None, group_by=None, at_step=None, direction: str | None = None,
            window_rel: float = 0.05, z_distinct: float = 2.0) -> pl.DataFrame:
    """Rank runs (or groups of seeds) on ``metric`` at one common step.

    Step: ``at_step`` when given, else the largest step every compared run reached (the
    smallest last finite step). A run that did not reach it, or has fewer than 3 finite
    points, gets a row with ``rank`` null and a ``note``.

    Per run, ``local_estimate`` at the step with a half window of ``window_rel *
    step`` training steps (at least 30 points): ``value`` is the local-linear smoothed
    level at exactly that step (runs logged at different cadences are compared at the
    same step, not at their nearest logged points) and ``se`` its noise-aware standard
    error (residual noise / sqrt(effective points), inflated for autocorrelation).

    Groups (``group_by``): None (one row per run); a list of attribute keys or a
    comma-separated string of them (looked up in runs.attributes: dotted paths, top-level
    keys or keys under params/config), runs with equal values form a group; ``"seed"``
    removes a seed suffix from the run name (``lr3e-4-seed1``, ``-s2``, ``_seed=3``);
    ``"re:PATTERN"`` or a compiled regex removes the pattern from the name; a callable
    maps a run name to its group label. A group's ``value`` is the mean of its runs;
    its ``se`` is the larger of the between-seed standard error sd/sqrt(k) and the
    within-run one sqrt(sum se_i^2)/k (``se_source`` says which: "seeds" or "noise").
    A single run's se covers measurement noise only: seeds of one config usually differ
    by more, so group seeds before calling two configs different.

    Ranking is direction-aware (``direction`` from the metrics table, else inferred from
    the name, else the argument). ``z_vs_best`` = |value - best| / sqrt(se^2 + se_best^2);
    on the best row it is the z of the best against the second. ``distinct`` =
    z_vs_best >= ``z_distinct`` (so on the best row: is the best distinguishable from
    the second?).

    Columns: rank, group, runs, n_runs, metric, direction, step, value, se, se_source,
    noise, n_eff, delta_to_best, z_vs_best, distinct, note.
    """
    if not 0.0 < window_rel <= 1.0:
        raise LosscopeError(f"window_rel must be in (0, 1], got {window_rel!r}", metric=metric)
    present = store.metrics().filter(pl.col("metric") == metric)["run"].unique().to_list()
    if runs is None:
        runs = sorted(set(present))
        if not runs:
            runs = sorted(store.scan_curves(None, metric).select("run").unique().collect()["run"].to_list())
    else:
        runs = [runs] if isinstance(runs, str) else list(runs)
        known = set(store.run_names())
        for r in runs:
            if r not in known:
                raise LosscopeError("no such run in the store", run=r, path=str(store.path))
    if not runs:
        raise LosscopeError("no run in the store has this metric", metric=metric, path=str(store.path))
    direction = _direction(store, metric, runs, direction)
    curves = {r: _finite_curve(store, r, metric) for r in runs}
    usable = [r for r in runs if curves[r][0].shape[0] >= 3]
    if at_step is None:
        if not usable:
            raise LosscopeError("no run has 3 finite points of this metric", metric=metric)
        at_step = int(min(int(curves[r][0][-1]) for r in usable))
    at_step = int(at_step)
    if at_step < 0:
        raise LosscopeError(f"at_step must be >= 0, got {at_step}", metric=metric)
    half = max(window_rel * at_step, 1.0)
    per_run = {}
    for r in runs:
        s, v = curves[r]
        if s.shape[0] < 3:
            per_run[r] = dict(value=math.nan, se=math.nan, noise=math.nan, n_eff=math.nan,
                              note=f"only {s.shape[0]} finite point(s)")
        elif s[-1] < at_step or s[0] > at_step:
            per_run[r] = dict(value=math.nan, se=math.nan, noise=math.nan, n_eff=math.nan,
                              note=f"logged steps {int(s[0]):,}..{int(s[-1]):,} do not include step {at_step:,}")
        else:
            e = local_estimate(s, v, at_step, half_width_steps=half)
            e["note"] = "" if math.isfinite(e["value"]) else "no estimate near the step"
            per_run[r] = e
    groups = _grouper(store, group_by, runs)
    rows = []
    for g in dict.fromkeys(groups[r] for r in runs):
        members = [r for r in runs if groups[r] == g]
        ok = [r for r in members if math.isfinite(per_run[r]["value"]) and math.isfinite(per_run[r]["se"])]
        notes = "; ".join(f"{r}: {per_run[r]['note']}" if len(members) > 1 else per_run[r]["note"]
                          for r in members if per_run[r]["note"])
        if not ok:
            rows.append(dict(group=g, runs=members, n_runs=0, value=math.nan, se=math.nan, se_source="",
                             noise=math.nan, n_eff=math.nan, note=notes))
            continue
        vals = np.array([per_run[r]["value"] for r in ok])
        ses = np.array([per_run[r]["se"] for r in ok])
        k = len(ok)
        se_within = float(np.sqrt(np.sum(ses ** 2)) / k)
        se_between = float(np.std(vals, ddof=1) / math.sqrt(k)) if k >= 2 else 0.0
        rows.append(dict(group=g, runs=ok if len(ok) == len(members) else members, n_runs=k,
                         value=float(vals.mean()), se=max(se_within, se_between),
                         se_source="seeds" if se_between > se_within else "noise",
                         noise=float(np.mean([per_run[r]["noise"] for r in ok])),
                         n_eff=float(np.sum([per_run[r]["n_eff"] for r in ok])), note=notes))
    sign = 1.0 if direction == "min" else -1.0
    ranked = sorted([r for r in rows if math.isfinite(r["value"])], key=lambda r: sign * r["value"])
    for i, r in enumerate(ranked):
        r["rank"] = i + 1
    best = ranked[0] if ranked else None
    for r in rows:
        r.setdefault("rank", None)
        if best is None or not math.isfinite(r["value"]):
            r.update(delta_to_best=math.nan, z_vs_best=math.nan, distinct=None)
            continue
        other = ranked[1] if (r is best and len(ranked) > 1) else (None if r is best else best)
        if other is None:
            r.update(delta_to_best=0.0, z_vs_best=math.nan, distinct=None)
            continue
        gap = abs(r["value"] - other["value"])
        den = math.sqrt(r["se"] ** 2 + other["se"] ** 2)
        z = gap / den if den > 0 else (math.inf if gap > 0 else 0.0)
        r.update(delta_to_best=r["value"] - best["value"], z_vs_best=z, distinct=bool(z >= z_distinct))
    rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["group"]))
    return pl.DataFrame(
        [dict(rank=r["rank"], group=r["group"], runs=r["runs"], n_runs=r["n_runs"], metric=metric,
              direction=direction, step=at_step, value=r["value"], se=r["se"], se_source=r["se_source"],
              noise=r["noise"], n_eff=r["n_eff"], delta_to_best=r["delta_to_best"], z_vs_best=r["z_vs_best"],
              distinct=r["distinct"], note=r["note"]) for r in rows],
        schema={"rank": pl.Int64, "group": pl.String, "runs": pl.List(pl.String), "n_runs": pl.Int64,
                "metric": pl.String, "direction": pl.String, "step": pl.Int64, "value": pl.Float64,
                "se": pl.Float64, "se_source": pl.String, "noise": pl.Float64, "n_eff": pl.Float64,
                "delta_to_best": pl.Float64, "z_vs_best": pl.Float64, "distinct": pl.Boolean,
                "note": pl.String}, orient="row")


# ------------------------------------------------------------------------------ divergence


def _box_smooth(steps: np.ndarray, values: np.ndarray, at: np.ndarray, half: float):
    """Mean of the points with |step - t| <= half for each t in ``at`` (prefix sums, O(n + m
    log n)), and how many points each mean used. Sums are taken around the first value so
    a 1e9-offset curve keeps its digits."""
    ref = values[0] if values.shape[0] else 0.0
    c = np.concatenate(([0.0], np.cumsum(values - ref)))
    lo = np.searchsorted(steps, at - half, "left")
    hi = np.searchsorted(steps, at + half, "right")
    cnt = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (c[hi] - c[lo]) / cnt + ref
    return mean, cnt


def _smoothed_on(steps, values, grid, half):
    """Box-smoothed curve on ``grid``, its local raw noise (rms of residuals from the
    smoothed curve over the same window) and its standard error (noise / sqrt(count),
    inflated by (1 + rho) / (1 - rho) for the lag-1 autocorrelation of the residuals)."""
    own, _ = _box_smooth(steps, values, steps.astype(np.float64), half)
    r = values - own
    rho = _lag1(r)
    level, cnt = _box_smooth(steps, values, grid, half)
    r2, _ = _box_smooth(steps, r * r, grid, half)
    noise = np.sqrt(np.maximum(r2, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        se = noise * np.sqrt((1.0 + rho) / (1.0 - rho) / cnt)
    return level, noise, se, rho


def divergence_step(store, run_a: str, run_b: str, metric: str, *, z: float = 3.0,
                    half_window_steps: float | None = None, max_grid: int = 20000) -> dict:
    """Where two runs' curves of ``metric`` part ways, and how far apart they end.

    Both curves are smoothed by a centred moving average over +-``half_window_steps``
    training steps (default: the larger of 1% of the common step range and 3 logging
    intervals of the sparser run) and evaluated on common steps: the sparser run's logged
    steps within the range both runs cover (at most ``max_grid``, evenly thinned), so
    runs logged at different cadences are compared step for step.

    ``noise`` at a step is each run's local raw noise (rms of its points around its
    smoothed curve within the window); the combined level is sqrt(noise_a^2 + noise_b^2).
    ``step``: the first common step from which the smoothed gap b - a keeps the sign of
    the final gap and exceeds ``z`` combined noise levels at 95% of the later common
    steps, including the last one, over at least max(3, 2% of the grid) steps
    (persistently apart). None when the runs never part that way (``diverged`` False).
    ``onset_step``: the last common step before ``step`` where the smoothed curves were
    within 2 standard errors of each other (se of a smoothed level = noise / sqrt(points
    in the window), inflated for autocorrelation): where the gap began to grow.
    ``gap_end`` = b - a at the last common step (smoothed), ``gap_end_noise`` the same in
    combined noise levels, ``gap_end_rel`` relative to |a|; ``better``: the run ahead at
    the end given the metric's direction (None when unknown or not diverged).
    """
    if not z > 0:
        raise LosscopeError(f"z must be > 0, got {z!r}", metric=metric)
    known = set(store.run_names())
    for r in (run_a, run_b):
        if r not in known:
            raise LosscopeError("no such run in the store", run=r, path=str(store.path))
    sa, va = _finite_curve(store, run_a, metric)
    sb, vb = _finite_curve(store, run_b, metric)
    for r, s in ((run_a, sa), (run_b, sb)):
        if s.shape[0] < 5:
            raise LosscopeError(f"only {s.shape[0]} finite point(s); need 5 to compare curves",
                                run=r, metric=metric)
    lo, hi = max(sa[0], sb[0]), min(sa[-1], sb[-1])
    if hi <= lo:
        raise LosscopeError(f"the runs share no steps ({run_a!r} logs {int(sa[0]):,}..{int(sa[-1]):,}, "
                            f"{run_b!r} logs {int(sb[0]):,}..{int(sb[-1]):,})", metric=metric)
    ina = sa[(sa >= lo) & (sa <= hi)]
    inb = sb[(sb >= lo) & (sb <= hi)]
    grid = ina if ina.shape[0] <= inb.shape[0] else inb
    if grid.shape[0] > max_grid:
        grid = grid[np.linspace(0, grid.shape[0] - 1, max_grid).round().astype(np.int64)]
    grid = grid.astype(np.float64)
    span = float(hi - lo)
    spacing = max(float(np.median(np.diff(ina))) if ina.shape[0] > 1 else 1.0,
                  float(np.median(np.diff(inb))) if inb.shape[0] > 1 else 1.0)
    half = float(half_window_steps) if half_window_steps is not None else max(0.01 * span, 3.0 * spacing)
    la, na, sea, rho_a = _smoothed_on(sa, va, grid, half)
    lb, nb, seb, rho_b = _smoothed_on(sb, vb, grid, half)
    gap = lb - la
    noise = np.sqrt(na * na + nb * nb)
    se = np.sqrt(sea * sea + seb * seb)
    ok = np.isfinite(gap) & np.isfinite(noise)
    grid, gap, noise, se, la, lb = grid[ok], gap[ok], noise[ok], se[ok], la[ok], lb[ok]
    try:
        d = _direction(store, metric, [run_a, run_b], None)
    except LosscopeError:
        d = None
    out = dict(run_a=run_a, run_b=run_b, metric=metric, diverged=False, step=None, onset_step=None,
               gap_end=float(gap[-1]) if gap.shape[0] else math.nan, gap_end_noise=math.nan,
               gap_end_rel=math.nan, better=None, z=float(z), half_window_steps=half,
               common_steps=(int(lo), int(hi)), n_common=int(grid.shape[0]))
    if gap.shape[0] < 3:
        return out
    end_sign = 1.0 if gap[-1] >= 0 else -1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out["gap_end_noise"] = float(abs(gap[-1]) / noise[-1]) if noise[-1] > 0 else (
            math.inf if gap[-1] != 0 else 0.0)
        out["gap_end_rel"] = float(gap[-1] / abs(la[-1])) if la[-1] != 0 else math.nan
    apart = (end_sign * gap) > z * noise
    m = gap.shape[0]
    min_persist = max(3, int(0.02 * m))
    if apart[-1]:
        # fraction of "apart" points in each suffix; the earliest start whose suffix is
        # >= 95% apart and that is itself apart
        suffix = np.cumsum(apart[::-1])[::-1]
        length = np.arange(m, 0, -1)
        cand = np.flatnonzero(apart & (suffix >= 0.95 * length) & (length >= min_persist))
        if cand.shape[0]:
            i = int(cand[0])
            out["diverged"] = True
            out["step"] = int(grid[i])
            close = np.flatnonzero(end_sign * gap[:i] <= 2.0 * se[:i])
            out["onset_step"] = int(grid[close[-1]]) if close.shape[0] else int(grid[0])
            if d is not None:
                b_better = (gap[-1] < 0) if d == "min" else (gap[-1] > 0)
                out["better"] = run_b if b_better else run_a
    return out


# ------------------------------------------------------------------------------ LR range test


def lr_range_test(steps_or_lr, loss, *, lr=None, weight: float | None = None, min_rise_frac: float = 0.9,
                  stop_factor: float = 4.0) -> dict:
    """Suggested learning rate from an LR range test (Smith 2017; fastai ``lr_find``).

    Call as ``lr_range_test(lr, loss)`` or ``lr_range_test(steps, loss, lr=lr)`` (arrays
    of equal length, in logging order; with steps they are sorted by step).

    Check: the LR must be positive and rise: of the consecutive changes of the LR, at
    least ``min_rise_frac`` must be increases, and it must grow at least 10-fold over the
    run (exponential or linear sweeps both pass). Anything else (a warmup + cosine run,
    a constant LR) raises NotRangeTestError (a LosscopeError and a ValueError).

    Analysis, as fastai does: points with a non-finite loss or LR end the sweep (the
    first NaN truncates), the first 10% (exponential sweeps only) and last 5 points are
    dropped (when the sweep has more than 30 points), the loss is smoothed by a debiased EMA with ``weight``
    (default w = min(0.98, 1 - 20/n): fastai's beta = 0.98 on sweeps of 1,000 points
    or more, less on shorter ones so the EMA's memory 1/(1-w) stays within 5% of the
    sweep; fastai's 0.98 on a 100-point sweep averages over half of it) and the sweep is cut where the smoothed loss exceeds
    ``stop_factor`` (4) times its minimum (fastai's stop_div). Unlike fastai the EMA is
    run forwards and backwards and the two averaged: a one-sided EMA trails the loss by
    about w/(1-w) points (49 at w = 0.98), which on a short sweep moves every suggestion to larger
    LRs by a large factor.

    Returns: ``lr_steep``: the LR where the smoothed loss falls fastest against log(LR),
    before the minimum and away from the first and last 1/(1-w) points (smoothed from
    one side only)
    (the steepest-slope point; Smith's and fastai's ``steep`` suggestion); ``lr_min``:
    the LR at the smoothed minimum; ``lr_min_div10`` = lr_min / 10 (fastai's
    ``minimum`` suggestion, a safety margin below where training starts to blow up);
    ``suggested_lr`` = lr_steep; ``loss_min``, ``slope_steep`` (loss per e-fold of LR),
    ``n_used`` points, ``lr_range`` (first, last LR used), ``kind`` ("exponential" or
    "linear" sweep, by which of LR or log LR is closer to a straight line in the index).
    """
    if lr is None:
        lr_arr = np.asarray(steps_or_lr, dtype=np.float64)
        steps = None
    else:
        lr_arr = np.asarray(lr, dtype=np.float64)
        steps = np.asarray(steps_or_lr)
    y = np.asarray(loss, dtype=np.float64)
    if lr_arr.ndim != 1 or y.ndim != 1 or lr_arr.shape != y.shape or (steps is not None and steps.shape != y.shape):
        raise ValueError(f"lr_range_test: lr, loss (and steps) must be 1-d arrays of equal length, got "
                         f"{lr_arr.shape}, {y.shape}" + ("" if steps is None else f", {steps.shape}"))
    if weight is not None and not 0.0 <= weight < 1.0:
        raise ValueError(f"lr_range_test: weight must be in [0, 1), got {weight!r}")
    if steps is not None:
        order = np.argsort(steps, kind="stable")
        lr_arr, y = lr_arr[order], y[order]
    fin_lr = np.isfinite(lr_arr)
    lr_f = lr_arr[fin_lr]
    if lr_f.shape[0] < 10:
        raise NotRangeTestError(f"only {lr_f.shape[0]} finite learning-rate values; an LR range test "
                                "needs at least 10")
    if (lr_f <= 0).any():
        raise NotRangeTestError(f"learning rate {float(lr_f[lr_f <= 0][0])!r} is not positive")
    dl = np.diff(lr_f)
    moves = dl[dl != 0]
    rising = float(np.mean(moves > 0)) if moves.shape[0] else 0.0
    growth = float(lr_f.max() / lr_f.min())
    if rising < min_rise_frac or growth < 10.0 or lr_f[-1] <= lr_f[0]:
        raise NotRangeTestError(
            f"not an LR range test: the learning rate rises in {rising:.0%} of its changes "
            f"(need {min_rise_frac:.0%}) and spans a factor {growth:.3g} (need 10); an LR range test "
            "raises the LR steadily while recording the loss")
    idx = np.arange(lr_f.shape[0], dtype=np.float64)
    r_lin = abs(np.corrcoef(idx, lr_f)[0, 1])
    r_log = abs(np.corrcoef(idx, np.log(lr_f))[0, 1])
    kind = "exponential" if r_log >= r_lin else "linear"
    bad = ~(np.isfinite(y) & fin_lr)
    end = int(np.argmax(bad)) if bad.any() else y.shape[0]
    lr_arr, y = lr_arr[:end], y[:end]
    n = y.shape[0]
    if n > 30:  # a linear sweep's first tenth holds every LR below max/10: keep it
        head = n // 10 if kind == "exponential" else 0
        lr_arr, y = lr_arr[head: n - 5], y[head: n - 5]
    if y.shape[0] < 10:
        raise NotRangeTestError(f"only {y.shape[0]} usable points before the loss became non-finite; "
                                "an LR range test needs at least 10")
    from kernels.smoothing import debiased_ema
    if weight is None:
        weight = min(0.98, 1.0 - 20.0 / y.shape[0])
    fwd = debiased_ema(y, weight=weight)
    if (fwd > 0).all():
        cut = np.flatnonzero((fwd > stop_factor * np.minimum.accumulate(fwd)))
        if cut.shape[0] and cut[0] >= 10:
            lr_arr, y, fwd = lr_arr[:cut[0]], y[:cut[0]], fwd[:cut[0]]
    bwd = debiased_ema(y[::-1], weight=weight)[::-1]
    smooth = 0.5 * (fwd + bwd)
    x = np.log(lr_arr)
    # repeated LRs (a sweep that holds an LR for a few steps) would divide by zero
    keep = np.concatenate(([True], np.diff(x) > 0))
    x, s, lr_k = x[keep], smooth[keep], lr_arr[keep]
    if x.shape[0] < 5:
        raise NotRangeTestError("fewer than 5 distinct learning rates left after trimming")
    grad = np.gradient(s, x)
    i_min = int(np.argmin(s))
    # the first and last memory-length points are averaged from one side only: noisy
    edge = min(int(round(1.0 / (1.0 - weight))), x.shape[0] // 5)
    hi_i = max(min(i_min, x.shape[0] - edge), 1)
    lo_i = min(edge, hi_i - 1)
    i_steep = lo_i + int(np.argmin(grad[lo_i: hi_i]))
    return dict(suggested_lr=float(lr_k[i_steep]), lr_steep=float(lr_k[i_steep]),
                slope_steep=float(grad[i_steep]), lr_min=float(lr_k[i_min]),
                lr_min_div10=float(lr_k[i_min] / 10.0), loss_min=float(s[i_min]), n_used=int(x.shape[0]),
                lr_range=(float(lr_k[0]), float(lr_k[-1])),
                kind=kind)


def lr_range_test_run(store, run: str, *, lr_metric: str | None = None, loss_metric: str | None = None,
                      **kwargs) -> dict:
    """``lr_range_test`` on a stored run: the LR and loss metrics are found by their kinds
    in the metrics table (kind 'lr'; kind 'loss', train split preferred) unless named.
    The LR is interpolated onto the loss's steps when they are logged at other steps."""
    if run not in set(store.run_names()):
        raise LosscopeError("no such run in the store", run=run, path=str(store.path))
    m = store.metrics(run)

    def pick(kind, given):
        if given is not None:
            return given
        rows = m.filter(pl.col("kind") == kind)
        if rows.height == 0:
            raise LosscopeError(f"no metric of kind {kind!r} (metrics: {', '.join(m['metric'].to_list()[:8])}); "
                                f"name it with {kind}_metric=", run=run)
        train = rows.filter(pl.col("split") == "train")
        return (train if train.height else rows)["metric"][0]

    lr_name, loss_name = pick("lr", lr_metric), pick("loss", loss_metric)
    ls, lv = _finite_curve(store, run, lr_name)
    ys, yv = (lambda df: (df["step"].to_numpy(), df["value"].to_numpy().astype(np.float64)))(
        store.scan_curves(run, loss_name).select("step", "value").sort("step").collect())
    if ls.shape[0] < 2:
        raise NotRangeTestError(f"metric {lr_name!r} has {ls.shape[0]} finite value(s)", run=run)
    inside = (ys >= ls[0]) & (ys <= ls[-1])
    ys, yv = ys[inside], yv[inside]
    lr_at = np.interp(ys.astype(np.float64), ls.astype(np.float64), lv)
    try:
        out = lr_range_test(ys, yv, lr=lr_at, **kwargs)
    except NotRangeTestError as e:
        raise NotRangeTestError(e.reason, run=run, metric=lr_name) from None
    out.update(run=run, lr_metric=lr_name, loss_metric=loss_name)
    return out


# ------------------------------------------------------------------------------ overlay


def overlay(store, metric: str, runs, *, max_points: int = 2000, half_window_rel: float = 0.01) -> pl.DataFrame:
    """Curves of ``runs`` on one step axis for an overlay plot: long frame (run, step,
    value, smoothed) with at most ``max_points`` rows per run (evenly thinned; the
    smoothed column is a centred moving average over +-half_window_rel of the run's
    step range computed on every point before thinning, so thinning never changes it)."""
    runs = [runs] if isinstance(runs, str) else list(runs)
    parts = []
    for r in runs:
        s, v = _finite_curve(store, r, metric)
        if s.shape[0] == 0:
            continue
        half = max(half_window_rel * float(s[-1] - s[0]), 0.5)
        idx = np.linspace(0, s.shape[0] - 1, min(max_points, s.shape[0])).round().astype(np.int64)
        idx = np.unique(idx)
        sm, _ = _box_smooth(s, v, s[idx].astype(np.float64), half)
        parts.append(pl.DataFrame({"run": [r] * idx.shape[0], "step": s[idx], "value": v[idx], "smoothed": sm},
                                  schema={"run": pl.String, "step": pl.Int64, "value": pl.Float64,
                                          "smoothed": pl.Float64}))
    if not parts:
        return pl.DataFrame(schema={"run": pl.String, "step": pl.Int64, "value": pl.Float64, "smoothed": pl.Float64})
    return pl.concat(parts)


# ------------------------------------------------------------------------------ CLI

def _fail(reason: str):
    click.echo(f"losscope: {reason}", err=True)
    sys.exit(2)


def _fmt(x, digits=4):
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        return f"{x:.{digits}g}"
    return str(x)


def _print_table(title: str, header: list[str], rows: list[list[str]]):
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
    t = Table(title=title, title_justify="left")
    for h in header:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*(Text(c) for c in r))
    Console(soft_wrap=False).print(t)


def _json_safe(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    return o


@click.command("compare")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path), help="Store folder.")
@click.option("--metric", default=None, help="Metric to compare (required except with --lr-finder).")
@click.option("--runs", "runs_csv", default=None, help="Comma-separated run names (default: every run with the metric).")
@click.option("--group-by", default=None,
              help="Attribute key(s), comma-separated, from the runs' params/config; 'seed' to group run "
                   "names that differ only by a seed suffix; 're:PATTERN' to remove PATTERN from names.")
@click.option("--at-step", type=int, default=None, help="Compare at this step (default: the largest step all runs reached).")
@click.option("--direction", type=click.Choice(["min", "max"]), default=None,
              help="Override the metric's direction.")
@click.option("--diverge", nargs=2, default=None, metavar="RUN_A RUN_B",
              help="Instead of ranking: the step where RUN_B's curve parts from RUN_A's.")
@click.option("--z", "z", type=float, default=3.0, show_default=True, help="Noise levels apart for --diverge.")
@click.option("--lr-finder", "lr_run", default=None, metavar="RUN", help="Read RUN as an LR range test and suggest an LR.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def compare_cmd(store_path, metric, runs_csv, group_by, at_step, direction, diverge, z, lr_run, fmt):
    """Rank runs on a metric at equal steps, find where two runs part ways, or read an LR range test.

    \b
    Examples:
      losscope compare --store .losscope --metric val/loss
      losscope compare --store .losscope --metric val/loss --group-by seed --at-step 20000
      losscope compare --store .losscope --metric train/loss --group-by lr,batch_size --format json
      losscope compare --store .losscope --metric train/loss --diverge base lr-x2
      losscope compare --store .losscope --lr-finder lr-sweep
    """
    from engine.store import Store
    if diverge and lr_run:
        _fail("give one of --diverge and --lr-finder")
    if not (store_path / "losscope-store.json").is_file():
        _fail(f"{store_path}: no losscope store here (run `losscope ingest` first)")
    try:
        store = Store(store_path, create=False)
        if lr_run:
            res = lr_range_test_run(store, lr_run)
            if fmt == "json":
                click.echo(json.dumps(_json_safe(res), indent=1))
            else:
                _print_table(f"LR range test of {lr_run} ({res['loss_metric']} vs {res['lr_metric']})",
                             ["figure", "value"],
                             [["suggested lr (steepest descent)", _fmt(res["lr_steep"], 3)],
                              ["lr at minimum / 10", _fmt(res["lr_min_div10"], 3)],
                              ["lr at minimum", _fmt(res["lr_min"], 3)],
                              ["smoothed loss at minimum", _fmt(res["loss_min"])],
                              ["sweep", f"{res['kind']}, {res['n_used']} points, "
                                        f"lr {_fmt(res['lr_range'][0], 3)}..{_fmt(res['lr_range'][1], 3)}"]])
            return
        if not metric:
            _fail("--metric is required (except with --lr-finder)")
        if diverge:
            res = divergence_step(store, diverge[0], diverge[1], metric, z=z)
            if fmt == "json":
                click.echo(json.dumps(_json_safe(res), indent=1))
            else:
                verdict = (f"parted at step {res['step']:,} (gap began near {res['onset_step']:,})"
                           if res["diverged"] else "never persistently apart")
                _print_table(f"{metric}: {diverge[1]} vs {diverge[0]}", ["figure", "value"],
                             [["verdict", verdict],
                              ["gap at end (b - a)", _fmt(res["gap_end"])],
                              ["gap at end, noise levels", _fmt(res["gap_end_noise"], 3)],
                              ["gap at end, relative", _fmt(res["gap_end_rel"], 3)],
                              ["better at end", res["better"] or "-"],
                              ["common steps", f"{res['common_steps'][0]:,}..{res['common_steps'][1]:,}"]])
            return
        runs = [r.strip() for r in runs_csv.split(",") if r.strip()] if runs_csv else None
        df = compare(store, metric, runs=runs, group_by=group_by, at_step=at_step, direction=direction)
    except LosscopeError as e:
        _fail(str(e))
    if fmt == "json":
        click.echo(json.dumps(_json_safe(df.to_dicts()), indent=1))
        return
    step = df["step"][0] if df.height else at_step
    rows = [[_fmt(r["rank"]), r["group"], str(r["n_runs"]), _fmt(r["value"], 6), _fmt(r["se"], 2),
             _fmt(r["delta_to_best"], 3), _fmt(r["z_vs_best"], 3),
             "-" if r["distinct"] is None else ("yes" if r["distinct"] else "no"), r["note"]]
            for r in df.iter_rows(named=True)]
    _print_table(f"{metric} at step {step:,} ({df['direction'][0] if df.height else '?'} is better)",
                 ["rank", "run/group", "runs", "value", "se", "vs best", "z", "distinct", "note"], rows)
