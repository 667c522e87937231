"""Trend kernels vs their anchors on the shared generated loss curve.

    .venv/bin/python benchmarks/bench_trend.py            # 1e3 .. 1e7 (run once)
    .venv/bin/python benchmarks/bench_trend.py --max 1e5  # quick

- mann_kendall vs scipy.stats.kendalltau(arange(n), x) (same S; tau and p checked equal)
- segment_fit (10 segments) vs numpy.polyfit(deg=1) per segment (slopes checked equal)
- theil_sen (exact, max_points >= n) vs scipy.stats.theilslopes at 1e3 and 1e4;
  theil_sen with its default subsample (2,000 points) alone above that
- fit_power_law vs scipy.optimize.curve_fit (default lm) on the same log-binned points
  with the same count weights, and vs curve_fit on all points up to 1e5; "agree" says
  whether both reach the same optimum (relative RSS gap < 1e-6).
Medians of >= 5 repetitions after a warm-up; compile time on its own row; peak RSS of a
fresh subprocess at the largest size.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import scipy  # noqa: E402
import scipy.stats as sst  # noqa: E402
from scipy.optimize import curve_fit  # noqa: E402

from benchmarks._common import compile_time, loss_curve, peak_rss_mb, save, sizes_from_argv, timeit  # noqa: E402
from kernels.trend import _log_bin, fit_power_law, kendall_tau, mann_kendall, segment_fit, theil_sen  # noqa: E402


def _model(t, c, a, k):
    return c + a * t ** -k


def _rss(t, y, w, p):
    r = y - _model(t, *p)
    return float(np.sum(w * r * r))


def main() -> None:
    sizes = sizes_from_argv()
    rows: list[dict] = []

    def add(**row):
        rows.append(row)
        print({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

    # peak memory at the largest size, fresh subprocess per case. Measured first: on
    # Linux a child's ru_maxrss starts from the parent's resident size at fork, so
    # measuring after the 1e4 theilslopes run (GBs) would report the parent's peak.
    n = max(sizes)
    prep = f"from benchmarks._common import loss_curve\nimport numpy as np\ns, v = loss_curve({n})\n"
    base = peak_rss_mb(prep)
    cases = {
        "mann_kendall": "from kernels.trend import mann_kendall\nmann_kendall(v)",
        "scipy kendalltau": "import scipy.stats as sst\nsst.kendalltau(np.arange(len(v)), v)",
        "segment_fit": "from kernels.trend import segment_fit\nsegment_fit(s, v, [len(v)//2, len(v)])",
        "fit_power_law": "from kernels.trend import fit_power_law\nfit_power_law(s, v)",
    }
    for name, code in cases.items():
        mb = peak_rss_mb(prep + code)
        add(kernel=f"peak memory: {name}", n=n, peak_mb=round(mb, 1), notes=f"curve alone: {base:.1f} MiB")

    # compile time: a fresh process with an empty numba cache, so this is the real
    # compilation, not a cache load; then the first call here (cache load when warm)
    code = ("import time, json\nfrom benchmarks._common import loss_curve\n"
            "from kernels.trend import *\ns, v = loss_curve(1000)\nout = {}\n"
            "for name, f in [('mann_kendall', lambda: mann_kendall(v)),\n"
            "                ('segment_fit', lambda: segment_fit(s, v, [500, 1000])),\n"
            "                ('theil_sen', lambda: theil_sen(s, v)),\n"
            "                ('fit_power_law', lambda: fit_power_law(s, v))]:\n"
            "    t0 = time.perf_counter(); f(); out[name] = time.perf_counter() - t0\n"
            "print(json.dumps(out))")
    with tempfile.TemporaryDirectory() as cache:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "NUMBA_CACHE_DIR": cache})
    cold = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}
    s0, v0 = loss_curve(1000)
    for name, f in [("mann_kendall", lambda: mann_kendall(v0)),
                    ("segment_fit", lambda: segment_fit(s0, v0, [500, 1000])),
                    ("theil_sen", lambda: theil_sen(s0, v0)),
                    ("fit_power_law", lambda: fit_power_law(s0, v0))]:
        add(kernel=f"{name} (compile, empty cache)", n=1000, ours_s=cold.get(name, proc.stderr[-80:]))
        add(kernel=f"{name} (first call, cache load)", n=1000, ours_s=compile_time(f))

    for n in sizes:
        steps, values = loss_curve(n)
        x = np.arange(n)
        rep = 5

        # --- Mann-Kendall
        mann_kendall(values)
        ours = timeit(mann_kendall, values, repeat=rep)
        ref = sst.kendalltau(x, values, method="asymptotic")
        anchor = timeit(sst.kendalltau, x, values, method="asymptotic", repeat=rep)
        tau, p = kendall_tau(values)
        same = math.isclose(tau, ref.statistic, rel_tol=1e-12) and math.isclose(p, ref.pvalue, rel_tol=1e-9, abs_tol=1e-300)
        add(kernel="mann_kendall", anchor="scipy kendalltau(arange, x)", n=n, ours_s=ours, anchor_s=anchor,
            ratio=anchor / ours, agree=str(same))

        # --- segment_fit vs polyfit per segment
        bkps = list(np.linspace(0, n, 11).astype(int)[1:])
        starts = [0] + bkps[:-1]
        sf = steps.astype(float)

        def polyfit_all():
            return [np.polyfit(sf[a:b], values[a:b], 1) for a, b in zip(starts, bkps)]

        segment_fit(steps, values, bkps)
        ours = timeit(segment_fit, steps, values, bkps, repeat=rep)
        polyfit_all()
        anchor = timeit(polyfit_all, repeat=rep)
        got = segment_fit(steps, values, bkps)[:, :2]
        want = np.array(polyfit_all())
        same = bool(np.allclose(got, want, rtol=1e-6, atol=1e-12))
        add(kernel="segment_fit (10 segments)", anchor="numpy polyfit deg=1 per segment", n=n, ours_s=ours,
            anchor_s=anchor, ratio=anchor / ours, agree=str(same))

        # --- Theil-Sen
        if n <= 10_000:
            theil_sen(steps, values, max_points=n)
            ours = timeit(theil_sen, steps, values, max_points=n, repeat=rep)
            anchor = timeit(sst.theilslopes, values, sf, repeat=rep)
            a = theil_sen(steps, values, max_points=n)
            b = sst.theilslopes(values, sf)
            same = (a.slope, a.low_slope, a.high_slope) == (b.slope, b.low_slope, b.high_slope)
            add(kernel="theil_sen (exact, all pairs)", anchor="scipy theilslopes", n=n, ours_s=ours,
                anchor_s=anchor, ratio=anchor / ours, agree=str(same))
        if n > 2000:
            ours = timeit(theil_sen, steps, values, repeat=rep)
            add(kernel="theil_sen (2,000-point subsample)", n=n, ours_s=ours,
                notes="scipy needs n^2/2 slopes: ~40 GB at 1e5")

        # --- power law
        fit = fit_power_law(steps, values)
        ours = timeit(fit_power_law, steps, values, repeat=rep)
        if fit.n_bins < fit.n:
            tb, yb, wb = _log_bin(sf, values, 2000)
        else:
            tb, yb, wb = sf, values, np.ones(n)
        p0 = (float(yb.min()), float(yb[0] - yb.min()), 0.5)

        def cf():
            return curve_fit(_model, tb, yb, p0=p0, sigma=1 / np.sqrt(wb), maxfev=20000)

        try:
            pc, _ = cf()
            anchor = timeit(cf, repeat=rep)
            r_ours, r_cf = _rss(tb, yb, wb, fit[:3]), _rss(tb, yb, wb, pc)
            agree = f"{abs(r_ours - r_cf) / r_cf < 1e-6} (rss ours/cf {r_ours / r_cf:.6f})"
        except RuntimeError as e:
            anchor, agree = float("nan"), f"curve_fit failed: {e}"[:80]
        add(kernel="fit_power_law", anchor=f"curve_fit on the same {tb.size} points", n=n, ours_s=ours,
            anchor_s=anchor, ratio=anchor / ours, agree=agree,
            notes=f"converged={fit.converged} l_inf={fit.l_inf:.3f} a={fit.a:.3f} alpha={fit.alpha:.3f}")
        if n <= 100_000:
            def cf_all():
                return curve_fit(_model, sf, values, p0=p0, maxfev=20000)
            try:
                cf_all()
                anchor = timeit(cf_all, repeat=rep)
                add(kernel="fit_power_law", anchor="curve_fit on all points", n=n, ours_s=ours, anchor_s=anchor,
                    ratio=anchor / ours, notes="different data (ours bins above 2,000 points)" if n > 2000 else "")
            except RuntimeError as e:
                add(kernel="fit_power_law", anchor="curve_fit on all points", n=n, ours_s=ours,
                    notes=f"curve_fit failed: {e}"[:80])

    path = save("trend", rows, versions={"scipy": scipy.__version__, "numpy": np.__version__})
    print("wrote", path)


if __name__ == "__main__":
    main()
