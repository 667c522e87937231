"""Batch over a store of generated runs: serial vs local spawned processes vs Dask.

A store of N runs (default 1,000: data/generate.py make_run over every scenario with
seeds 0, 1, 2, ..., each curve thinned to at most --points points) is diagnosed:

- serial (this process), local (ProcessPoolExecutor, spawn, --workers processes) and
  Dask (LocalCluster of --workers processes, client.map), each from scratch (force);
- the re-run over the unchanged store, which must analyse nothing.

Each full batch runs once (a batch of 1,000 runs is minutes on a shared 2-core box, so
five repetitions are not affordable); the re-run (cheap) is repeated five times, median.
Worker start-up (imports, kernel cache load) is part of the local and Dask times: it is
what a user pays. Usage: python benchmarks/bench_batch.py [--runs N] [--points P] [--workers W]
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from benchmarks._common import save, timeit  # noqa: E402


def _arg(name, default):
    return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def build_store(folder: Path, n_runs: int, points: int):
    from data.generate import SCENARIOS, curves_frame, make_run
    from engine.store import Store

    names = sorted(SCENARIOS)
    parts = []
    for i in range(n_runs):
        run = make_run(names[i % len(names)], i // len(names), f"{names[i % len(names)]}-{i:05d}")
        f = curves_frame(run)
        thinned = []
        for (_,), part in f.partition_by("metric", as_dict=True, maintain_order=True).items():
            every = max(1, math.ceil(part.height / points))
            thinned.append(part.gather_every(every))
        parts.append(pl.concat(thinned))
    src = folder / "src"
    src.mkdir()
    frame = pl.concat(parts)
    frame.write_parquet(src / "generated.parquet")
    store = Store(folder / "store")
    t0 = time.perf_counter()
    store.ingest(src)
    return store, frame.height, time.perf_counter() - t0


def main() -> None:
    from engine.batch import run_batch, warm_up

    n_runs = _arg("--runs", 1000)
    points = _arg("--points", 300)
    workers = _arg("--workers", 2)
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    rows = []
    try:
        store, n_points, ingest_s = build_store(tmp, n_runs, points)
        print(f"store: {n_runs:,} runs, {n_points:,} points, ingest {ingest_s:.1f} s", flush=True)
        t0 = time.perf_counter()
        warm_up()
        compile_s = time.perf_counter() - t0
        print(f"warm-up (compile or cache load) {compile_s:.1f} s", flush=True)
        results = {}
        for executor in ("serial", "local", "dask"):
            t0 = time.perf_counter()
            res = run_batch(store, executor=executor, workers=workers, force=True)
            sec = time.perf_counter() - t0
            assert len(res.analysed) == n_runs and not res.failed, (executor, res.summary())
            f = res.findings.with_columns(pl.col("metrics").list.join("\x1f"))
            results[executor] = f.sort(f.columns)  # every column: findings may tie on run, code, step, message
            rows.append(dict(case=f"first batch, {executor}", runs=n_runs, points=n_points, workers=workers
                             if executor != "serial" else 1, seconds=round(sec, 2),
                             runs_per_s=round(n_runs / sec, 2), analysed=len(res.analysed)))
            print(rows[-1], flush=True)
        same = results["local"].equals(results["serial"]) and results["dask"].equals(results["serial"])
        res = run_batch(store)
        assert res.analysed == [] and len(res.skipped) == n_runs, (res.summary(), len(store.run_names()))
        rerun = timeit(lambda: run_batch(store), repeat=5)
        rows.append(dict(case="re-run, unchanged store", runs=n_runs, points=n_points, workers=0,
                         seconds=round(rerun, 3), runs_per_s=round(n_runs / rerun, 1), analysed=0))
        print(rows[-1], flush=True)
        for r in rows:
            r["serial_over_this"] = round(rows[0]["seconds"] / r["seconds"], 2)
        rows.append(dict(case="notes", ingest_s=round(ingest_s, 2), warm_up_s=round(compile_s, 2),
                         findings=results["serial"].height, local_and_dask_equal_serial=same))
        print(rows[-1], flush=True)
        import dask
        import polars
        save("batch", rows, versions={"dask": dask.__version__, "polars": polars.__version__})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
