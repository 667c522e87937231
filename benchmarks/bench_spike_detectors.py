"""Spike detectors compared on labelled spikes: recall, precision, false detections.

Usage: python benchmarks/bench_spike_detectors.py
Writes benchmarks/results/spike_detectors.json and prints a markdown table.

Detectors (each on the raw train-loss curve, lower is better):
- losscope: the analysis path, engine.analyse.analyse_curve(kind="loss") -> its spikes
  (find_spikes on the detrended curve in local noise units, threshold_z =
  AnalysisParams.spike_threshold_z);
- find_spikes: kernels.spikes.find_spikes at its kernel defaults on the raw values;
- olmo: kernels.spikes.olmo_spikes (mean + 6 sd of the previous 128 values);
- kill_loss_spike: llm-foundry's KillLossSpike (5th consecutive loss >= 2x the mean of the
  previous window, window = max(100, 5% of the run));
- megatron: Megatron-LM's spiky-loss check (>= 10x the max of the first 100 finite values).

Curves (all seeds fixed):
- loss_spike: data/generate.py's loss_spike scenario, train/loss, seeds 0..39; each
  LOSS_SPIKE label's step_start is a labelled spike (height 1.15x-2x of the clean level,
  fast or slow decay);
- healthy: train loss of healthy_pretrain, healthy_noisy_pretrain, healthy_step_lr and
  healthy_sft, seeds 0..19 each; no labels, every detection is false;
- sweep: N points of 2 + 8 (t/N*1000 + 1)^-0.5 times (1 + q e), q = 1% or 5% (the range of
  generate's pretraining noise, 0.4-8%), e unit-variance Gaussian, t(5) or AR(1) phi = 0.8
  (data.generate.ar1); K spikes, >= 300 points apart,
  from point 400 on, multiply the noisy loss by r in {1.2, 1.5, 2, 3, 5, 10} on 1 point
  (single) or 5 consecutive points (burst); seeds 0..SEEDS-1 per condition. A 1.2x spike
  is 20 noise sd high at q = 1% and 4 sd at q = 5%.

Scoring, in logged points: TOL = 10. A labelled spike starting at index a and lasting L
points is found when some detection lies in [a - TOL, a + L - 1 + TOL]. Detections are
merged into events (sorted; a new event starts when the gap to the previous detection is
> TOL), so a burst or a flagged decay counts once; an event is true when any of its
detections lies in some label's window. recall = found labels / labels; precision = true
events / events; false per 10k = false events per 10,000 points of the condition's curves.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks._common import save
from data.generate import ar1, make_run
from engine.analyse import AnalysisParams, analyse_curve
from kernels.spikes import find_spikes, kill_loss_spike, megatron_spikes, olmo_spikes

TOL = 10
N = 6000
K = 10
SEEDS = 6
NOISE_RELS = (0.01, 0.05)  # noise sd as a fraction of the loss
HEIGHTS = (1.2, 1.5, 2.0, 3.0, 5.0, 10.0)
LENGTHS = (1, 5)
NOISES = ("gauss", "t5", "ar1")
HEALTHY = ("healthy_pretrain", "healthy_noisy_pretrain", "healthy_step_lr", "healthy_sft")
DETECTORS = ("losscope", "find_spikes", "olmo", "kill_loss_spike", "megatron")


def detect(steps: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """Indices flagged by each detector."""
    _, _, sp = analyse_curve(steps, x, direction="min", kind="loss")
    lc = np.searchsorted(steps, np.array([d["step"] for d in sp], dtype=np.int64))
    return {"losscope": lc,
            "find_spikes": find_spikes(steps, x)[0],
            "olmo": np.flatnonzero(olmo_spikes(x)),
            "kill_loss_spike": np.flatnonzero(kill_loss_spike(x)),
            "megatron": np.flatnonzero(megatron_spikes(x))}


def score(det: np.ndarray, starts: np.ndarray, length: int) -> tuple[int, int, int]:
    """(labels found, events, true events) for detections det and labels at starts."""
    det = np.sort(np.asarray(det, dtype=np.int64))
    lo, hi = starts - TOL, starts + length - 1 + TOL
    found = sum(1 for a, b in zip(lo, hi) if np.any((det >= a) & (det <= b)))
    events = true = 0
    if det.size:
        cuts = np.flatnonzero(np.diff(det) > TOL) + 1
        for ev in np.split(det, cuts):
            events += 1
            if any(np.any((ev >= a) & (ev <= b)) for a, b in zip(lo, hi)):
                true += 1
    return found, events, true


class Tally:
    def __init__(self):
        self.t = {d: [0, 0, 0, 0] for d in DETECTORS}  # labels, found, events, true
        self.points = 0
        self.curves = 0

    def add(self, steps, x, starts, length):
        self.points += x.size
        self.curves += 1
        for name, idx in detect(steps, x).items():
            f, e, tr = score(idx, starts, length)
            s = self.t[name]
            s[0] += starts.size
            s[1] += f
            s[2] += e
            s[3] += tr

    def rows(self, **cond):
        out = []
        for name, (lab, found, ev, tr) in self.t.items():
            out.append(dict(cond, detector=name, curves=self.curves, points=self.points, labels=lab,
                            found=found, events=ev, true_events=tr,
                            recall=found / lab if lab else None,
                            precision=tr / ev if ev else None,
                            false_per_10k=(ev - tr) / self.points * 1e4))
        return out


def train_loss(run):
    for m, meta in run.metrics.items():
        if meta["kind"] == "loss" and meta["split"] == "train":
            return run.curves[m]
    raise KeyError(f"{run.name}: no train loss")


def scenario_rows():
    rows = []
    tal = Tally()
    for seed in range(40):
        run = make_run("loss_spike", seed)
        s, x = train_loss(run)
        starts = np.array([np.searchsorted(s, e["step_start"]) for e in run.expected
                           if e["code"] == "LOSS_SPIKE"], dtype=np.int64)
        tal.add(s, x, starts, 1)
    rows += tal.rows(condition="loss_spike scenario (1.15-2x)", source="generate", seeds=40)
    tal = Tally()
    for sc in HEALTHY:
        for seed in range(20):
            s, x = train_loss(make_run(sc, seed))
            tal.add(s, x, np.zeros(0, dtype=np.int64), 1)
    rows += tal.rows(condition="healthy (pretrain, noisy, step_lr, sft)", source="generate", seeds=20)
    return rows


def noise(rng, kind, n):
    if kind == "gauss":
        return rng.standard_normal(n)
    if kind == "t5":
        return rng.standard_t(5, n) / np.sqrt(5 / 3)
    return ar1(rng, n, 0.8)


def sweep_rows():
    rows = []
    t = np.arange(1, N + 1, dtype=np.int64)
    level = 2.0 + 8.0 * (t / N * 1000 + 1) ** -0.5
    slots = np.arange(400, N - 100, 300)
    for q in NOISE_RELS:
        for kind in NOISES:
            for length in LENGTHS:
                for r in HEIGHTS:
                    tal = Tally()
                    for seed in range(SEEDS):
                        rng = np.random.default_rng([seed, int(q * 100), NOISES.index(kind), length, int(r * 10)])
                        x = level * (1 + q * noise(rng, kind, N))
                        starts = np.sort(rng.choice(slots, size=K, replace=False)) + rng.integers(0, 50, K)
                        for a in starts:
                            x[a:a + length] *= r
                        tal.add(t, x, starts, length)
                    rows += tal.rows(condition=f"{kind} {q:.0%} {'single' if length == 1 else '5-step'} {r:g}x",
                                     source="sweep", noise=kind, noise_rel=q, length=length, rel_height=r,
                                     seeds=SEEDS)
    return rows


def cell(r):
    rec = "-" if r["recall"] is None else f"{r['recall']:.2f}"
    pre = "-" if r["precision"] is None or not r["labels"] else f"{r['precision']:.2f}"
    return f"{rec} / {pre} / {r['false_per_10k']:.1f}"


def table(rows):
    conds = list(dict.fromkeys(r["condition"] for r in rows))
    by = {(r["condition"], r["detector"]): r for r in rows}
    lines = ["| condition | " + " | ".join(DETECTORS) + " |",
             "|---|" + "---|" * len(DETECTORS)]
    for c in conds:
        lines.append(f"| {c} | " + " | ".join(cell(by[c, d]) for d in DETECTORS) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    t0 = time.perf_counter()
    rows = scenario_rows() + sweep_rows()
    for r in rows:
        r["tolerance_points"] = TOL
    import numba
    path = save("spike_detectors", rows, {"numba": numba.__version__,
                                          "spike_threshold_z": AnalysisParams().spike_threshold_z})
    print(f"recall / precision / false per 10k points; tolerance {TOL} logged points; "
          f"sweep: {SEEDS} seeds x {K} spikes x {N} points per condition, noise 1% or 5% of the loss")
    print(table(rows))
    print(f"({time.perf_counter() - t0:.0f} s) {path}", file=sys.stderr)
