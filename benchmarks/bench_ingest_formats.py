"""Ingest speed of the text-format importers (points per second), ours vs a plain anchor.

For each importer: a generated file (or folder) of about N points (default 1e6), read by
our importer and by the obvious pandas/stdlib route that gives the same long table
(the anchor), in the same process; one warm-up each, then >= 5 repetitions, medians,
ratio = anchor time / our time (> 1: we are faster). Then every real file of
../shared/data/real/ that these importers read, ours only (points per second).

Anchors (what a user would write without losscope):
- hf: json.load + pandas.DataFrame(log_history).melt(...).dropna()
- table csv / lightning csv: pandas.read_csv + melt + dropna
- table jsonl: pandas.read_json(lines=True) + melt + dropna
- table parquet: pandas.read_parquet + melt + dropna
- mlflow: pandas.read_csv(sep=" ") per metric file + concat
- text: re.finditer of one key:value regex over the whole text (no step bookkeeping,
  no NaN spelling or unit handling), collected into lists

Usage: python benchmarks/bench_ingest_formats.py [--sizes 1e5,1e6] [--reps 5] [--only text,hf]

--only: run only these cases (and the real files of their formats) and replace their rows
in the existing results file, keeping the others. Each row records the 1-minute load
average when it was measured (the machine is shared: a busy machine slows both sides of
a ratio, but not always equally).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import loss_curve, save, sizes_from_argv, timeit  # noqa: E402
from engine.ingest import hf, lightning, mlflow, table, text  # noqa: E402

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real"


def reps_from_argv(default=5) -> int:
    args = sys.argv[1:]
    return max(5, int(args[args.index("--reps") + 1])) if "--reps" in args else default


# ---- generators: each writes ~n points and returns the path --------------------------

def gen_hf(d: Path, n: int) -> Path:
    k = n // 4  # loss, grad_norm, learning_rate, epoch per entry
    steps, loss = loss_curve(k, seed=1)
    rng = np.random.default_rng(2)
    gn = np.abs(rng.normal(1.0, 0.3, k))
    hist = [{"epoch": round(float(s) / k * 3, 4), "grad_norm": float(g), "learning_rate": 1e-4 * (1 - s / k),
             "loss": round(float(v), 4), "step": int(s)} for s, v, g in zip(steps, loss, gn)]
    p = d / "hf" / "trainer_state.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"global_step": int(k), "log_history": hist}, indent=2, sort_keys=True))
    return p


def _wide(n: int, metrics: int = 10) -> pd.DataFrame:
    rows = n // metrics
    steps, base = loss_curve(rows, seed=3)
    rng = np.random.default_rng(4)
    data = {"step": steps}
    for j in range(metrics):
        data[f"m{j}"] = base * (1 + 0.1 * j) + rng.normal(0, 0.01, rows)
    return pd.DataFrame(data)


def gen_csv(d: Path, n: int) -> Path:
    p = d / "wide.csv"
    _wide(n).to_csv(p, index=False)
    return p


def gen_jsonl(d: Path, n: int) -> Path:
    p = d / "wide.jsonl"
    _wide(n).to_json(p, orient="records", lines=True)
    return p


def gen_parquet(d: Path, n: int) -> Path:
    p = d / "wide.parquet"
    _wide(n).to_parquet(p, index=False)
    return p


def gen_lightning(d: Path, n: int) -> Path:
    # sparse: per step train_loss_step + epoch (2 cells), every 100 steps 3 val cells on an extra row
    rows = n // 2
    steps, loss = loss_curve(rows, seed=5)
    df = pd.DataFrame({"epoch": steps // 1000, "step": steps, "train_loss_step": loss,
                       "val_loss": np.nan, "val_acc": np.nan})
    val = df.iloc[::100].copy()
    val["train_loss_step"] = np.nan
    val["val_loss"] = val["step"] * 0 + 2.5
    val["val_acc"] = 0.5
    out = pd.concat([df, val]).sort_values("step", kind="stable")
    v = d / "lightning_logs" / "version_0"
    v.mkdir(parents=True)
    out.to_csv(v / "metrics.csv", index=False, na_rep="")
    (v / "hparams.yaml").write_text("lr: 0.001\nlayers: 12\n")
    return d / "lightning_logs"


def gen_mlflow(d: Path, n: int) -> Path:
    r = d / "mlruns" / "0" / "0123456789abcdef"
    (r / "metrics").mkdir(parents=True)
    (r / "params").mkdir()
    (r / "meta.yaml").write_text("run_id: 0123456789abcdef\nexperiment_id: '0'\nstatus: 3\n")
    (d / "mlruns" / "0" / "meta.yaml").write_text("experiment_id: '0'\nname: bench\n")
    per = n // 10
    steps, base = loss_curve(per, seed=6)
    ts = 1_700_000_000_000 + steps * 37
    for j in range(10):
        vals = base * (1 + 0.1 * j)
        with open(r / "metrics" / f"m{j}", "w") as f:
            f.write("".join(f"{t} {v!r} {s}\n" for t, v, s in zip(ts.tolist(), vals.tolist(), steps.tolist())))
    return d / "mlruns"


def gen_text(d: Path, n: int) -> Path:
    # modded-nanogpt style: a script header, per-step train_loss with timing, val every 125 steps
    k = n
    steps, loss = loss_curve(k, seed=7)
    lines = ["import torch", "def main():", "    print0(f'step:{step} train_loss:{x}')", "=" * 80]
    for s, v in zip(steps.tolist(), loss.tolist()):
        if s % 125 == 0:
            lines.append(f"step:{s}/{k} val_loss:{v:.4f} train_time:{s * 30}ms step_avg:30.00ms")
        lines.append(f"step:{s}/{k} train_loss:{v:.4f} train_time:{s * 30}ms step_avg:30.00ms")
    p = d / "bench_run.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


# ---- anchors -------------------------------------------------------------------------

def anchor_hf(p: Path):
    with open(p) as f:
        hist = json.load(f)["log_history"]
    return pd.DataFrame(hist).melt(id_vars="step").dropna()


def anchor_csv(p: Path):
    return pd.read_csv(p).melt(id_vars="step").dropna()


def anchor_jsonl(p: Path):
    return pd.read_json(p, lines=True).melt(id_vars="step").dropna()


def anchor_parquet(p: Path):
    return pd.read_parquet(p).melt(id_vars="step").dropna()


def anchor_lightning(p: Path):
    return pd.read_csv(p / "version_0" / "metrics.csv").melt(id_vars="step").dropna()


def anchor_mlflow(p: Path):
    frames = []
    for f in sorted((p / "0" / "0123456789abcdef" / "metrics").iterdir()):
        df = pd.read_csv(f, sep=" ", header=None, names=["timestamp", "value", "step"])
        df["metric"] = f.name
        frames.append(df)
    return pd.concat(frames)


_KV = re.compile(r"step:(\d+)/\d+ (\w+):([-+\d.eE]+|nan)\s")


def anchor_text(p: Path):
    steps, keys, vals = [], [], []
    for m in _KV.finditer(p.read_text()):
        steps.append(int(m.group(1)))
        keys.append(m.group(2))
        vals.append(float(m.group(3)))
    return steps, keys, vals


CASES = [
    ("hf", gen_hf, hf.read, anchor_hf, "json.load + pandas melt"),
    ("table_csv", gen_csv, table.read, anchor_csv, "pandas.read_csv + melt"),
    ("table_jsonl", gen_jsonl, table.read, anchor_jsonl, "pandas.read_json(lines) + melt"),
    ("table_parquet", gen_parquet, table.read, anchor_parquet, "pandas.read_parquet + melt"),
    ("lightning", gen_lightning, lightning.read, anchor_lightning, "pandas.read_csv + melt"),
    ("mlflow", gen_mlflow, mlflow.read, anchor_mlflow, "pandas.read_csv per metric file"),
    ("text", gen_text, text.read, anchor_text, "one regex finditer (no bookkeeping)"),
]

REAL_FILES = {
    "hf": [p for p in sorted(REAL.rglob("trainer_state.json"))],
    "table": [REAL / "plain_csv/core-collapse-leukemia-cnns/training_metrics.csv",
              REAL / "rlhf/toy-ppo-rlhf-systems-kit/runs/run_20250828_211717/logs/train.jsonl",
              REAL / "text_logs/gpt2-124m-shakespeare-memorize/train.log"],
    "lightning": [REAL / "lightning_csv/slm-training-wikitext103/lightning_logs"],
    "mlflow": [REAL / "mlflow/aprendizaje-profundo-meli2019", REAL / "mlflow/swahili-stt-keras"],
    "text": [p for p in sorted(REAL.rglob("*")) if p.is_file() and text.sniff(p)],
}
READERS = {"hf": hf.read, "table": table.read, "lightning": lightning.read, "mlflow": mlflow.read, "text": text.read}


def only_from_argv() -> set[str] | None:
    args = sys.argv[1:]
    return set(args[args.index("--only") + 1].split(",")) if "--only" in args else None


def merge_rows(new_rows: list[dict]) -> list[dict]:
    """The saved rows with those of the same kernel replaced by ``new_rows`` (new kernels appended)."""
    path = Path(__file__).resolve().parent / "results" / "ingest_formats.json"
    old = json.loads(path.read_text())["rows"] if path.exists() else []
    by_kernel = {r["kernel"]: r for r in new_rows}
    out = [by_kernel.pop(r["kernel"], r) for r in old]
    return out + list(by_kernel.values())


def main():
    sizes = sizes_from_argv(default=(10**6,))
    reps = reps_from_argv()
    only = only_from_argv()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for name, gen, ours, anchor, anchor_name in CASES:
                if only is not None and name not in only:
                    continue
                d = Path(tmp) / f"{name}-{n}"
                d.mkdir()
                p = gen(d, n)
                t0 = time.perf_counter()
                points = ours(p).table.num_rows
                first = time.perf_counter() - t0
                anchor(p)
                ours_s = timeit(ours, p, repeat=reps)
                anchor_s = timeit(anchor, p, repeat=reps)
                size_mb = sum(f.stat().st_size for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()) / 2**20
                row = {"kernel": f"ingest_{name}", "anchor": anchor_name, "n": points, "file_mb": round(size_mb, 1),
                       "ours_s": ours_s, "anchor_s": anchor_s, "ratio": anchor_s / ours_s,
                       "points_per_s": points / ours_s, "first_call_s": first, "reps": reps,
                       "load_1min": round(os.getloadavg()[0], 1)}
                rows.append(row)
                print(f"{name:14s} n={points:>9,} {size_mb:6.1f} MB  ours {ours_s:7.3f} s "
                      f"({points / ours_s / 1e6:6.2f} M pts/s)  anchor {anchor_s:7.3f} s  ratio {anchor_s / ours_s:5.2f}"
                      f"  [first call {first:.3f} s]", flush=True)
    if REAL.is_dir():
        for fmt, paths in REAL_FILES.items():
            if only is not None and fmt not in only:
                continue
            paths = [p for p in paths if p.exists()]
            if not paths:
                continue
            read = READERS[fmt]
            points = sum(read(p).table.num_rows for p in paths)
            s = timeit(lambda: [read(p) for p in paths], repeat=reps)
            rows.append({"kernel": f"ingest_{fmt}_real", "anchor": None, "n": points, "files": len(paths),
                         "ours_s": s, "anchor_s": None, "ratio": None, "points_per_s": points / s, "reps": reps,
                         "load_1min": round(os.getloadavg()[0], 1)})
            print(f"real {fmt:9s} {len(paths):3d} files {points:>9,} points  {s:7.3f} s  "
                  f"({points / s / 1e6:6.2f} M pts/s)", flush=True)
    versions = {"polars": pl.__version__, "pandas": pd.__version__}
    print("saved", save("ingest_formats", merge_rows(rows) if only is not None else rows, versions))


if __name__ == "__main__":
    main()
