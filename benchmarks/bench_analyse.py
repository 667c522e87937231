"""analyse_curve on long curves: time per size, time per stage, peak memory.

Usage: python benchmarks/bench_analyse.py [--max N | --sizes a,b,c] [--baseline REV] [--no-memory]

The curve: a cosine-schedule pretraining loss (data/generate.py: lr_schedule, lm_loss,
1% AR(1) noise with phi 0.7) with 5 injected +1.0 spikes of 20 steps, 1e4..1e7 points.
There is no outside anchor for the whole analysis; with --baseline REV the same script
times engine/analyse.py and kernels/spikes.py as they were at git revision REV (loaded
from `git show` into private modules, every other kernel shared) on the same curve in
the same process, and checks that both give the same features, segments and spikes.

Timing: one warm-up call (compilation and the statsmodels import, reported on its own
line), then the median of 5 calls (1 call at 1e7 points, said in the notes; that call is
also the one timed by stage). Wall time
on a shared machine swings with its load, so process CPU time is recorded beside it.
Stages are timed by wrapping the analyse module's stage functions (outermost call only,
so a helper shared by two stages is counted once); "other" is the rest of analyse_curve
(counts, extremes, block means, residuals, best/improvement figures, JSON).
Peak memory: VmHWM of a fresh subprocess that builds the curve and analyses it, and of
one that only builds it (the difference is what the analysis adds).
"""
from __future__ import annotations

import functools
import importlib.util
import math
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np

from benchmarks._common import peak_rss_mb, save, sizes_from_argv

import engine.analyse as A
from kernels import noise as _noise
from kernels import smoothing as _smooth

SIZES = (10**4, 10**5, 10**6, 10**7)


