"""Display kernels vs tsdownsample (Rust): LTTB, MinMax, M4, n_out = 2,000.

Usage: python benchmarks/bench_display.py [--max N | --sizes a,b,c]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import tsdownsample
from tsdownsample import LTTBDownsampler, M4Downsampler, MinMaxDownsampler

from benchmarks._common import compile_time, loss_curve, save, sizes_from_argv, timeit
from kernels.display import lttb, m4_downsample, minmax_downsample

N_OUT = 2000

if __name__ == "__main__":
    sizes = sizes_from_argv((10**4, 10**5, 10**6, 10**7))
    pairs = (("lttb", lttb, LTTBDownsampler()), ("minmax_downsample", minmax_downsample, MinMaxDownsampler()),
             ("m4_downsample", m4_downsample, M4Downsampler()))
    s0, v0 = loss_curve(1000)
    rows = [{"kernel": name, "anchor": "-", "n": 0, "notes": "compile (first call, s)",
             "ours_s": compile_time(fn, s0, v0, n_out=100)} for name, fn, _ in pairs]
    for n in sizes:
        steps, x = loss_curve(n)
        for name, fn, ts in pairs:
            fn(steps, x, n_out=N_OUT); ts.downsample(steps, x, n_out=N_OUT)
            a = timeit(fn, steps, x, n_out=N_OUT, repeat=5)
            b = timeit(ts.downsample, steps, x, n_out=N_OUT, repeat=5)
            rows.append({"kernel": name, "anchor": f"tsdownsample {type(ts).__name__}", "n": n, "n_out": N_OUT,
                         "ours_s": a, "anchor_s": b, "ratio": b / a})
            print(rows[-1], flush=True)
    print(save("display", rows, {"tsdownsample": tsdownsample.__version__}))
