"""Slow twins of kernels/changepoints.py, written from the definitions.

- segment_cost_ref: a segment's cost straight from its definition (math.fsum mean and
  squared deviations for "l2"; numpy.linalg.lstsq against [1, i] for "linear").
- optimal_partition_ref: the O(n^2) optimal-partitioning dynamic program. The feasible
  segmentations are those whose changepoints are multiples of `jump` and whose
  segments all hold at least `min_size` points; the objective is
  sum(cost(segment) + penalty); among equal optima the one whose last changepoint is
  smallest wins at every prefix (the tie rule of PELT and of ruptures).
- binseg_ref: greedy binary segmentation over every admissible split, recomputing
  every cost from the definition.
"""

from __future__ import annotations

import math

import numpy as np


def segment_cost_ref(x, start, end, cost="l2"):
    seg = [float(v) for v in x[start:end]]
    n = len(seg)
    if n == 0:
        return 0.0
    if cost == "l2":
        mean = math.fsum(seg) / n
        return math.fsum((v - mean) ** 2 for v in seg)
    if n < 3:
        return 0.0
    t = np.arange(start, end, dtype=np.float64)
    design = np.column_stack([np.ones(n), t - t.mean()])
    y = np.asarray(seg) - math.fsum(seg) / n
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    return math.fsum(r * r for r in resid)


def _allowed(n, min_size, jump):
    """Positions a segment may start at: 0 and the multiples of jump that leave room."""
    return [0] + [t for t in range(jump, n, jump) if t >= min_size]


def _cost_table(x, positions, n, min_size, cost):
    """cost[(t, b)] for every feasible segment, each from the definition."""
    ends = [b for b in positions if b > 0] + [n]
    return {(t, b): segment_cost_ref(x, t, b, cost)
            for t in positions for b in ends if b - t >= min_size}


def optimal_partition_ref(x, penalty, min_size=2, jump=1, cost="l2"):
    """Breakpoints of the penalised optimum (ruptures convention, last = n)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if cost == "linear":
        min_size = max(min_size, 2)
    if n == 0:
        return []
    if n < min_size:
        return [n]
    starts = _allowed(n, min_size, jump)
    table = _cost_table(x, starts, n, min_size, cost)
    best = {0: 0.0}
    last = {0: None}
    for b in starts[1:] + [n]:
        options = [(best[t] + (table[(t, b)] + penalty), t) for t in starts
                   if t in best and b - t >= min_size]
        if not options:
            continue
        value = min(v for v, _ in options)
        best[b] = value
        last[b] = min(t for v, t in options if v == value)
    out = []
    b = n
    while b:
        out.append(b)
        b = last[b]
    return sorted(out)


def penalised_cost_ref(x, breakpoints, penalty, cost="l2"):
    """sum(cost(segment) + penalty) of a segmentation, from the definition."""
    prev = 0
    total = []
    for b in breakpoints:
        total.append(segment_cost_ref(x, prev, b, cost) + penalty)
        prev = b
    return math.fsum(total)


def binseg_ref(x, *, n_bkps=None, penalty=None, min_size=2, jump=1, cost="l2"):
    """Binary segmentation from its definition: repeatedly take, over all current
    segments, the admissible split (a multiple of jump from the segment start, both
    sides >= min_size) of largest cost decrease; the leftmost segment wins a tie
    between segments and the larger position a tie inside a segment; stop after
    n_bkps splits, or when the best decrease is not above penalty, or when no split
    is admissible anywhere (a segment without a split counts as decrease 0)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if cost == "linear":
        min_size = max(min_size, 2)
    if n == 0:
        return []
    bkps = [n]
    while True:
        proposals = []
        prev = 0
        for e in bkps:
            whole = segment_cost_ref(x, prev, e, cost)
            best = None
            for b in range(prev, e, jump):
                if b - prev >= min_size and e - b >= min_size:
                    gain = whole - segment_cost_ref(x, prev, b, cost) - segment_cost_ref(x, b, e, cost)
                    if best is None or (gain, b) > best:
                        best = (gain, b)
            proposals.append(best if best is not None else (0.0, None))
            prev = e
        gain, b = proposals[0]
        for g, p in proposals[1:]:
            if g > gain:
                gain, b = g, p
        if b is None:
            break
        if n_bkps is not None and len(bkps) - 1 >= n_bkps:
            break
        if n_bkps is None and not gain > penalty:
            break
        bkps = sorted(bkps + [b])
    return bkps
