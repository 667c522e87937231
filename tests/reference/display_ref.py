"""Slow twins of kernels/display.py, written from the definitions."""

from __future__ import annotations

import math

import numpy as np


def nonfinite_run_ends_ref(y):
    out = []
    def kind(v):
        return 0 if math.isfinite(v) else (1 if math.isnan(v) else (2 if v > 0 else 3))
    i = 0
    while i < len(y):
        k = kind(y[i])
        if k == 0:
            i += 1
            continue
        j = i
        while j + 1 < len(y) and kind(y[j + 1]) == k:
            j += 1
        out += [i, j]
        i = j + 1
    return out


def lttb_ref(steps, values, n_out):
    """Steinarsson's LTTB on the finite points with tsdownsample's bucket arithmetic:
    bucket i (0-based) of the middle points is [floor(e*i)+1, floor(e*(i+1))+1), e = (m-2)/(n_out-2);
    pick the point of bucket i maximising the triangle area with the previous pick and the
    mean point of bucket i+1 (first one on ties)."""
    fin = [i for i, v in enumerate(values) if math.isfinite(v)]
    x = [float(steps[i]) for i in fin]
    y = [float(values[i]) for i in fin]
    m = len(fin)
    if m <= n_out:
        picks = list(range(m))
    else:
        every = (m - 2) / (n_out - 2)
        picks = [0]
        a = 0
        for i in range(n_out - 2):
            lo, hi = int(every * i) + 1, int(every * (i + 1)) + 1
            nlo, nhi = hi, min(int(every * (i + 2)) + 1, m)
            avg_y = sum(y[nlo:nhi]) / (nhi - nlo)
            avg_x = (x[nhi - 1] + x[nlo]) / 2.0
            best, pick = -1.0, a
            for j in range(lo, hi):
                area = abs((x[a] - avg_x) * (y[j] - y[a]) - (x[a] - x[j]) * (avg_y - y[a]))
                if area > best:
                    best, pick = area, j
            picks.append(pick)
            a = pick
        picks.append(m - 1)
    out = {fin[p] for p in picks} | set(nonfinite_run_ends_ref(values))
    return np.array(sorted(out), dtype=np.int64)


def buckets_ref(x, nb):
    """Equal-width step buckets: edge k = trunc(x0 + (x[-1]/nb - x0/nb) * k); bucket k holds
    the points with edge_{k-1} < step <= edge_k (the first bucket starts at x0); empty
    buckets are skipped."""
    step = x[-1] / nb - x[0] / nb
    out = []
    start = 0
    for k in range(1, nb + 1):
        edge = math.trunc(float(x[0]) + step * k)
        if start >= len(x) or x[start] >= edge:
            continue
        end = int(np.searchsorted(x, edge, side="right"))
        out.append((start, end))
        start = end
    return out


def _extremes_ref(steps, values, n_out, per_bin):
    fin = [i for i, v in enumerate(values) if math.isfinite(v)]
    x = np.array([steps[i] for i in fin], dtype=np.int64)
    y = [float(values[i]) for i in fin]
    if len(fin) <= n_out:
        picks = set(range(len(fin)))
    else:
        picks = set()
        for lo, hi in buckets_ref(x, n_out // per_bin):
            if hi - lo <= per_bin:
                picks |= set(range(lo, hi))
                continue
            seg = y[lo:hi]
            picks |= {lo + seg.index(min(seg)), lo + seg.index(max(seg))}
            if per_bin == 4:
                picks |= {lo, hi - 1}
    out = {fin[p] for p in picks} | set(nonfinite_run_ends_ref(values))
    if len(values):
        out |= {0, len(values) - 1}
    return np.array(sorted(out), dtype=np.int64)


def minmax_ref(steps, values, n_out):
    return _extremes_ref(steps, values, n_out, 2)


def m4_ref(steps, values, n_out):
    return _extremes_ref(steps, values, n_out, 4)
