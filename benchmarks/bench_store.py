"""Store write / read / one-metric scan vs plain polars write_parquet / scan_parquet.

One run of n points over 10 metrics (n/10 points each, generated loss curves), handed to
Store.ingest through an in-memory importer (so parsing is not timed: only validation,
dedup, sorting, role inference, event derivation and the atomic Parquet writes).
Anchor: the same frame written with polars ``write_parquet`` (zstd) and read back with
``read_parquet`` / ``scan_parquet().filter(metric == m)``.

    python benchmarks/bench_store.py            # 1e6 and 1e7
    python benchmarks/bench_store.py --max 1e6
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402

from benchmarks._common import loss_curve, save, sizes_from_argv, timeit  # noqa: E402
from engine.ingest.base import Parsed, make_table  # noqa: E402
from engine.store import Store  # noqa: E402

METRICS = 10


def build(n: int):
    per = n // METRICS
    steps, values, names = [], [], []
    for k in range(METRICS):
        s, v = loss_curve(per, seed=k)
        steps.append(s)
        values.append(v)
        names.append(np.full(per, k, dtype=np.int32))
    metric_names = pa.array([f"train/metric_{k}" for k in range(METRICS)])
    metric = pa.DictionaryArray.from_arrays(pa.array(np.concatenate(names)), metric_names).cast(pa.string())
    wall = 1.7e9 + np.concatenate(steps) * 0.5
    t = make_table("bench-run", "x", np.concatenate(steps), np.concatenate(values), wall)
    t = t.set_column(1, "metric", metric)
    return t


def main():
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_store_"))
    try:
        for n in sizes_from_argv((10**6, 10**7)):
            table = build(n)
            parsed = Parsed("bench", "mem", table, content_hash="x")
            mod = types.SimpleNamespace(FORMAT="bench", sniff=lambda p: True,
                                        read=lambda p, run=None, options=None: parsed)
            src = tmp / "src"
            src.write_text("x")
            frame = pl.from_arrow(table).with_columns(
                (pl.col("wall_time") * 1e6).cast(pl.Int64).cast(pl.Datetime("us", "UTC")))
            counter = iter(range(10**6))

            def ours_write():
                d = tmp / f"s{next(counter)}"
                Store(d).ingest([src], mods=[mod])
                shutil.rmtree(d)

            anchor_file = tmp / "anchor.parquet"

            def anchor_write():
                frame.write_parquet(anchor_file, compression="zstd")

            ours_write()
            anchor_write()  # warm-up
            w_ours = timeit(ours_write, repeat=5)
            w_anchor = timeit(anchor_write, repeat=5)
            rows.append(dict(kernel="store.ingest (write)", anchor="polars write_parquet", n=n,
                             ours_s=w_ours, anchor_s=w_anchor, ratio=w_ours / w_anchor,
                             notes="ours also validates, dedups, sorts, infers roles, derives events"))

            store = Store(tmp / "kept")
            store.ingest([src], mods=[mod])
            store.curves()
            pl.read_parquet(anchor_file)
            r_ours = timeit(lambda: store.curves(), repeat=5)
            r_anchor = timeit(lambda: pl.read_parquet(anchor_file), repeat=5)
            rows.append(dict(kernel="store.curves() (read all)", anchor="polars read_parquet", n=n,
                             ours_s=r_ours, anchor_s=r_anchor, ratio=r_ours / r_anchor))

            m = "train/metric_3"
            one = store.curves(run="bench-run", metric=m)
            ref = pl.scan_parquet(anchor_file).filter(pl.col("metric") == m).collect()
            assert one.height == ref.height == n // METRICS
            s_ours = timeit(lambda: store.curves(run="bench-run", metric=m), repeat=5)
            s_anchor = timeit(lambda: pl.scan_parquet(anchor_file).filter(pl.col("metric") == m).collect(),
                              repeat=5)
            rows.append(dict(kernel="store.curves(run, metric)", anchor="polars scan_parquet+filter", n=n,
                             ours_s=s_ours, anchor_s=s_anchor, ratio=s_ours / s_anchor,
                             notes="ours: one row group per metric; anchor: polars' default row groups"))
            shutil.rmtree(tmp / "kept")
            for r in rows[-3:]:
                print(f"{r['kernel']:28s} n={n:>10,}  ours {r['ours_s']:.3f}s  {r['anchor']} "
                      f"{r['anchor_s']:.3f}s  ratio {r['ratio']:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(save("store", rows, versions={"polars": pl.__version__, "pyarrow": pa.__version__}))


if __name__ == "__main__":
    main()
