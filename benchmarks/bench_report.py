"""HTML run report: file size and render time for runs of 1e4..1e7 steps.

The run: train/loss and grad_norm with n points each (benchmarks._common.loss_curve: a
power-law loss with a plateau, level shifts and spikes, plus a NaN), val/loss with
n / 100 points, diagnosed (features, segments, spikes, findings in the store) when
n <= --diagnose-max (default 1e6; the analysis of 1e7 points is benchmarked elsewhere).

ours: engine.report.render_run_report(store, run, max_points=4000): reads the curves
from the store, M4 + debiased EMA + LTTB, writes one self-contained file.
anchor: what a user would write with the anchor libraries: the same curves read from
the store, downsampled with tsdownsample's M4Downsampler(n_out=4000), one plotly.py
Figure with a trace per metric, fig.write_html(include_plotlyjs=True) (no smoothing,
no shading, no findings: it draws less).
naive: plotly.py write_html of the full curves, no downsampling (size only, n <= 1e6).
Peak memory of ours: a fresh subprocess per size (VmHWM).

Usage: python benchmarks/bench_report.py [--max N | --sizes a,b,c] [--diagnose-max N]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import plotly
import plotly.graph_objects as go
import polars as pl
import tsdownsample
from tsdownsample import M4Downsampler

from benchmarks._common import loss_curve, peak_rss_mb, save, sizes_from_argv, timeit
from engine.diagnose import diagnose
from engine.ingest import table as table_importer
from engine.report import render_run_report
from engine.report.html import plotly_js
from engine.store import Store

MAX_POINTS = 4000
RUN = "bench-run"


def build_store(folder: Path, n: int) -> Store:
    steps, loss = loss_curve(n, seed=1)
    loss[n // 3] = np.nan
    _, grad = loss_curve(n, seed=2)
    grad = 0.5 + (grad - grad.min()) * 0.2
    vs = steps[:: 100] if n >= 1000 else steps
    _, val = loss_curve(vs.size, seed=3)
    frame = pl.concat([
        pl.DataFrame({"metric": "train/loss", "step": steps, "value": loss}),
        pl.DataFrame({"metric": "grad_norm", "step": steps, "value": grad}),
        pl.DataFrame({"metric": "val/loss", "step": vs, "value": val + 0.05}),
    ]).with_columns(pl.lit(RUN).alias("run")).select("run", "metric", "step", "value")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.parquet"
    frame.write_parquet(path)
    store = Store(folder / "store")
    store.ingest(path, mods=[table_importer])
    path.unlink()
    return store


def anchor_report(store: Store, out: Path) -> None:
    cur = store.curves(RUN)
    fig = go.Figure()
    ds = M4Downsampler()
    for (metric,), part in cur.partition_by("metric", as_dict=True, maintain_order=True).items():
        x = part["step"].to_numpy()
        y = part["value"].to_numpy()
        fin = np.isfinite(y)
        x, y = x[fin], y[fin]
        idx = ds.downsample(x, y, n_out=MAX_POINTS) if x.size > MAX_POINTS else np.arange(x.size)
        fig.add_trace(go.Scatter(x=x[idx], y=y[idx], mode="lines", name=metric))
    fig.write_html(out, include_plotlyjs=True)


def naive_report(store: Store, out: Path) -> None:
    cur = store.curves(RUN)
    fig = go.Figure()
    for (metric,), part in cur.partition_by("metric", as_dict=True, maintain_order=True).items():
        fig.add_trace(go.Scatter(x=part["step"].to_numpy(), y=part["value"].to_numpy(), mode="lines", name=metric))
    fig.write_html(out, include_plotlyjs=True)


if __name__ == "__main__":
    sizes = sizes_from_argv((10**4, 10**5, 10**6, 10**7))
    args = sys.argv[1:]
    diag_max = int(float(args[args.index("--diagnose-max") + 1])) if "--diagnose-max" in args else 10**6
    js_bytes = len(plotly_js().encode("utf-8"))
    rows = [{"kernel": "plotly.js", "anchor": "-", "n": 0, "notes": "embedded plotly.js (bytes)",
             "bytes": js_bytes}]
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        tmp = Path(tmp)
        small = build_store(tmp / "warm", 1000)
        t0 = time.perf_counter()
        render_run_report(small, RUN, out_path=tmp / "warm.html")
        rows.append({"kernel": "render_run_report", "anchor": "-", "n": 0, "notes": "first call (compile, s)",
                     "ours_s": time.perf_counter() - t0})
        anchor_report(small, tmp / "warm-anchor.html")
        for n in sizes:
            folder = tmp / f"n{n}"
            t0 = time.perf_counter()
            store = build_store(folder, n)
            ingest_s = time.perf_counter() - t0
            diag_s = None
            if n <= diag_max:
                t0 = time.perf_counter()
                found = diagnose(store)
                diag_s = time.perf_counter() - t0
            ours_path, anchor_path = folder / "ours.html", folder / "anchor.html"
            render_run_report(store, RUN, out_path=ours_path, max_points=MAX_POINTS)
            anchor_report(store, anchor_path)
            reps = 5
            ours_s = timeit(render_run_report, store, RUN, out_path=ours_path, max_points=MAX_POINTS, repeat=reps)
            anchor_s = timeit(anchor_report, store, anchor_path, repeat=reps)
            ours_b, anchor_b = ours_path.stat().st_size, anchor_path.stat().st_size
            naive_b = None
            if n <= 10**6:
                naive_report(store, folder / "naive.html")
                naive_b = (folder / "naive.html").stat().st_size
            peak = peak_rss_mb(
                "import sys; sys.path.insert(0, '.')\n"
                "from engine.store import Store\nfrom engine.report import render_run_report\n"
                f"render_run_report(Store({str(folder / 'store')!r}, create=False), {RUN!r}, "
                f"out_path={str(folder / 'peak.html')!r}, max_points={MAX_POINTS})\n")
            rows.append({
                "kernel": "render_run_report", "anchor": "plotly.py write_html + tsdownsample M4",
                "n": n, "points_total": 2 * n + len(range(0, n, 100) if n >= 1000 else range(n)),
                "max_points": MAX_POINTS, "diagnosed": diag_s is not None,
                "ours_s": ours_s, "anchor_s": anchor_s, "ratio": anchor_s / ours_s,
                "ours_bytes": ours_b, "ours_bytes_without_plotlyjs": ours_b - js_bytes,
                "anchor_bytes": anchor_b, "naive_full_curve_bytes": naive_b,
                "ours_peak_rss_mb": peak, "ingest_s": ingest_s, "diagnose_s": diag_s,
                "repeat": reps,
            })
            print(rows[-1], flush=True)
            del store
            for f in folder.rglob("*.html"):
                f.unlink()
    print(save("report", rows, {"plotly": plotly.__version__, "tsdownsample": tsdownsample.__version__,
                                "polars": pl.__version__}))
