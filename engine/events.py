"""Events derived from the curves: resumes and learning-rate changes.

resume: within one (run, metric), in source order (the parsed table before the store
deduplicates), a step smaller than the step before it means the run went back to an
earlier checkpoint. One event per (run, step rewound to), listing the metrics that
rewound there.

lr_change: a discontinuity in an ``lr`` curve (kind lr) that a smooth schedule does not
make. Smooth schedules (linear warmup, cosine, linear or exponential decay, WSD) change
the slope between consecutive logged points gradually, even when the relative change is
large (the tail of a cosine near zero, coarse logging). A step decay or a warm restart
is one point-to-point change that dwarfs the changes on either side. Rule, on the
finite points sorted by step, with slopes d_i = (lr_i - lr_{i-1}) / (s_i - s_{i-1}):

- |lr_i - lr_{i-1}| >= MIN_JUMP_REL * max(|lr_i|, |lr_{i-1}|)   (default 20%), and
- |d_i| >= NEIGHBOUR_RATIO * max(|d_{i-1}|, |d_{i+1}|)           (default 4; a missing
  neighbour counts as 0).

Printed logs round the lr (``lr 5e-06``, llm.c's ``lr:0.000005``): a smooth decay then
becomes a staircase of one-digit steps. When every logged value has at most 3
significant digits (or at most 9 decimals), a change of at most one unit in the last
printed digit of the smaller value is rounding, not an event (at that resolution a
halving 2e-4 -> 1e-4 cannot be told from rounding either).

A rise before the curve first reaches its maximum is the warmup (a rise from 0, or a
warmup seen through two or three coarse logged points), not an event; rises after it
(warm restarts) are. The event is at step s_i
(the first step logged at the new rate).
"""

from __future__ import annotations

import numpy as np
import polars as pl

MIN_JUMP_REL = 0.2
NEIGHBOUR_RATIO = 4.0


def resume_events(parsed: pl.DataFrame) -> list[tuple[str, int, str]]:
    """(run, step, detail) for each step rewind in source order; ``parsed`` has columns
    run, metric, step in source order."""
    if parsed.height == 0:
        return []
    df = parsed.select("run", "metric", "step").with_row_index("_i")
    prev = pl.col("step").shift(1).over(["run", "metric"], order_by="_i")
    rew = df.with_columns(prev.alias("_prev")).filter(pl.col("step") < pl.col("_prev"))
    if rew.height == 0:
        return []
    out = []
    grouped = rew.group_by(["run", "step"], maintain_order=True).agg(
        pl.col("metric").unique(maintain_order=True), pl.col("_prev").max())
    for run, step, metrics, frm in grouped.iter_rows():
        shown = ", ".join(repr(m) for m in metrics[:5]) + (f" and {len(metrics) - 5} more" if len(metrics) > 5 else "")
        out.append((run, int(step), f"steps went back from {frm:,} to {step:,} in {shown} (resumed from a checkpoint?)"))
    return out


def lr_change_steps(steps: np.ndarray, values: np.ndarray, *, min_jump_rel: float = MIN_JUMP_REL,
                    neighbour_ratio: float = NEIGHBOUR_RATIO) -> list[tuple[int, float, float]]:
    """(step, lr before, lr after) for each discontinuity of an lr curve sorted by step."""
    steps = np.asarray(steps, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    s, v = steps[ok], values[ok]
    if len(v) < 2:
        return []
    dv = np.diff(v)
    ds = np.diff(s).astype(np.float64)
    ds[ds <= 0] = 1.0
    slope = np.abs(dv / ds)
    prev_slope = np.concatenate([[0.0], slope[:-1]])
    next_slope = np.concatenate([slope[1:], [0.0]])
    scale = np.maximum(np.abs(v[1:]), np.abs(v[:-1]))
    jump = (np.abs(dv) >= min_jump_rel * scale) & (np.abs(dv) > 0) & (v[:-1] != 0)
    # rises up to the first maximum are the warmup, however coarsely it was logged
    peak = int(np.argmax(v))
    jump[:peak] &= dv[:peak] < 0
    isolated = slope >= neighbour_ratio * np.maximum(prev_slope, next_slope)
    digits, decimals = _printed_digits(v)
    unit = np.zeros_like(dv)
    if digits <= 3:
        small = np.minimum(np.abs(v[1:]), np.abs(v[:-1]))
        small = np.where(small > 0, small, np.maximum(np.abs(v[1:]), np.abs(v[:-1])))
        unit = 10.0 ** (np.floor(np.log10(np.where(small > 0, small, 1.0))) - digits + 1)
    if decimals <= 9:  # fixed-point printing such as "lr:0.000005"
        unit = np.maximum(unit, 10.0 ** -decimals)
    jump &= np.abs(dv) > unit * (1 + 1e-9)
    idx = np.nonzero(jump & isolated)[0]
    return [(int(s[i + 1]), float(v[i]), float(v[i + 1])) for i in idx]


def _printed_digits(values: np.ndarray) -> tuple[int, int]:
    """(significant digits, decimals) the logged values need at most: (17, 99) for
    full-precision floats, small numbers for values a logger printed rounded."""
    most, dec = 1, 0
    for x in np.unique(values)[:10_000]:
        if x == 0:
            continue
        if most <= 3:
            for d in range(1, 18):
                if float(f"{x:.{d - 1}e}") == x:
                    break
            most = max(most, d)
        if dec <= 9:
            for k in range(0, 12):
                if abs(round(x, k) - x) <= 1e-12 * abs(x):
                    break
            else:
                k = 99
            dec = max(dec, k)
        if most > 3 and dec > 9:
            break
    return most, dec


def lr_events(curves: pl.DataFrame, lr_metrics: dict[str, list[str]]) -> list[tuple[str, int, str]]:
    """lr_change events of deduplicated, sorted curves; ``lr_metrics`` maps run -> lr metric names."""
    out = []
    for run, metrics in lr_metrics.items():
        for metric in metrics:
            c = curves.filter((pl.col("run") == run) & (pl.col("metric") == metric))
            for step, before, after in lr_change_steps(c["step"].to_numpy(), c["value"].to_numpy()):
                out.append((run, step, f"{metric!r} changed from {before:.4g} to {after:.4g} at step {step:,}"))
    return out
