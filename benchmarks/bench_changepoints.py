"""Changepoints: ours against ruptures (Pelt, Binseg; model "l2") on the same loss curve.

    .venv/bin/python benchmarks/bench_changepoints.py            # full run (~10 min)
    .venv/bin/python benchmarks/bench_changepoints.py --max 1e5  # quick

Penalty: noise_penalty(curve) (BIC, 2 sigma^2 log n), min_size 2. Every ruptures
comparison asserts identical breakpoints before timing counts. ruptures Pelt jump=1
takes minutes at 1e4 points, so it runs once there (repeat noted per row); our PELT
jump=1 at 1e6 is super-linear on loss curves (see research/performance.md section 1)
and also runs once. Everything else: warm-up, then 5 repetitions, median.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import ruptures as rpt  # noqa: E402

from _common import compile_time, loss_curve, peak_rss_mb, save, sizes_from_argv, timeit  # noqa: E402
from kernels.changepoints import binseg, noise_penalty, pelt, pelt_multiscale  # noqa: E402


def row(kernel, anchor, n, ours, anchor_s=None, notes="", **extra):
    r = {"kernel": kernel, "anchor": anchor, "n": n, "ours_s": ours, "anchor_s": anchor_s,
         "ratio": (anchor_s / ours) if anchor_s and ours else None, "notes": notes}
    r.update(extra)
    label = f"{kernel:28s} n={n:>9,d} ours={ours:.3g}s"
    if anchor_s:
        label += f" {anchor}={anchor_s:.3g}s ratio={r['ratio']:,.0f}x"
    print(label, notes, flush=True)
    return r


def once(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return time.perf_counter() - t0, out


def main():
    sizes = sizes_from_argv()
    rows = []
    _, small = loss_curve(2000)
    pen_small = noise_penalty(small)
    rows.append({"kernel": "compile/load (pelt, binseg, pelt_multiscale)", "n": 2000,
                 "ours_s": compile_time(pelt, small, penalty=pen_small)
                 + compile_time(binseg, small, penalty=pen_small)
                 + compile_time(pelt_multiscale, small, penalty=pen_small, block=10),
                 "notes": "first call in the process (numba cache load or compile)"})
    print(rows[-1], flush=True)

    for n in sizes:
        _, y = loss_curve(n)
        pen = noise_penalty(y)
        # --- PELT against ruptures
        for jump in (1, 5):
            if n <= 10**4:
                want = None
                reps = 5 if (n <= 10**3 or jump == 5) else 1
                t_r = []
                for _ in range(reps):
                    t, want = once(lambda: rpt.Pelt(model="l2", min_size=2, jump=jump).fit(y).predict(pen=pen))
                    t_r.append(t)
                got = pelt(y, penalty=pen, jump=jump)
                assert got.tolist() == want, ("pelt differs from ruptures", n, jump)
                ours = timeit(pelt, y, penalty=pen, jump=jump, repeat=7)
                rows.append(row(f"pelt jump={jump}", "ruptures.Pelt(l2)", n, ours, float(np.median(t_r)),
                                f"identical breakpoints ({len(got)}); anchor repeat={reps}",
                                n_bkps=len(got) - 1))
            elif n <= 10**6:
                reps = 1 if (n >= 10**6 and jump == 1) else 5
                t, got = once(pelt, y, penalty=pen, jump=jump)
                ours = t if reps == 1 else timeit(pelt, y, penalty=pen, jump=jump, repeat=reps)
                rows.append(row(f"pelt jump={jump}", "", n, ours, None,
                                f"repeat={reps}; {len(got) - 1} changes", n_bkps=len(got) - 1))
        # --- multi-scale
        if n >= 10**4:
            got = pelt_multiscale(y, penalty=pen)
            ours = timeit(pelt_multiscale, y, penalty=pen, repeat=5)
            note = f"block=ceil(n/1e4)={-(-n // 10_000)}; {len(got) - 1} changes"
            if n <= 10**5:
                full = pelt(y, penalty=pen, pruning="optimal")
                from kernels.changepoints import segment_costs
                c_full = segment_costs(y, full).sum() + pen * len(full)
                c_ms = segment_costs(y, got).sum() + pen * len(got)
                note += f"; penalised cost +{100 * (c_ms - c_full) / c_full:.3f}% vs exact PELT"
            rows.append(row("pelt_multiscale", "", n, ours, None, note, n_bkps=len(got) - 1))
        # --- Binseg
        if n <= 10**4:
            reps = 5 if n <= 10**3 else 1
            t_r = []
            for _ in range(reps):
                t, want = once(lambda: rpt.Binseg(model="l2", min_size=2, jump=1).fit(y).predict(pen=pen))
                t_r.append(t)
            got = binseg(y, penalty=pen)
            assert got.tolist() == want, ("binseg differs from ruptures", n)
            ours = timeit(binseg, y, penalty=pen, repeat=7)
            rows.append(row("binseg pen jump=1", "ruptures.Binseg(l2)", n, ours, float(np.median(t_r)),
                            f"identical breakpoints ({len(got)}); anchor repeat={reps}"))
        else:
            got = binseg(y, penalty=pen)
            ours = timeit(binseg, y, penalty=pen, repeat=5)
            rows.append(row("binseg pen jump=1", "", n, ours, None, f"{len(got) - 1} changes"))
    if 10**6 in sizes:
        code = ("import sys; sys.path.insert(0,'benchmarks'); from _common import loss_curve;"
                "from kernels.changepoints import pelt_multiscale, binseg, noise_penalty;"
                "_, y = loss_curve(10**6); p = noise_penalty(y); pelt_multiscale(y, penalty=p); binseg(y, penalty=p)")
        rows.append({"kernel": "peak RSS, multiscale + binseg", "n": 10**6, "peak_rss_mb": peak_rss_mb(code),
                     "notes": "fresh subprocess incl. curve generation and imports"})
        print(rows[-1], flush=True)
    print(save("changepoints", rows, {"ruptures": rpt.__version__}))


if __name__ == "__main__":
    main()
