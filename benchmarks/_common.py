"""Shared pieces of the benchmark scripts: the generated loss curve, timing, results.

Every script runs ours and the anchor on the same curve in one process, warms both up
first (compile time reported on its own), repeats at least five times and records the
median and the ratio. Results go to benchmarks/results/<family>.json; write_table.py
turns them into the README table.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (10**3, 10**4, 10**5, 10**6, 10**7)


def loss_curve(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A realistic loss curve of n points: power-law decay, level-proportional noise,
    a plateau, a few level shifts and spikes. Returns (steps int64, values float64)."""
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1, dtype=np.int64)
    t = steps / n * 1000.0 + 1.0
    level = 2.0 + 8.0 * t ** -0.5
    # a plateau between 30% and 45% of the run, then a drop (a regime shift)
    a, b = int(0.30 * n), int(0.45 * n)
    if b > a:
        level[a:b] = level[a]
        level[b:] -= 0.3 * (level[a] - level[-1])
    level[int(0.7 * n):] -= 0.1
    values = level * (1.0 + 0.02 * rng.standard_normal(n))
    k = max(1, n // 10_000)
    idx = rng.choice(n, size=k, replace=False)
    values[idx] *= 1.0 + rng.uniform(0.5, 3.0, size=k)
    return steps, values


def timeit(fn, *args, repeat: int = 5, min_total: float = 0.0, **kwargs) -> float:
    """Median wall seconds of fn(*args, **kwargs) over `repeat` runs (after one warm-up
    call, which the caller should have made separately when it includes compilation)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compile_time(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def peak_rss_mb(code: str) -> float:
    """Peak RSS (MiB) of a fresh Python subprocess running `code`.

    Read from the child's own /proc/self/status VmHWM: ru_maxrss is inherited across
    fork/exec on Linux, so a child of a big benchmark process would report the parent's
    peak instead of its own."""
    probe = ("\nfor _l in open('/proc/self/status'):\n"
             "    if _l.startswith('VmHWM:'): print(int(_l.split()[1]))\n")
    proc = subprocess.run([sys.executable, "-c", code + probe],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return int(proc.stdout.strip().splitlines()[-1]) / 1024.0


def machine() -> dict:
    import numba
    return {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d")}


def save(family: str, rows: list[dict], versions: dict | None = None) -> Path:
    """Write rows (dicts with kernel, anchor, n, ours_s, anchor_s, ratio, notes...) to
    results/<family>.json together with the machine and library versions."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{family}.json"
    path.write_text(json.dumps({"family": family, "machine": machine(), "versions": versions or {},
                                "rows": rows}, indent=1))
    return path


def sizes_from_argv(default=SIZES) -> tuple[int, ...]:
    """`--max N` caps the sizes (for a quick run); `--sizes a,b,c` sets them."""
    args = sys.argv[1:]
    if "--sizes" in args:
        return tuple(int(float(s)) for s in args[args.index("--sizes") + 1].split(","))
    if "--max" in args:
        cap = int(float(args[args.index("--max") + 1]))
        return tuple(n for n in default if n <= cap)
    return default