def _load_generator():
    name = "losscope_data_generate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "data" / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def pretrain_curve(n: int, seed: int = 0):
    """Cosine pretraining loss with 5 spikes; (steps int64, values float64)."""
    gen = _load_generator()
    rng = np.random.default_rng(seed)
    lr = gen.lr_schedule(n, peak=3e-4, warmup=n // 50, kind="cosine")
    loss = gen.lm_loss(lr, l_inf=2.0, amp=8.5, alpha=0.45, tau=30, lr_term=0.1)[1:]
    y = loss * (1 + 0.01 * gen.ar1(rng, n, 0.7))
    for at in rng.choice(np.arange(n // 10, n), 5, replace=False):
        y[at:at + 20] += 1.0
    return np.arange(1, n + 1, dtype=np.int64), y


# ----------------------------------------------------------------------------- stages

STAGES = {  # stage -> functions looked up at call time by analyse_curve
    "noise": [(A, "_mad_noise"), (A, "_snr"), (_noise, "oscillation_index")],
    "noise_change": [(A, "_noise_change")],
    "spikes": [(A, "_find_spikes")],
    "smoother": [(_smooth, "gaussian_smooth")],
    "segments": [(A, "_segments")],
    "tail": [(A, "_tail")],
    "power_law": [(A, "_power_law")],
}


class StageTimer:
    def __init__(self):
        self.wall = {k: 0.0 for k in STAGES}
        self.cpu = {k: 0.0 for k in STAGES}
        self.depth = 0
        self._saved = []

    def install(self):
        for stage, targets in STAGES.items():
            for mod, name in targets:
                if not hasattr(mod, name):
                    continue
                fn = getattr(mod, name)
                self._saved.append((mod, name, fn))
                setattr(mod, name, self._wrap(stage, fn))

    def uninstall(self):
        for mod, name, fn in reversed(self._saved):
            setattr(mod, name, fn)
        self._saved = []

    def _wrap(self, stage, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if self.depth:
                return fn(*args, **kwargs)
            self.depth += 1
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall[stage] += time.perf_counter() - t0
                self.cpu[stage] += time.process_time() - c0
                self.depth -= 1
        return timed


def stage_breakdown(steps, values) -> tuple[dict, dict]:
    """(wall seconds per stage, CPU seconds per stage) of one analyse_curve call."""
    timer = StageTimer()
    timer.install()
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        A.analyse_curve(steps, values, direction="min", kind="loss")
        total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        timer.uninstall()
    out = []
    for per, tot in ((timer.wall, total), (timer.cpu, total_cpu)):
        d = {k: round(v, 4) for k, v in per.items()}
        d["other"] = round(tot - sum(per.values()), 4)
        d["total"] = round(tot, 4)
        out.append(d)
    return out[0], out[1]


# ----------------------------------------------------------------------------- baseline

def load_baseline(rev: str):
    """engine/analyse.py and kernels/spikes.py at git revision `rev`, as private modules."""
    mods = {}
    for name, path in (("spikes", "kernels/spikes.py"), ("analyse", "engine/analyse.py")):
        src = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        src = src.replace("cache=True", "cache=False")  # no cache locator for text from git
        mod = types.ModuleType(f"losscope_baseline_{name}")
        mod.__file__ = str(ROOT / path)
        sys.modules[mod.__name__] = mod
        exec(compile(src, f"{rev}:{path}", "exec"), mod.__dict__)
        mods[name] = mod
    mods["analyse"]._spikes = mods["spikes"]
    return mods["analyse"]


def same_result(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_result(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_result(x, y) for x, y in zip(a, b))
    return a == b


# ----------------------------------------------------------------------------- main

def timed_calls(fn, steps, values, reps):
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(steps, values, direction="min", kind="loss")
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


MEM_CODE = """
import sys; sys.path.insert(0, {root!r})
from benchmarks.bench_analyse import pretrain_curve
s, y = pretrain_curve({n})
{analyse}
"""


def main():
    sizes = sizes_from_argv(SIZES)
    args = sys.argv[1:]
    rev = args[args.index("--baseline") + 1] if "--baseline" in args else None
    memory = "--no-memory" not in args
    base = load_baseline(rev) if rev else None

    rows = []
    s0, y0 = pretrain_curve(200_000, seed=1)  # long enough to compile the one-pass medians too
    t0 = time.perf_counter()
    A.analyse_curve(s0, y0, direction="min", kind="loss")
    warm = time.perf_counter() - t0
    print(f"warm-up (compile + statsmodels import): {warm:.2f} s", flush=True)
    rows.append({"kernel": "analyse_curve", "anchor": "-", "n": 0, "ours_s": warm, "notes": "warm-up call (s)"})
    if base is not None:
        base.analyse_curve(s0, y0, direction="min", kind="loss")

    for n in sizes:
        steps, values = pretrain_curve(n)
        reps = 5 if n < 10**7 else 1
        if reps > 1:
            ours_wall, ours_cpu = timed_calls(A.analyse_curve, steps, values, reps)
            stages, stages_cpu = stage_breakdown(steps, values)
        else:  # one call at 1e7: the staged call is the timed one
            stages, stages_cpu = stage_breakdown(steps, values)
            ours_wall, ours_cpu = stages["total"], stages_cpu["total"]
        row = {"kernel": "analyse_curve", "anchor": f"analyse@{rev}" if base else "-", "n": n,
               "ours_s": ours_wall, "ours_cpu_s": ours_cpu, "reps": reps, "stages_s": stages,
               "stages_cpu_s": stages_cpu,
               "notes": f"median of {reps} call(s)" + ("; 1 call at 1e7 (minutes of machine time)" if reps == 1 else "")}
        if base is not None and n <= 10**6:
            b_wall, b_cpu = timed_calls(base.analyse_curve, steps, values, reps)
            row.update(anchor_s=b_wall, anchor_cpu_s=b_cpu, ratio=b_wall / ours_wall, ratio_cpu=b_cpu / ours_cpu,
                       identical=same_result(list(A.analyse_curve(steps, values, direction="min", kind="loss")),
                                             list(base.analyse_curve(steps, values, direction="min", kind="loss"))))
        if memory:
            code = MEM_CODE.format(root=str(ROOT), n=n, analyse="from engine.analyse import analyse_curve\n"
                                   "analyse_curve(s, y, direction='min', kind='loss')")
            row["peak_mb"] = round(peak_rss_mb(code), 1)
            row["peak_mb_curve_only"] = round(peak_rss_mb(MEM_CODE.format(root=str(ROOT), n=n, analyse="")), 1)
        rows.append(row)
        msg = f"n={n:>10,}: wall {ours_wall:7.3f} s  cpu {ours_cpu:7.3f} s  ({reps} rep)"
        if "anchor_s" in row:
            msg += (f" | {row['anchor']}: wall {row['anchor_s']:.3f} s cpu {row['anchor_cpu_s']:.3f} s,"
                    f" x{row['ratio_cpu']:.1f} cpu, identical={row['identical']}")
        if memory:
            msg += f" | peak {row['peak_mb']} MiB (curve alone {row['peak_mb_curve_only']})"
        print(msg, flush=True)
        print("   stages wall (s): " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()), flush=True)
        print("   stages cpu  (s): " + ", ".join(f"{k} {v:.3f}" for k, v in stages_cpu.items()), flush=True)
    path = save("analyse", rows)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
