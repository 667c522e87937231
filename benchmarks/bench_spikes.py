"""Spike kernels vs pandas, and a precision/recall table of the spike detectors.

Usage: python benchmarks/bench_spikes.py [--max N | --sizes a,b,c]
Anchor for the z-score: pandas rolling(w).median() and a rolling median of |x - median|
(the usual pandas MAD z-score; our MAD is taken around each window's own median, so the
anchor is the cheaper approximation, not the same number).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd

from benchmarks._common import compile_time, loss_curve, save, sizes_from_argv, timeit
from kernels.spikes import find_spikes, kill_loss_spike, megatron_spikes, olmo_spikes, robust_zscore

W = 101


def pandas_z(x):
    s = pd.Series(x)
    med = s.rolling(W).median()
    mad = (s - med).abs().rolling(W).median()
    return ((s - med) / (1.4826 * mad)).to_numpy()


def speed_rows(sizes):
    rows = []
    _, x0 = loss_curve(1000)
    rows.append({"kernel": "robust_zscore+find_spikes", "anchor": "-", "n": 0, "notes": "compile (first call, s)",
                 "ours_s": compile_time(robust_zscore, x0, window=W) + compile_time(find_spikes, np.arange(1000), x0)})
    for n in sizes:
        steps, x = loss_curve(n)
        rep = 5
        robust_zscore(x, window=W); pandas_z(x)
        a = timeit(robust_zscore, x, window=W, repeat=rep)
        b = timeit(pandas_z, x, repeat=rep)
        rows.append({"kernel": "robust_zscore w=101", "anchor": "pandas rolling median z", "n": n,
                     "ours_s": a, "anchor_s": b, "ratio": b / a})
        find_spikes(steps, x)
        c = timeit(find_spikes, steps, x, repeat=rep)
        rows.append({"kernel": "find_spikes w=101", "anchor": "pandas rolling median z", "n": n,
                     "ours_s": c, "anchor_s": b, "ratio": b / c})
        for name, fn in (("olmo_spikes", olmo_spikes), ("kill_loss_spike", kill_loss_spike),
                         ("megatron_spikes", megatron_spikes)):
            fn(x)
            rows.append({"kernel": name, "anchor": "-", "n": n, "ours_s": timeit(fn, x, repeat=rep)})
        print(rows[-5:], flush=True)
    return rows


def detection_rows(seeds=range(20), n=20_000, k=10):
    """Curves from loss_curve's shape with k injected spikes of known steps (heights 8-40
    noise units, 1-20 points of decay), Gaussian and t(5) noise. A detection counts if it
    lies within 25 points of an injected spike; precision = true / all detections."""
    rows = []
    for noise in ("gauss", "t5"):
        tally = {d: [0, 0, 0] for d in ("find_spikes", "olmo_spikes", "kill_loss_spike", "megatron_spikes")}
        for seed in seeds:
            rng = np.random.default_rng(seed)
            t = np.arange(1, n + 1)
            level = 2.0 + 8.0 * (t / n * 1000 + 1) ** -0.5
            e = rng.standard_normal(n) if noise == "gauss" else rng.standard_t(5, n) / np.sqrt(5 / 3)
            x = level * (1 + 0.02 * e)
            at = np.sort(rng.choice(np.arange(500, n - 100, 150), size=k, replace=False))
            for a in at:
                h, L = rng.uniform(8, 40), int(rng.integers(1, 20))
                x[a:a + L] += h * 0.02 * level[a] * np.exp(-np.arange(L) * 6.0 / L)
            det = {"find_spikes": find_spikes(t, x)[0],
                   "olmo_spikes": np.flatnonzero(olmo_spikes(x)),
                   "kill_loss_spike": np.flatnonzero(kill_loss_spike(x)),
                   "megatron_spikes": np.flatnonzero(megatron_spikes(x))}
            for name, idx in det.items():
                hit = set()
                tp = 0
                for i in idx:
                    j = np.flatnonzero(np.abs(at - i) <= 25)
                    if j.size:
                        tp += 1
                        hit.add(int(j[0]))
                tally[name][0] += tp
                tally[name][1] += len(idx)
                tally[name][2] += len(hit)
        for name, (tp, nd, found) in tally.items():
            rows.append({"kernel": name, "table": "detection", "noise": noise, "curves": len(seeds),
                         "injected": k * len(seeds), "found": found, "detections": nd,
                         "recall": found / (k * len(seeds)), "precision": (tp / nd) if nd else None})
    return rows


if __name__ == "__main__":
    sizes = sizes_from_argv((10**4, 10**5, 10**6, 10**7))
    rows = speed_rows(sizes) + detection_rows()
    for r in rows:
        print(r)
    import numba
    print(save("spikes", rows, {"pandas": pd.__version__, "numba": numba.__version__}))
