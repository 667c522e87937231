"""Smoothing kernels against their anchors on the same generated loss curve.

    .venv/bin/python benchmarks/bench_smoothing.py            # 1e3 .. 1e7
    .venv/bin/python benchmarks/bench_smoothing.py --max 1e6  # quick

Each row: our kernel and one anchor at one size, medians of >= 5 interleaved
repetitions after a warm-up; ratio = anchor_s / ours_s (> 1: ours faster). Rows with
anchor "one pass (np.copy)" give the memory-bandwidth floor: their ratio is
ours_s / copy_s ("within Nx of one pass"). The first call of each kernel (numba
compile, or load from the on-disk cache) is its own row, kind "compile". Peak RSS
comes from a fresh subprocess per case at the largest size.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bottleneck as bn  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import polars as pl  # noqa: E402
import scipy  # noqa: E402
from scipy.ndimage import gaussian_filter1d, median_filter  # noqa: E402

from benchmarks._common import compile_time, loss_curve, peak_rss_mb, save, sizes_from_argv  # noqa: E402
from kernels import smoothing as sm  # noqa: E402

ALPHA = 0.01
WEIGHT = 1 - ALPHA
WINDOW = 101
SIGMA = 10.0
HALF_LIFE = 69.0  # alpha 0.01 per unit step


def cases(steps, x):
    """(kernel, ours, [(anchor, fn), ...]) on one curve."""
    ps = pl.Series(x)
    ds = pd.Series(x)
    frame = pl.DataFrame({"s": steps, "x": x})
    return [
        ("ema", lambda: sm.ema(x, alpha=ALPHA),
         [("polars ewm_mean(adjust=False)", lambda: ps.ewm_mean(alpha=ALPHA, adjust=False)),
          ("pandas ewm(adjust=False).mean", lambda: ds.ewm(alpha=ALPHA, adjust=False).mean())]),
        ("debiased_ema", lambda: sm.debiased_ema(x, weight=WEIGHT),
         [("polars ewm_mean(adjust=True)", lambda: ps.ewm_mean(alpha=ALPHA, adjust=True)),
          ("pandas ewm(adjust=True).mean", lambda: ds.ewm(alpha=ALPHA, adjust=True).mean())]),
        ("time_weighted_ema", lambda: sm.time_weighted_ema(steps, x, half_life_steps=HALF_LIFE),
         [("polars ewm_mean_by", lambda: frame.select(pl.col("x").ewm_mean_by("s", half_life=f"{int(HALF_LIFE)}i")))]),
        ("rolling_mean w=101", lambda: sm.rolling_mean(x, window=WINDOW),
         [("bottleneck move_mean", lambda: bn.move_mean(x, WINDOW, min_count=1))]),
        ("rolling_median w=101", lambda: sm.rolling_median(x, window=WINDOW),
         [("bottleneck move_median", lambda: bn.move_median(x, WINDOW, min_count=1))]),
        ("rolling_median w=101 centred", lambda: sm.rolling_median(x, window=WINDOW, center=True),
         [("scipy.ndimage median_filter", lambda: median_filter(x, size=WINDOW, mode="nearest"))]),
        ("gaussian_smooth sigma=10", lambda: sm.gaussian_smooth(steps, x, sigma_steps=SIGMA),
         [("scipy gaussian_filter1d", lambda: gaussian_filter1d(x, SIGMA, truncate=4.0))]),
        ("hampel_filter w=101", lambda: sm.hampel_filter(x, window=WINDOW), []),
    ]


STREAMING = {"ema", "debiased_ema", "time_weighted_ema", "rolling_mean w=101"}


def interleaved(fns: dict, repeat: int) -> dict:
    """Median seconds of each fn, repetitions interleaved so load hits all alike."""
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_rss_rows(n: int) -> list[dict]:
    """Peak RSS of each case in a fresh subprocess. The curve is written to a .npy file
    first and loaded by the child, so the child's peak is the imports, the curve and the
    call (not the generator's temporaries); the baseline child makes the same call on
    1,000 points, so peak - baseline is what the full-size call adds."""
    import tempfile
    tmp = Path(tempfile.mkdtemp())
    s, x = loss_curve(n)
    np.save(tmp / "s.npy", s)
    np.save(tmp / "x.npy", x)
    setup = (f"import numpy as np; s = np.load({str(tmp / 's.npy')!r}); x = np.load({str(tmp / 'x.npy')!r}); "
             "from kernels import smoothing as sm\n")
    out = []
    # each case's baseline runs the same call on 1,000 points first (imports, numba
    # cache load, curve), so the difference is the memory the full-size call adds
    for kernel, code in [("ema", "sm.ema({x}, alpha=0.01)"), ("rolling_median w=101", "sm.rolling_median({x}, window=101)"),
                         ("rolling_mean w=101", "sm.rolling_mean({x}, window=101)"),
                         ("gaussian_smooth sigma=10", "sm.gaussian_smooth({s}, {x}, sigma_steps=10.0)"),
                         ("anchor: bottleneck move_median", "import bottleneck as bn; bn.move_median({x}, 101, min_count=1)"),
                         ("anchor: polars ewm_mean", "import polars as pl; pl.Series({x}).ewm_mean(alpha=0.01, adjust=False)")]:
        warm = code.format(x="x[:1000]", s="s[:1000]")
        base = peak_rss_mb(setup + warm)
        mb = peak_rss_mb(setup + warm + "\n" + code.format(x="x", s="s"))
        out.append({"kernel": kernel, "kind": "peak_rss", "n": n, "peak_rss_mb": mb, "baseline_rss_mb": base,
                     "added_mb": mb - base, "input_mb": n * 8 / 2**20,
                     "notes": "fresh subprocess, curve loaded from .npy; baseline = imports + curve + the call on 1,000 points"})
        print(f"peak RSS n={n:,} {kernel}: +{mb - base:.0f} MiB over baseline {base:.0f} MiB "
              f"(input {n * 8 / 2**20:.0f} MiB)", flush=True)
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    return out


def main() -> None:
    sizes = sizes_from_argv()
    if "--rss-only" in sys.argv:
        import json
        saved = json.loads((Path(__file__).resolve().parent / "results" / "smoothing.json").read_text())
        rows = [r for r in saved["rows"] if r.get("kind") != "peak_rss"] + peak_rss_rows(max(sizes))
        print(f"wrote {save('smoothing', rows, versions=saved['versions'])}")
        return
    rows = []
    steps, x = loss_curve(1000)
    for kernel, ours, _ in cases(steps, x):
        rows.append({"kernel": kernel, "kind": "compile", "n": 1000, "ours_s": compile_time(ours),
                     "notes": "first call in this process (numba compile or cache load)"})
    for n in sizes:
        steps, x = loss_curve(n)
        repeat = 5 if n >= 10**6 else 21
        floor = {"np.copy": lambda: np.copy(x), "np.sum": lambda: np.sum(x)}
        for kernel, ours, anchors in cases(steps, x):
            fns = {"ours": ours, **{a: f for a, f in anchors}, **floor}
            for f in fns.values():
                f()  # warm-up
            t = interleaved(fns, repeat)
            for anchor, _ in anchors:
                rows.append({"kernel": kernel, "anchor": anchor, "n": n, "ours_s": t["ours"],
                             "anchor_s": t[anchor], "ratio": t[anchor] / t["ours"],
                             "notes": "ratio = anchor / ours"})
            rows.append({"kernel": kernel, "anchor": "one pass (np.copy)", "n": n, "ours_s": t["ours"],
                         "anchor_s": t["np.copy"], "ratio": t["ours"] / t["np.copy"],
                         "np_sum_s": t["np.sum"], "streaming": kernel in STREAMING,
                         "notes": "ratio = ours / copy: times one memory pass"})
            line = f"n={n:>9,} {kernel:30s} ours {t['ours'] * 1e3:9.3f} ms  copy x{t['ours'] / t['np.copy']:6.1f}"
            for anchor, _ in anchors:
                line += f" | {anchor} {t[anchor] * 1e3:9.3f} ms ({t[anchor] / t['ours']:.2f}x)"
            print(line, flush=True)
    n = max(sizes)
    rss_rows = peak_rss_rows(n)
    rows += rss_rows
    path = save("smoothing", rows, versions={"polars": pl.__version__, "pandas": pd.__version__,
                                             "bottleneck": bn.__version__, "scipy": scipy.__version__})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
