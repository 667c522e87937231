"""Labelled scenario generator: synthetic training runs with known diagnoses.

Every scenario function takes a seeded ``numpy.random.Generator`` and a run name and
returns a :class:`Run`: curves named as real trainers log them (nanoGPT/Megatron
``train/loss``, Hugging Face ``loss``/``eval_loss``/``learning_rate``, TRL
``objective/kl``, Lightning ``val_acc``, ``<modality>/loss``), the role of each metric
(split, kind, objective, role, direction: what ``metrics`` rows should say), events
(lr_change, data_refresh, phase) and labels:

- ``expected``: findings that must fire, each ``{code, metrics, step_start, step_end,
  tolerance_steps}`` (a finding matches when its code is equal, it names at least one of
  the metrics and its start and end are each within ``tolerance_steps`` of the label's);
  optional ``explained_by`` (event kind a REGIME_SHIFT must cite) and ``severity_max``.
- ``tolerated``: codes that may fire or not (not scored either way).
- ``must_not_fire``: every other code. A finding with one of these codes is a false alarm.
- ``healthy``: no warning or critical finding may fire at all (info findings such as
  CONVERGED or STILL_IMPROVING may, when expected or tolerated).

Realism: pretraining loss is a power law in the integrated learning rate plus a term
proportional to the current LR (so cosine tails flatten and step-LR drops show as
drops), noise is level-proportional and AR(1)-autocorrelated, logging and eval cadences
vary, Hugging Face values are rounded to 4 decimals like ``trainer_state.json``,
accuracies are quantised by the size of the eval set.

CLI::

    python data/generate.py scenarios OUT_DIR --seed 0 --variants 5
    python data/generate.py samples data/runs

Both write one long Parquet file per run (columns run, metric, step, value) and
``labels.json``. Same arguments, same bytes. numpy only (pyarrow to write).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GENERATOR_VERSION = 1

CODES = (
    "NONFINITE", "DIVERGENCE", "LOSS_SPIKE", "ERRATIC", "PLATEAU", "PLATEAU_BROKEN",
    "REGIME_SHIFT", "CONVERGED", "CONVERGED_EARLY", "STILL_IMPROVING", "UNDERFITTING",
    "OVERFITTING", "GENERALIZATION_GAP", "OBJECTIVE_IMBALANCE", "REWARD_HACKING",
    "CORRELATED_SPIKES", "GRAD_NORM_INSTABILITY", "REWARD_COLLAPSE",
)
EVENT_KINDS = ("lr_change", "data_refresh", "resume", "phase", "note")


# --------------------------------------------------------------------------- the record


@dataclass
class Run:
    name: str
    scenario: str
    family: str  # pretrain, sft, reward_model, rlhf, multimodal, classifier
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    expected: list[dict] = field(default_factory=list)
    tolerated: set[str] = field(default_factory=set)
    healthy: bool = False
    params: dict = field(default_factory=dict)

    # -- building
    def curve(self, metric, steps, values, *, split, kind, objective, direction, role="",
              decimals=None):
        steps = np.asarray(steps, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if decimals is not None:
            with np.errstate(invalid="ignore"):
                values = np.round(values, decimals)
        else:  # float32 logging precision, as most trainers keep
            with np.errstate(over="ignore", invalid="ignore"):
                values = values.astype(np.float32).astype(np.float64)
        self.curves[metric] = (steps, values)
        self.metrics[metric] = dict(split=split, kind=kind, objective=objective, role=role,
                                    direction=direction)

    def expect(self, code, metrics, start, end, tol, **extra):
        assert code in CODES, code
        self.expected.append(dict(code=code, metrics=list(metrics), step_start=int(start),
                                  step_end=int(end), tolerance_steps=int(max(1, tol)), **extra))

    def tolerate(self, *codes):
        for c in codes:
            assert c in CODES, c
        self.tolerated.update(codes)

    def event(self, step, kind, detail):
        assert kind in EVENT_KINDS, kind
        self.events.append(dict(step=int(step), kind=kind, detail=detail))

    # -- reading
    @property
    def must_not_fire(self) -> list[str]:
        fired = {e["code"] for e in self.expected}
        return [c for c in CODES if c not in fired and c not in self.tolerated]

    def label(self) -> dict:
        return dict(
            scenario=self.scenario, family=self.family, healthy=self.healthy,
            params=self.params, metrics=self.metrics, events=self.events,
            expected=self.expected, tolerated=sorted(self.tolerated),
            must_not_fire=self.must_not_fire, file=f"{self.name}.parquet",
            points={m: int(len(s)) for m, (s, _) in self.curves.items()},
        )

    def long_arrays(self):
        """(metric, step, value) columns sorted by metric then step."""
        names, steps, values = [], [], []
        for m in sorted(self.curves):
            s, v = self.curves[m]
            names.extend([m] * len(s))
            steps.append(s)
            values.append(v)
        return names, np.concatenate(steps), np.concatenate(values)


# --------------------------------------------------------------------------- building blocks


def ar1(rng, n, phi):
    """Unit-variance AR(1) noise e_t = phi e_{t-1} + sqrt(1-phi^2) z_t, vectorised by
    blocks (e_t = phi^t * cumsum(z_k phi^-k) within a block of 128, exact)."""
    z = rng.standard_normal(n) * math.sqrt(1.0 - phi * phi)
    if phi == 0.0 or n == 0:
        return z
    out = np.empty(n)
    # phi^-(block-1) must stay finite: a phi near 0 (healthy_sft draws phi from 0.001)
    # overflowed at 128 (NaN noise in a "healthy" run); shorter blocks are just as exact
    block = int(max(1, min(128, 600.0 / -math.log(abs(phi))))) if abs(phi) < 1.0 else 128
    k = np.arange(block, dtype=np.float64)
    up, down = phi ** (-k), phi ** k
    prev = rng.standard_normal()  # stationary start
    for i in range(0, n, block):
        zz = z[i:i + block]
        m = len(zz)
        # e_j within a block: phi^(j+1) * prev + sum_{i<=j} phi^(j-i) z_i
        e = down[:m] * phi * prev + down[:m] * np.cumsum(zz * up[:m])
        out[i:i + m] = e
        prev = e[-1]
    return out


def lr_schedule(total, *, peak, warmup, kind="cosine", final_frac=0.1, drops=(), drop_factor=0.1):
    """Learning rate at every step 0..total (inclusive)."""
    t = np.arange(total + 1, dtype=np.float64)
    span = max(total - warmup, 1)
    frac = np.clip((t - warmup) / span, 0.0, 1.0)
    if kind == "cosine":
        lr = peak * (final_frac + (1 - final_frac) * 0.5 * (1 + np.cos(np.pi * frac)))
    elif kind == "linear":
        lr = peak * (1 - (1 - final_frac) * frac)
    elif kind == "constant":
        lr = np.full_like(t, peak)
    elif kind == "step":
        lr = np.full_like(t, peak)
        for d in drops:
            lr[t >= d] *= drop_factor
    else:
        raise ValueError(kind)
    if warmup > 0:
        ramp = t < warmup
        lr[ramp] = peak * (t[ramp] + 1) / warmup
    return lr


def lm_loss(lr, *, l_inf, amp, alpha, tau, lr_term):
    """Loss per step: power law in the integrated LR plus a term proportional to the LR
    (the noise floor an LR holds the model at; lowering it lowers the loss)."""
    peak = lr.max()
    progress = np.cumsum(lr) / peak
    return l_inf + amp * (1 + progress / tau) ** (-alpha) + lr_term * lr / peak


def grad_norm_curve(rng, steps, total, *, base, start, phi=0.7, spread=0.15):
    t = steps.astype(np.float64)
    g = base * (1 + 0.3 * t / total) + start * np.exp(-t / (0.02 * total + 1))
    return g * np.exp(spread * ar1(rng, len(steps), phi))


def spike_shape(steps, at, height, recovery_tau):
    """Additive bump: jumps by ``height`` at ``at`` and decays with ``recovery_tau`` steps."""
    t = steps.astype(np.float64) - at
    out = np.zeros(len(steps))
    m = t >= 0
    out[m] = height * np.exp(-t[m] / max(recovery_tau, 1e-9))
    return out


def log_steps(total, every, start=None):
    start = every if start is None else start
    return np.arange(start, total + 1, every, dtype=np.int64)


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _tol(total, spacing, frac=0.03, k=3):
    return int(max(k * spacing, frac * total))


# --------------------------------------------------------------------------- family bases


def _pretrain(rng, run, *, total=None, schedule=None, noise_rel=None, phi=None, log_every=None,
              eval_every=None, with_val=True, with_grad=True, lr_drops=(), lr_term=None):
    """Long pretraining: warmup + cosine (or given schedule), train/loss, val/loss, lr,
    grad_norm. Returns a dict of the underlying pieces for scenarios to modify."""
    total = total or int(_pick(rng, [4000, 8000, 12000, 20000, 40000]))
    log_every = log_every or int(_pick(rng, [1, 2, 5, 10]) if total <= 8000 else _pick(rng, [5, 10, 20]))
    schedule = schedule or _pick(rng, ["cosine", "cosine", "linear"])
    warmup = int(total * rng.uniform(0.01, 0.05))
    peak = float(_pick(rng, [3e-4, 6e-4, 1e-3]))
    lr = lr_schedule(total, peak=peak, warmup=warmup, kind=schedule, final_frac=rng.uniform(0.0, 0.1),
                     drops=lr_drops)
    l_inf = rng.uniform(1.6, 2.6)
    amp = math.log(rng.uniform(30000, 60000)) - l_inf
    loss = lm_loss(lr, l_inf=l_inf, amp=amp, alpha=rng.uniform(0.3, 0.6),
                   tau=rng.uniform(10, 60), lr_term=lr_term if lr_term is not None else rng.uniform(0.05, 0.2))
    steps = log_steps(total, log_every)
    noise_rel = noise_rel if noise_rel is not None else rng.uniform(0.004, 0.02)
    phi = phi if phi is not None else rng.uniform(0.3, 0.9)
    clean = loss[steps]
    noisy = clean * (1 + noise_rel * ar1(rng, len(steps), phi))
    p = dict(total=total, log_every=log_every, schedule=schedule, warmup=warmup, peak_lr=peak,
             noise_rel=round(float(noise_rel), 5), phi=round(float(phi), 3))
    run.params.update(p)
    out = dict(steps=steps, clean=clean, train=noisy, lr=lr, loss=loss, total=total,
               log_every=log_every, noise_rel=noise_rel, phi=phi)
    if with_val:
        eval_every = eval_every or int(_pick(rng, [max(total // 20, log_every), max(total // 50, log_every),
                                                   max(total // 7, log_every)]))
        eval_every = eval_every - eval_every % log_every or log_every
        vsteps = log_steps(total, eval_every)
        gap = rng.uniform(0.01, 0.06)
        out["vsteps"] = vsteps
        # eval averages many batches: far less noise than a train step
        out["val"] = (loss[vsteps] + gap) * (1 + min(noise_rel / 10, 0.002) * rng.standard_normal(len(vsteps)))
        run.params["eval_every"] = eval_every
    if with_grad:
        out["grad"] = grad_norm_curve(rng, steps, total, base=rng.uniform(0.2, 0.6),
                                      start=rng.uniform(2, 10))
    return out


def _emit_pretrain(run, b, *, train=None, val=None, grad=None):
    obj = "lm"
    run.curve("train/loss", b["steps"], b["train"] if train is None else train, split="train",
              kind="loss", objective=obj, direction="min")
    if "val" in b:
        run.curve("val/loss", b["vsteps"], b["val"] if val is None else val, split="val", kind="loss",
                  objective=obj, direction="min")
    run.curve("lr", b["steps"], b["lr"][b["steps"]], split="none", kind="lr", objective=obj,
              direction="none")
    if "grad" in b:
        run.curve("grad_norm", b["steps"], b["grad"] if grad is None else grad, split="train",
                  kind="grad_norm", objective=obj, direction="none")


def _sft(rng, run, *, epochs=None, steps_per_epoch=None, logging_steps=None, eval_mode=None,
         overfit=False):
    """HF Trainer SFT: staircase train loss (drops at each epoch boundary as the model
    meets examples again), eval_loss per epoch or every eval_steps, linear LR decay."""
    epochs = epochs or int(rng.integers(2, 5))
    spe = steps_per_epoch or int(_pick(rng, [300, 500, 800, 1200]))
    total = epochs * spe
    logging_steps = logging_steps or int(_pick(rng, [5, 10, 25]))
    steps = log_steps(total, logging_steps)
    peak = float(_pick(rng, [1e-5, 2e-5, 5e-5]))
    lr = lr_schedule(total, peak=peak, warmup=int(0.03 * total), kind="linear", final_frac=0.0)
    base = rng.uniform(0.9, 1.4)
    start = base + rng.uniform(0.6, 1.2)
    t = np.arange(total + 1, dtype=np.float64)
    within = base + (start - base) * np.exp(-t / (0.08 * spe))
    epoch_idx = np.minimum(t // spe, epochs - 1)
    drop = rng.uniform(0.12, 0.25) * base  # memorisation drop per epoch boundary
    train_clean = within - drop * epoch_idx * (1 - 0.15 * epoch_idx / epochs)
    noise_rel = rng.uniform(0.02, 0.06)
    train = train_clean[steps] * (1 + noise_rel * ar1(rng, len(steps), rng.uniform(0.0, 0.5) + 1e-3))
    eval_mode = eval_mode or (_pick(rng, ["epoch", "steps"]) if epochs >= 3 else "steps")
    if eval_mode == "epoch":
        vsteps = np.arange(1, epochs + 1, dtype=np.int64) * spe
    else:
        ev = int(_pick(rng, [spe // 4, spe // 2]))
        vsteps = log_steps(total, ev)
    gen = base + 0.05 + (start - base) * np.exp(-t / (0.1 * spe))
    if overfit:  # eval loss rises once the model starts memorising (second epoch on)
        onset = spe * rng.uniform(0.9, 1.3)
        gen = gen + np.where(t > onset, rng.uniform(0.08, 0.2) * base * (np.maximum(t - onset, 0) / (total - onset)) ** 1.2, 0)
    else:  # small improvements per epoch, no rise
        gen = gen - 0.02 * base * epoch_idx
    val = gen[vsteps] * (1 + 0.0015 * rng.standard_normal(len(vsteps)))
    best_step = int(vsteps[int(np.argmin(gen[vsteps]))])  # minimum of the clean eval curve
    dec = 4
    run.curve("loss", steps, train, split="train", kind="loss", objective="sft", direction="min",
              decimals=dec)
    run.curve("eval_loss", vsteps, val, split="val", kind="loss", objective="sft", direction="min",
              decimals=dec)
    run.curve("learning_rate", steps, lr[steps], split="none", kind="lr", objective="sft",
              direction="none", decimals=12)
    run.curve("grad_norm", steps, grad_norm_curve(rng, steps, total, base=rng.uniform(0.5, 2), start=3),
              split="train", kind="grad_norm", objective="sft", direction="none", decimals=dec)
    run.curve("epoch", steps, steps / spe, split="none", kind="other", objective="sft",
              direction="none", decimals=4)
    for e in range(1, epochs):
        run.event(e * spe, "phase", f"epoch {e + 1}")
    run.params.update(epochs=epochs, steps_per_epoch=spe, logging_steps=logging_steps,
                      eval_mode=eval_mode, noise_rel=round(float(noise_rel), 4), total=total)
    return dict(total=total, steps=steps, vsteps=vsteps, spe=spe, epochs=epochs, best_step=best_step)


def _classifier(rng, run, *, epochs=None, overfit=False, gap=None, underfit=False, flat_from=None,
                style=None):
    """Epoch-level classifier (Keras/Lightning names): losses and accuracies, quantised
    by the eval set size (steppy accuracy is healthy)."""
    epochs = epochs or int(_pick(rng, [30, 50, 80, 120]))
    spe = int(_pick(rng, [100, 250, 391]))
    style = style or _pick(rng, ["keras", "lightning"])
    names = (dict(tl="loss", vl="val_loss", ta="accuracy", va="val_accuracy") if style == "keras"
             else dict(tl="train_loss", vl="val_loss", ta="train_acc", va="val_acc"))
    e = np.arange(1, epochs + 1, dtype=np.float64)
    steps = (np.arange(1, epochs + 1) * spe).astype(np.int64) if style == "lightning" else np.arange(epochs, dtype=np.int64)
    n_classes = int(_pick(rng, [2, 10, 100]))
    chance = math.log(n_classes)
    rate = rng.uniform(0.06, 0.2) if flat_from is None else 4.0 / flat_from
    floor = rng.uniform(0.05, 0.3) * chance if not underfit else rng.uniform(0.85, 0.95) * chance
    if flat_from is not None:
        # "flat from flat_from" must hold in the data: there the excess over the floor is
        # down to 2% of the floor (about one to four noise sd: noise is 0.5-2% of the
        # level). exp(-4) of the initial excess, as before, left the curve 4-35% above its
        # floor at flat_from, visibly still falling.
        rate = math.log((chance - floor) / (0.02 * floor)) / flat_from
    train_l = floor + (chance - floor) * np.exp(-rate * e)
    val_floor = floor * (1 + (gap if gap is not None else rng.uniform(0.03, 0.1)))
    val_l = val_floor + (chance - floor) * np.exp(-rate * e)
    best = None
    if overfit:
        best = int(epochs * rng.uniform(0.3, 0.55))
        # the fit must be mostly done when the rise term starts (its excess over the floor
        # down to 5% of the floor): with a slow decay, val kept falling for many epochs
        # after the onset and the rise was invisible (30-epoch runs ended within noise of
        # their minimum, the argmin of the clean curve landing in the last epochs)
        rate = max(rate, math.log((chance - floor) / (0.05 * floor)) / best)
        train_l = floor + (chance - floor) * np.exp(-rate * e)
        val_l = val_floor + (chance - floor) * np.exp(-rate * e)
        rise = rng.uniform(0.08, 0.3) * val_l[best - 1]
        val_l = val_l + np.where(e > best, rise * (np.maximum(e - best, 0) / (epochs - best)) ** 1.3, 0)
        train_l = train_l * np.exp(-0.01 * np.maximum(e - best, 0))  # keeps falling
        best = int(np.argmin(val_l)) + 1  # the clean curve's minimum: where the rise wins
    n_val = int(_pick(rng, [200, 500, 1000, 10000]))
    acc_max = 1 - 0.4 * min(floor, 0.3 * chance) / chance * (1.0 if n_classes > 2 else 0.5)
    chance_acc = 1 / n_classes

    good_floor = 0.2 * chance  # accuracy maps from the loss a well-trained model would reach

    def acc_from(loss_curve, n, noise):
        a = chance_acc + (acc_max - chance_acc) * np.clip((chance - loss_curve) / (chance - good_floor), 0, 1)
        a = np.clip(a + noise * rng.standard_normal(len(a)), 0, 1)
        return np.round(a * n) / n

    train_noise = rng.uniform(0.005, 0.02)
    tl = train_l * (1 + train_noise * rng.standard_normal(epochs))
    vl = val_l * (1 + 2 * train_noise * rng.standard_normal(epochs))
    ta = acc_from(train_l, 50000, 0.003)
    va = acc_from(val_l, n_val, 0.01)
    run.curve(names["tl"], steps, tl, split="train", kind="loss", objective="task", direction="min")
    run.curve(names["vl"], steps, vl, split="val", kind="loss", objective="task", direction="min")
    run.curve(names["ta"], steps, ta, split="train", kind="accuracy", objective="task", direction="max")
    run.curve(names["va"], steps, va, split="val", kind="accuracy", objective="task", direction="max")
    run.params.update(epochs=epochs, style=style, n_classes=n_classes, n_val=n_val, steps_per_epoch=spe,
                      total=int(steps[-1]))
    # epochs where the clean val loss is within one val noise sd of its minimum: the
    # best epoch cannot be located more precisely than that stretch
    near = np.flatnonzero(val_l <= val_l.min() * (1 + 2 * train_noise)) if overfit else None
    return dict(steps=steps, names=names, best_epoch=best, epochs=epochs, style=style, spe=spe,
                near_best=None if near is None else (int(near[0]) + 1, int(near[-1]) + 1))


def _reward_model(rng, run, *, eval_points=None):
    """Reward model (TRL RewardTrainer): loss from ln 2 down, eval_accuracy up from 0.5."""
    total = int(_pick(rng, [1000, 2000, 4000]))
    every = int(_pick(rng, [5, 10]))
    steps = log_steps(total, every)
    floor = rng.uniform(0.45, 0.6)
    t = steps.astype(np.float64)
    rate = rng.uniform(3, 8) / total
    loss = floor + (math.log(2) - floor) * np.exp(-rate * t)
    loss = loss * (1 + rng.uniform(0.05, 0.12) * ar1(rng, len(steps), 0.2))
    n_eval = eval_points or int(_pick(rng, [7, 10, 20]))
    vsteps = np.unique(np.linspace(total / n_eval, total, n_eval).astype(np.int64) // every * every)
    acc_top = rng.uniform(0.63, 0.74)
    vt = vsteps.astype(np.float64)
    acc = 0.5 + (acc_top - 0.5) * (1 - np.exp(-rate * vt))
    n_pairs = int(_pick(rng, [500, 1000, 2000]))
    acc = np.round((acc + 0.006 * rng.standard_normal(len(vt))) * n_pairs) / n_pairs
    eval_loss = floor + 0.02 + (math.log(2) - floor - 0.02) * np.exp(-rate * vt)
    run.curve("loss", steps, loss, split="train", kind="loss", objective="reward_model", direction="min",
              decimals=4)
    run.curve("eval_loss", vsteps, eval_loss * (1 + 0.003 * rng.standard_normal(len(vt))), split="val",
              kind="loss", objective="reward_model", direction="min", decimals=4)
    run.curve("eval_accuracy", vsteps, acc, split="val", kind="accuracy", objective="reward_model",
              direction="max", decimals=4)
    run.curve("learning_rate", steps, lr_schedule(total, peak=1e-5, warmup=0, kind="linear", final_frac=0)[steps],
              split="none", kind="lr", objective="reward_model", direction="none", decimals=12)
    run.params.update(total=total, logging_steps=every, eval_points=int(len(vsteps)), rate_x_total=round(rate * total, 3))
    return dict(total=total, steps=steps, vsteps=vsteps, rate_x_total=rate * total)


def _rlhf(rng, run, *, hacking=None):
    """PPO/GRPO run (TRL names): proxy reward objective/scores, objective/kl,
    objective/entropy, and a gold/eval reward on a sparse cadence.

    hacking None: healthy (reward and gold rise and saturate, KL grows like sqrt).
    "gold_falls": gold reward turns over as sqrt(KL) grows (Gao et al.), proxy keeps rising.
    "kl_runaway": KL accelerates to tens-hundreds while proxy rises, entropy collapses.
    Returns the onset step (or None).
    """
    total = int(_pick(rng, [500, 1000, 2000]))
    every = int(_pick(rng, [1, 2, 5]))
    steps = log_steps(total, every)
    t = steps.astype(np.float64)
    kl_scale = rng.uniform(2, 6)
    kl = kl_scale * np.sqrt(t / total)
    onset = None
    if hacking == "kl_runaway":
        onset = int(total * rng.uniform(0.4, 0.6))
        x = np.maximum(t - onset, 0) / (total - onset)
        kl = kl + rng.uniform(40, 150) * x ** 2
    d = np.sqrt(kl)
    proxy = 2.0 * d - 0.15 * d ** 2 * (hacking is None) + rng.uniform(-0.5, 0.5)
    if hacking == "kl_runaway":
        proxy = 2.0 * np.sqrt(kl_scale * t / total) + 0.08 * (kl - kl_scale * np.sqrt(t / total))
    proxy = proxy + 0.15 * ar1(rng, len(t), 0.3)
    n_eval = int(_pick(rng, [7, 10, 20]))
    vsteps = np.unique(np.linspace(total / n_eval, total, n_eval).astype(np.int64) // every * every)
    vt = vsteps.astype(np.float64)
    vkl = np.interp(vt, t, kl)
    vd = np.sqrt(vkl)
    if hacking == "gold_falls":
        # Gao et al. R_RL(d) = d (a - b log d), turning over inside the run
        onset = int(total * rng.uniform(0.35, 0.6)) // every * every
        d_peak = math.sqrt(float(np.interp(onset, t, kl)))
        b_coef = 1.0
        a_coef = b_coef * (math.log(d_peak) + 1)  # maximum of d (a - b log d) at d_peak
        gold = vd * (a_coef - b_coef * np.log(np.maximum(vd, 1e-3)))
        gold = (gold - gold.min()) / max(np.ptp(gold), 1e-9) * rng.uniform(0.5, 1.2)
        proxy = 2.0 * np.sqrt(kl) + 0.15 * ar1(rng, len(t), 0.3)  # proxy keeps rising
    else:
        gold = 1.2 * vd - 0.12 * vd ** 2 * (hacking is None) + (0.0 if hacking is None else 0.5 * vd)
        if hacking == "kl_runaway":
            gold = 1.2 * np.sqrt(np.interp(vt, t, kl_scale * np.sqrt(t / total)))
            k_on = vt > onset
            gold = gold - np.where(k_on, 0.02 * (vkl - np.interp(vt, t, kl_scale * np.sqrt(t / total))), 0)
    gold = gold + 0.03 * rng.standard_normal(len(vt))
    ent = 2.5 - 0.3 * np.sqrt(t / total) - (1.8 * np.maximum(t - (onset or total), 0) / total
                                             if hacking == "kl_runaway" else 0)
    run.curve("objective/scores", steps, proxy, split="train", kind="reward", objective="policy",
              role="proxy", direction="max")
    run.curve("objective/kl", steps, kl * (1 + 0.05 * ar1(rng, len(t), 0.5)), split="train", kind="kl",
              objective="policy", direction="none")
    run.curve("objective/entropy", steps, ent * (1 + 0.02 * rng.standard_normal(len(t))), split="train",
              kind="other", objective="policy", direction="none")
    run.curve("eval/gold_reward", vsteps, gold, split="val", kind="reward", objective="policy", role="gold",
              direction="max")
    run.params.update(total=total, every=every, eval_points=int(len(vsteps)), hacking=hacking or "")
    return dict(total=total, steps=steps, vsteps=vsteps, onset=onset)


def _grpo(rng, run, *, collapse=False):
    """GRPO run (TRL GRPOTrainer names): the optimised ``reward`` (group mean), its
    ``reward_std``, ``kl`` to the reference, ``completions/mean_length`` and the LR.

    collapse False: reward rises and saturates, KL grows like t^0.5-1 to 0.01-0.1.
    collapse True: reward peaks at 30-60% of the run and gives back 70-140% of its gain
    by the end while KL keeps growing (t^1-2): the policy degrades (the GRPO
    chaos-economy log). Returns the clean reward's argmax step (the peak) or None.
    """
    total = int(_pick(rng, [200, 500, 1000, 2000]))
    every = int(_pick(rng, [1, 2, 5])) if total > 200 else int(_pick(rng, [1, 5]))
    steps = log_steps(total, every)
    t = steps.astype(np.float64)
    r0 = rng.uniform(-0.5, 0.5)
    gain = rng.uniform(0.8, 2.0)
    peak = None
    if collapse:
        p = int(total * rng.uniform(0.3, 0.6))
        rise = np.where(t < p, (1 - np.exp(-3 * t / p)) / (1 - math.exp(-3)), 1.0)
        fall = (np.maximum(t - p, 0) / (total - p)) ** rng.uniform(0.8, 1.5)
        reward = r0 + gain * rise - rng.uniform(0.7, 1.4) * gain * fall
        peak = int(steps[int(np.argmax(reward))])
        kl = rng.uniform(0.02, 0.2) * (t / total) ** rng.uniform(1.0, 2.0)
        length = 200 - 150 * np.maximum(t - p, 0) / (total - p)
    else:
        reward = r0 + gain * (1 - np.exp(-rng.uniform(3, 6) * t / total))
        kl = rng.uniform(0.01, 0.1) * (t / total) ** rng.uniform(0.5, 1.0)
        length = 200 + 50 * t / total
    noise = rng.uniform(0.06, 0.15) * gain
    run.curve("reward", steps, reward + noise * ar1(rng, len(t), 0.3), split="train", kind="reward",
              objective="policy", role="proxy", direction="max")
    run.curve("reward_std", steps, (0.3 + 0.2 * np.exp(-t / total)) * (1 + 0.1 * rng.standard_normal(len(t))),
              split="train", kind="reward", objective="policy", role="std", direction="none")
    run.curve("kl", steps, kl * (1 + 0.1 * ar1(rng, len(t), 0.5)) + 1e-6, split="train", kind="kl",
              objective="policy", direction="none")
    run.curve("completions/mean_length", steps, length * (1 + 0.05 * rng.standard_normal(len(t))), split="none",
              kind="other", objective="policy", direction="none")
    run.curve("learning_rate", steps, lr_schedule(total, peak=1e-6, warmup=int(0.05 * total), kind="linear",
                                                  final_frac=0)[steps],
              split="none", kind="lr", objective="policy", direction="none", decimals=12)
    run.params.update(total=total, every=every, collapse=collapse, peak=peak)
    return dict(total=total, steps=steps, every=every, peak=peak)


def _multimodal(rng, run, *, stalled=None):
    """Per-modality losses of one run; ``stalled`` names a modality that stops improving."""
    total = int(_pick(rng, [5000, 10000, 20000]))
    every = int(_pick(rng, [5, 10, 20]))
    steps = log_steps(total, every)
    lr = lr_schedule(total, peak=3e-4, warmup=int(0.02 * total), kind="cosine", final_frac=0.1)
    stall_at = None
    for mod in ("text", "image", "audio"):
        l_inf = rng.uniform(1.0, 3.0)
        loss = lm_loss(lr, l_inf=l_inf, amp=rng.uniform(3, 7), alpha=rng.uniform(0.3, 0.6),
                       tau=rng.uniform(20, 80), lr_term=0.1)
        curve = loss[steps]
        if mod == stalled:
            stall_at = int(total * rng.uniform(0.08, 0.2)) // every * every
            k = np.searchsorted(steps, stall_at)
            curve = curve.copy()
            curve[k:] = curve[k] + 0.002 * np.arange(len(curve) - k) / len(curve)
        noise = rng.uniform(0.005, 0.02)
        run.curve(f"{mod}/loss", steps, curve * (1 + noise * ar1(rng, len(steps), rng.uniform(0.3, 0.8))),
                  split="train", kind="loss", objective=mod, direction="min")
    run.curve("lr", steps, lr[steps], split="none", kind="lr", objective="multimodal", direction="none")
    run.curve("grad_norm", steps, grad_norm_curve(rng, steps, total, base=0.4, start=4), split="train",
              kind="grad_norm", objective="multimodal", direction="none")
    run.params.update(total=total, every=every, stalled=stalled or "")
    return dict(total=total, steps=steps, stall_at=stall_at)


# --------------------------------------------------------------------------- healthy scenarios


def healthy_pretrain(rng, name):
    run = Run(name, "healthy_pretrain", "pretrain", healthy=True)
    b = _pretrain(rng, run)
    _emit_pretrain(run, b)
    run.tolerate("CONVERGED", "STILL_IMPROVING", "CONVERGED_EARLY")
    return run


def healthy_noisy_pretrain(rng, name):
    """Noisy but healthy: 4-8% level-proportional AR(1) noise with phi up to 0.95."""
    run = Run(name, "healthy_noisy_pretrain", "pretrain", healthy=True)
    b = _pretrain(rng, run, noise_rel=rng.uniform(0.04, 0.08), phi=rng.uniform(0.6, 0.95))
    _emit_pretrain(run, b)
    run.tolerate("CONVERGED", "STILL_IMPROVING", "CONVERGED_EARLY")
    return run


def still_improving(rng, name):
    """Constant LR, stopped while the power law is still steep: more training helps."""
    run = Run(name, "still_improving", "pretrain", healthy=True)
    b = _pretrain(rng, run, schedule="constant")
    _emit_pretrain(run, b)
    total = b["total"]
    run.expect("STILL_IMPROVING", ["train/loss"], int(0.8 * total), total, int(0.2 * total))
    run.tolerate("CONVERGED")  # val may look flat at 7 points
    return run


def healthy_step_lr(rng, name):
    """Step LR schedule (x0.1 once, at 40-70% of the run): the loss drops at the LR
    change, which the events explain; a REGIME_SHIFT may be reported only as info citing
    lr_change. (A second x0.1 drop moves the loss by ~2 noise units only: not labelled.)"""
    run = Run(name, "healthy_step_lr", "pretrain", healthy=True)
    total = int(_pick(rng, [6000, 10000, 20000]))
    drops = (int(total * rng.uniform(0.4, 0.7)) // 10 * 10,)
    # a larger LR term: step drops are visible (several noise units)
    b = _pretrain(rng, run, total=total, schedule="step", lr_drops=drops, log_every=int(_pick(rng, [5, 10])),
                  lr_term=rng.uniform(0.3, 0.6), noise_rel=rng.uniform(0.004, 0.012))
    _emit_pretrain(run, b)
    for d in drops:
        run.event(d, "lr_change", "lr x0.1")
        run.expect("REGIME_SHIFT", ["train/loss"], d, d, _tol(total, b["log_every"], 0.01),
                   explained_by="lr_change", severity_max="info")
    run.tolerate("CONVERGED", "STILL_IMPROVING", "CONVERGED_EARLY")
    return run


def healthy_sft(rng, name):
    """SFT over 2-4 epochs: staircase train loss at epoch boundaries is healthy."""
    run = Run(name, "healthy_sft", "sft", healthy=True)
    _sft(rng, run)
    run.tolerate("REGIME_SHIFT", "CONVERGED", "STILL_IMPROVING", "GENERALIZATION_GAP")
    return run


def healthy_reward_model(rng, name):
    run = Run(name, "healthy_reward_model", "reward_model", healthy=True)
    b = _reward_model(rng, run)
    run.tolerate("CONVERGED", "STILL_IMPROVING")
    # a fast decay (rate x total >= 6) leaves < 5% of the improvement after mid-run and
    # ~0.5% for the last quarter: that curve did converge early (what CONVERGED_EARLY
    # says, at info severity), so the label must not call it a false alarm
    if math.exp(-b["rate_x_total"] / 2) < 0.05:
        run.tolerate("CONVERGED_EARLY")
    return run


def healthy_rlhf(rng, name):
    run = Run(name, "healthy_rlhf", "rlhf", healthy=True)
    _rlhf(rng, run, hacking=None)
    run.tolerate("CONVERGED", "STILL_IMPROVING")
    return run


def healthy_grpo(rng, name):
    """GRPO: reward rises and saturates while KL grows slowly (negatives for REWARD_COLLAPSE)."""
    run = Run(name, "healthy_grpo", "rlhf", healthy=True)
    _grpo(rng, run, collapse=False)
    run.tolerate("CONVERGED", "STILL_IMPROVING", "CONVERGED_EARLY")
    return run


def healthy_multimodal(rng, name):
    run = Run(name, "healthy_multimodal", "multimodal", healthy=True)
    _multimodal(rng, run)
    run.tolerate("CONVERGED", "STILL_IMPROVING", "CONVERGED_EARLY")
    return run


def healthy_classifier(rng, name):
    """Epoch-level classifier with steppy accuracy (quantised by the eval set): healthy."""
    run = Run(name, "healthy_classifier", "classifier", healthy=True)
    _classifier(rng, run, gap=rng.uniform(0.0, 0.04))
    run.tolerate("CONVERGED", "STILL_IMPROVING", "CONVERGED_EARLY")
    return run


def healthy_short(rng, name):
    """Short fine-tune: 7 eval points, ~100 logged train points."""
    run = Run(name, "healthy_short", "sft", healthy=True)
    every = int(_pick(rng, [5, 10]))
    total = every * int(rng.integers(60, 120))
    steps = log_steps(total, every)
    t = steps.astype(np.float64)
    base = rng.uniform(0.5, 1.5)
    loss = base + rng.uniform(0.5, 1.0) * np.exp(-t / (0.3 * total))
    run.curve("loss", steps, loss * (1 + 0.03 * rng.standard_normal(len(t))), split="train", kind="loss",
              objective="sft", direction="min", decimals=4)
    vsteps = np.unique(np.linspace(total / 7, total, 7).astype(np.int64) // every * every)
    vt = vsteps.astype(np.float64)
    run.curve("eval_loss", vsteps, (base + 0.05 + 0.8 * np.exp(-vt / (0.3 * total))) * (1 + 0.004 * rng.standard_normal(7)),
              split="val", kind="loss", objective="sft", direction="min", decimals=4)
    run.params.update(total=total, every=every)
    run.tolerate("CONVERGED", "STILL_IMPROVING")
    return run


def converged(rng, name):
    """Exponential approach that flattens over the last 15-30% of the run: CONVERGED (info)."""
    run = Run(name, "converged", "classifier", healthy=True)
    epochs = int(_pick(rng, [40, 60, 100]))
    flat_frac = rng.uniform(0.15, 0.3)
    flat_from = int(epochs * (1 - flat_frac))
    b = _classifier(rng, run, epochs=epochs, flat_from=flat_from, gap=rng.uniform(0.0, 0.03))
    s = b["steps"]
    tol = int(max(0.15 * (s[-1] - s[0]), 3 * (s[1] - s[0])))
    run.expect("CONVERGED", [b["names"]["tl"], b["names"]["vl"]], int(s[flat_from - 1]), int(s[-1]), tol)
    run.tolerate("CONVERGED_EARLY")
    return run


# --------------------------------------------------------------------------- sick scenarios


def nonfinite(rng, name):
    """NaN/Inf in a curve: training died (NaN from a step on), isolated Inf, or NaN only
    in grad_norm (HF filters NaN out of the loss by default)."""
    variant = _pick(rng, ["nan_from", "inf_isolated", "grad_norm_nan"])
    run = Run(name, "nonfinite", "pretrain")
    b = _pretrain(rng, run)
    steps, train, grad = b["steps"], b["train"].copy(), b["grad"].copy()
    n = len(steps)
    k = int(rng.integers(int(0.2 * n), int(0.9 * n)))
    if variant == "nan_from":
        grad[max(k - 5, 0):k] *= np.geomspace(3, 100, min(5, k))
        grad[k:] = np.nan
        train[k:] = np.nan
        run.expect("NONFINITE", ["train/loss", "grad_norm"], steps[k], steps[-1], 0)
        run.tolerate("DIVERGENCE", "LOSS_SPIKE", "GRAD_NORM_INSTABILITY", "CORRELATED_SPIKES")
        val = b["val"].copy()
        val[b["vsteps"] > steps[k]] = np.nan
        _emit_pretrain(run, b, train=train, grad=grad, val=val)
    elif variant == "inf_isolated":
        idx = np.sort(rng.choice(np.arange(int(0.1 * n), n), size=int(rng.integers(1, 4)), replace=False))
        train[idx] = np.inf
        run.expect("NONFINITE", ["train/loss"], steps[idx[0]], steps[idx[-1]], 0)
        run.tolerate("LOSS_SPIKE", "CONVERGED", "STILL_IMPROVING")
        _emit_pretrain(run, b, train=train)
    else:
        idx = np.sort(rng.choice(np.arange(int(0.05 * n), n), size=int(rng.integers(1, 6)), replace=False))
        grad[idx] = np.nan
        run.expect("NONFINITE", ["grad_norm"], steps[idx[0]], steps[idx[-1]], 0)
        run.tolerate("CONVERGED", "STILL_IMPROVING", "CONVERGED_EARLY")
        _emit_pretrain(run, b, grad=grad)
    run.params["variant"] = variant
    return run


def divergence(rng, name):
    """Loss turns round and climbs (non-spike divergence), or jumps to a flat ln(V)."""
    variant = _pick(rng, ["climb", "flat_ln_vocab"])
    run = Run(name, "divergence", "pretrain")
    b = _pretrain(rng, run, schedule="constant")
    steps, total = b["steps"], b["total"]
    onset = int(total * rng.uniform(0.35, 0.75)) // b["log_every"] * b["log_every"]
    train, grad = b["train"].copy(), b["grad"].copy()
    after = steps >= onset
    x = (steps[after] - onset) / (total - onset)
    level = b["clean"][after][0]
    if variant == "climb":
        rise = level * rng.uniform(0.5, 3.0) * (np.expm1(3 * x) / np.expm1(3))
        train[after] += rise * (1 + b["noise_rel"] * ar1(rng, after.sum(), 0.5))
        grad[after] *= 1 + 20 * x ** 2
    else:
        ln_v = math.log(32000)
        ramp = np.minimum(x / 0.03, 1)
        flat = level + (ln_v - level) * ramp
        train[after] = flat + 0.002 * rng.standard_normal(after.sum())
        grad[after] = np.where(ramp < 1, grad[after] * 50, 0.0 + 1e-3 * rng.random(after.sum()))
    val = b["val"].copy()
    vafter = b["vsteps"] >= onset
    val[vafter] = np.interp(b["vsteps"][vafter], steps, train) + 0.05
    _emit_pretrain(run, b, train=train, val=val, grad=grad)
    run.expect("DIVERGENCE", ["train/loss"], onset, total, _tol(total, b["log_every"], 0.05))
    run.tolerate("LOSS_SPIKE", "REGIME_SHIFT", "GRAD_NORM_INSTABILITY", "PLATEAU", "CORRELATED_SPIKES",
                 "ERRATIC", "OVERFITTING")
    run.params.update(variant=variant, onset=onset)
    return run


def _recovery_steps(height, tau, noise):
    # back within 2 noise units of the curve (the analysis' recovery criterion)
    return int(math.ceil(tau * math.log(max(height / max(2 * noise, 1e-12), 1.0))))


def loss_spike(rng, name):
    """1-4 loss spikes from a bad batch (grad_norm does not lead), fast or slow recovery."""
    run = Run(name, "loss_spike", "pretrain")
    b = _pretrain(rng, run, noise_rel=rng.uniform(0.004, 0.015))
    steps, total, every = b["steps"], b["total"], b["log_every"]
    train = b["train"].copy()
    k = int(rng.integers(1, 5))
    ats = np.sort(rng.choice(np.arange(int(0.15 * total), int(0.9 * total), every), size=k, replace=False))
    # keep spikes apart
    ats = ats[np.concatenate([[True], np.diff(ats) > 0.08 * total])]
    classes = []
    for at in ats:
        level = float(np.interp(at, steps, b["clean"]))
        height = level * rng.uniform(0.15, 1.0)
        cls = _pick(rng, ["fast", "slow"])
        # fast: back within ~10 logged points; slow: decays over >= 15 points (tens to
        # hundreds of steps), the classes of the analysis (fast <= max(10 points, 0.5% of span))
        tau = every * rng.uniform(0.5, 2) if cls == "fast" else max(0.01 * total * rng.uniform(1, 2), 15 * every)
        bump = spike_shape(steps, at, height, tau)
        train += bump
        # recovered: back within 2 noise sd of the level just before the spike (the
        # analysis' definition; a falling trend gets there before the bump has decayed)
        k = int(np.searchsorted(steps, at))
        pre = b["clean"][k - 1] if k else b["clean"][0]
        back = np.flatnonzero(b["clean"][k:] + bump[k:] <= pre + 2 * b["noise_rel"] * level)
        rec = int(steps[k + back[0]] - at) if back.size else _recovery_steps(height, tau, b["noise_rel"] * level)
        run.expect("LOSS_SPIKE", ["train/loss"], at, min(at + rec, total), max(3 * every, int(0.5 * rec) + every),
                   recovery_class=cls)
        classes.append(cls)
    _emit_pretrain(run, b, train=train)
    run.tolerate("CONVERGED", "STILL_IMPROVING", "CONVERGED_EARLY")
    run.params.update(spikes=[int(a) for a in ats], classes=classes)
    return run


def erratic(rng, name):
    """LR too high from some step on: loss swings by 10-30% of its level, no progress."""
    run = Run(name, "erratic", "pretrain")
    b = _pretrain(rng, run, schedule="constant")
    steps, total = b["steps"], b["total"]
    onset = int(total * rng.uniform(0.1, 0.5)) // b["log_every"] * b["log_every"]
    train, grad = b["train"].copy(), b["grad"].copy()
    after = steps >= onset
    level = float(np.interp(onset, steps, b["clean"]))
    amp = rng.uniform(0.1, 0.3) * level
    m = int(after.sum())
    swing = amp * np.abs(rng.standard_normal(m)) * np.where(np.arange(m) % 2 == 0, 1, -1) * rng.uniform(0.5, 1.5)
    train[after] = level + swing + 0.3 * amp * rng.standard_normal(m)
    grad[after] *= np.exp(0.8 * rng.standard_normal(m)) * 3
    val = b["val"].copy()
    vafter = b["vsteps"] >= onset
    val[vafter] = level * (1 + 0.1 * rng.standard_normal(int(vafter.sum())))
    _emit_pretrain(run, b, train=train, grad=grad, val=val)
    run.expect("ERRATIC", ["train/loss"], onset, total, _tol(total, b["log_every"], 0.08))
    run.tolerate("LOSS_SPIKE", "REGIME_SHIFT", "GRAD_NORM_INSTABILITY", "PLATEAU", "CORRELATED_SPIKES",
                 "UNDERFITTING", "OVERFITTING", "GENERALIZATION_GAP", "CONVERGED_EARLY")
    run.params["onset"] = onset
    return run


def _stall(curve, steps, at):
    """Hold ``curve`` flat at its value at step ``at`` to the end."""
    out = curve.copy()
    k0 = int(np.searchsorted(steps, at))
    out[k0:] = curve[k0]
    return out


def plateau(rng, name):
    """Constant LR; loss descends fast and then stalls abruptly for the last 30-60%."""
    run = Run(name, "plateau", "pretrain")
    b = _pretrain(rng, run, schedule="constant", with_val=False)
    steps, total = b["steps"], b["total"]
    at = int(total * rng.uniform(0.2, 0.5)) // b["log_every"] * b["log_every"]
    clean = _stall(b["clean"], steps, at)
    train = clean * (1 + b["noise_rel"] * ar1(rng, len(steps), b["phi"]))
    _emit_pretrain(run, b, train=train)
    # the data are flat from where the clean curve comes within one noise sd of the
    # stalled level: a constant-LR power law late in a long run is already that flat
    # before the stall (labelling the stall step there put the onset where nothing changes)
    k0 = int(np.searchsorted(steps, at))
    above = np.flatnonzero(b["clean"][:k0] - clean[k0] > b["noise_rel"] * clean[k0])
    flat_from = int(steps[above[-1] + 1]) if above.size else int(steps[0])
    run.expect("PLATEAU", ["train/loss"], flat_from, total, _tol(total, b["log_every"], 0.08))
    run.tolerate("CONVERGED", "CONVERGED_EARLY", "UNDERFITTING", "REGIME_SHIFT")
    run.params.update(stall_at=at, flat_from=flat_from)
    return run


def plateau_broken(rng, name):
    """Loss stalls for 15-35% of the run, then resumes its descent."""
    run = Run(name, "plateau_broken", "pretrain")
    b = _pretrain(rng, run, schedule="constant", with_val=False)
    steps, total, every = b["steps"], b["total"], b["log_every"]
    at = int(total * rng.uniform(0.08, 0.25)) // every * every  # while the descent is still clear
    end = at + int(total * rng.uniform(0.2, 0.35)) // every * every
    # break: a steep drop after the plateau, then the power law goes on
    clean = b["clean"].copy()
    k0, k1 = np.searchsorted(steps, at), np.searchsorted(steps, end)
    held = clean[k0]
    clean[k0:k1] = held
    drop = (held - b["clean"][k1]) + 0.06 * held
    clean[k1:] = b["clean"][k1:] + (held - b["clean"][k1]) - drop * (1 - np.exp(-(steps[k1:] - end) / (0.02 * total)))
    train = clean * (1 + b["noise_rel"] * ar1(rng, len(steps), b["phi"]))
    _emit_pretrain(run, b, train=train)
    # the stall starts where the data are flat: where the clean curve comes within one
    # noise sd of the held level (PLATEAU's label rule); on a slow descent that is before
    # the hold step, which no data can tell from the hold (the hold step stays in params)
    above = np.flatnonzero(b["clean"][:k0] - held > b["noise_rel"] * held)
    flat_from = int(steps[above[-1] + 1]) if above.size else int(steps[0])
    run.expect("PLATEAU_BROKEN", ["train/loss"], flat_from, end, _tol(total, every, 0.05))
    run.tolerate("PLATEAU", "REGIME_SHIFT", "STILL_IMPROVING", "CONVERGED")
    run.params.update(stall_at=at, break_at=end, flat_from=flat_from)
    return run


def regime_shift(rng, name):
    """Unexplained level shift (e.g. a bad data shard): the loss steps up by 4-12% and
    keeps that offset. No event explains it."""
    run = Run(name, "regime_shift", "pretrain")
    b = _pretrain(rng, run, noise_rel=rng.uniform(0.004, 0.012))
    steps, total, every = b["steps"], b["total"], b["log_every"]
    at = int(total * rng.uniform(0.3, 0.8)) // every * every
    level = float(np.interp(at, steps, b["clean"]))
    sign = _pick(rng, [1, 1, -1])
    train = b["train"] + sign * rng.uniform(0.04, 0.12) * level * (steps >= at)
    val = b["val"] + sign * rng.uniform(0.04, 0.12) * level * (b["vsteps"] >= at)
    _emit_pretrain(run, b, train=train, val=val)
    run.expect("REGIME_SHIFT", ["train/loss"], at, at, _tol(total, every, 0.01), explained_by=None)
    run.tolerate("LOSS_SPIKE", "CONVERGED", "STILL_IMPROVING", "CONVERGED_EARLY", "CORRELATED_SPIKES",
                 "GENERALIZATION_GAP")
    run.params.update(shift_at=at, sign=int(sign))
    return run


def explained_shift(rng, name):
    """A data refresh (new mixture) bumps the loss up, or an LR warm restart does; the
    events table says so. Healthy: the REGIME_SHIFT may only be info and cite the event."""
    variant = _pick(rng, ["data_refresh", "lr_change"])
    run = Run(name, "explained_shift", "pretrain", healthy=True)
    b = _pretrain(rng, run, noise_rel=rng.uniform(0.004, 0.012), schedule="constant")
    steps, total, every = b["steps"], b["total"], b["log_every"]
    at = int(total * rng.uniform(0.3, 0.7)) // every * every
    level = float(np.interp(at, steps, b["clean"]))
    bump = rng.uniform(0.05, 0.12) * level
    after = steps >= at
    decay = np.exp(-(steps - at) / (0.3 * total))
    train = b["train"] + after * bump * (0.4 + 0.6 * decay)
    val = b["val"] + (b["vsteps"] >= at) * bump * (0.4 + 0.6 * np.exp(-(b["vsteps"] - at) / (0.3 * total)))
    if variant == "lr_change":
        b["lr"] = b["lr"].copy()
        b["lr"][at:] *= 2.0
        run.event(at, "lr_change", "lr x2 (warm restart)")
    else:
        run.event(at, "data_refresh", "new data mixture")
    _emit_pretrain(run, b, train=train, val=val)
    run.expect("REGIME_SHIFT", ["train/loss"], at, at, _tol(total, every, 0.01), explained_by=variant,
               severity_max="info")
    run.tolerate("CONVERGED", "STILL_IMPROVING", "LOSS_SPIKE", "CORRELATED_SPIKES")
    run.params.update(variant=variant, shift_at=at)
    return run


def converged_early(rng, name):
    """The curve reached its floor at 25-45% of the run: the rest of the compute bought <1%."""
    run = Run(name, "converged_early", "classifier")
    epochs = int(_pick(rng, [60, 100, 150]))
    flat_from = int(epochs * rng.uniform(0.25, 0.45))
    b = _classifier(rng, run, epochs=epochs, flat_from=flat_from, gap=rng.uniform(0.0, 0.03))
    s = b["steps"]
    tol = int(max(0.12 * (s[-1] - s[0]), 3 * (s[1] - s[0])))
    run.expect("CONVERGED_EARLY", [b["names"]["tl"], b["names"]["vl"]], int(s[flat_from - 1]), int(s[-1]), tol)
    run.tolerate("CONVERGED", "PLATEAU")
    return run


def underfitting(rng, name):
    """The model barely learns: loss stays near its initial value (chance level)."""
    run = Run(name, "underfitting", "classifier")
    b = _classifier(rng, run, underfit=True, gap=rng.uniform(0.0, 0.02))
    s = b["steps"]
    n = b["names"]
    run.expect("UNDERFITTING", [n["tl"], n["ta"]], int(s[0]), int(s[-1]), int(s[-1] - s[0]))
    run.tolerate("PLATEAU", "CONVERGED", "CONVERGED_EARLY")
    return run


def overfitting(rng, name):
    """Val loss bottoms out and rises while train keeps falling (classifier or multi-epoch SFT)."""
    variant = _pick(rng, ["classifier", "sft"])
    run = Run(name, "overfitting", variant)
    if variant == "classifier":
        b = _classifier(rng, run, overfit=True, gap=rng.uniform(0.0, 0.03))
        s, n = b["steps"], b["names"]
        best = int(s[b["best_epoch"] - 1])
        spacing = int(s[1] - s[0])
        lo, hi = b["near_best"]  # a flat-bottomed val curve: the tolerance covers its flat stretch
        flat = max(best - int(s[lo - 1]), int(s[hi - 1]) - best)
        run.expect("OVERFITTING", [n["tl"], n["vl"]], best, int(s[-1]),
                   int(max(4 * spacing, 0.1 * (s[-1] - s[0]), flat)))
        # the train loss nears its floor by the val best and then keeps falling 1% per
        # epoch (_classifier): a flat stretch that resumes, which PLATEAU_BROKEN may report
        run.tolerate("GENERALIZATION_GAP", "CONVERGED", "CONVERGED_EARLY", "PLATEAU_BROKEN")
    else:
        b = _sft(rng, run, epochs=int(rng.integers(3, 6)), eval_mode="steps", overfit=True)
        steps = run.curves["eval_loss"][0]
        best = b["best_step"]
        run.expect("OVERFITTING", ["loss", "eval_loss"], best, b["total"],
                   int(max(2 * (steps[1] - steps[0]), 0.1 * b["total"])))
        run.tolerate("GENERALIZATION_GAP", "REGIME_SHIFT", "STILL_IMPROVING")
    run.params["variant"] = variant
    return run


def generalization_gap(rng, name):
    """Train and val both improve and flatten, but val sits far from train throughout."""
    run = Run(name, "generalization_gap", "classifier")
    b = _classifier(rng, run, gap=rng.uniform(0.6, 1.5))
    s, n = b["steps"], b["names"]
    run.expect("GENERALIZATION_GAP", [n["tl"], n["vl"]], int(s[len(s) // 4]), int(s[-1]),
               int(0.5 * (s[-1] - s[0])))
    run.tolerate("CONVERGED", "CONVERGED_EARLY", "STILL_IMPROVING")
    return run


def objective_imbalance(rng, name):
    """One modality's loss stalls early while the others keep improving."""
    run = Run(name, "objective_imbalance", "multimodal")
    stalled = _pick(rng, ["text", "image", "audio"])
    b = _multimodal(rng, run, stalled=stalled)
    others = [f"{m}/loss" for m in ("text", "image", "audio") if m != stalled]
    run.expect("OBJECTIVE_IMBALANCE", [f"{stalled}/loss"] + others, b["stall_at"], b["total"],
               _tol(b["total"], run.params["every"], 0.1))
    run.tolerate("PLATEAU", "CONVERGED_EARLY", "CONVERGED", "STILL_IMPROVING", "UNDERFITTING")
    return run


def reward_hacking(rng, name):
    """Proxy reward rises while the gold reward turns over, or KL runs away."""
    variant = _pick(rng, ["gold_falls", "kl_runaway"])
    run = Run(name, "reward_hacking", "rlhf")
    b = _rlhf(rng, run, hacking=variant)
    metrics = ["objective/scores", "eval/gold_reward"] if variant == "gold_falls" else ["objective/scores", "objective/kl"]
    spacing = int(b["vsteps"][1] - b["vsteps"][0])
    run.expect("REWARD_HACKING", metrics, b["onset"], b["total"], int(max(2 * spacing, 0.15 * b["total"])))
    run.tolerate("STILL_IMPROVING", "REGIME_SHIFT", "DIVERGENCE", "OVERFITTING", "GENERALIZATION_GAP",
                 "CONVERGED")
    run.params["variant"] = variant
    return run


def reward_collapse(rng, name):
    """GRPO: the optimised reward peaks and falls back (70-140% of its gain) while KL keeps
    growing; the label starts at the clean reward's peak (not hacking: no gold curve)."""
    run = Run(name, "reward_collapse", "rlhf")
    b = _grpo(rng, run, collapse=True)
    run.expect("REWARD_COLLAPSE", ["reward", "kl"], b["peak"], b["total"],
               int(max(3 * b["every"], 0.15 * b["total"])))
    run.tolerate("DIVERGENCE", "REGIME_SHIFT", "CONVERGED_EARLY", "STILL_IMPROVING", "CONVERGED")
    return run


def correlated_spikes(rng, name):
    """Spikes at the same steps in several metrics: a bad batch hits every modality
    ("data"), or grad-norm spikes lead the loss spikes by a few steps ("grad")."""
    variant = _pick(rng, ["data", "grad"])
    if variant == "data":
        run = Run(name, "correlated_spikes", "multimodal")
        b = _multimodal(rng, run)
        steps, total, every = b["steps"], b["total"], run.params["every"]
        k = int(rng.integers(2, 5))
        ats = np.sort(rng.choice(np.arange(int(0.15 * total), int(0.9 * total), every), size=k, replace=False))
        for mod in ("text", "image", "audio"):
            s, v = run.curves[f"{mod}/loss"]
            v = v.copy()
            for at in ats:
                v += spike_shape(s, at, float(np.interp(at, s, v)) * rng.uniform(0.3, 0.8), every * 1.5)
            run.curves[f"{mod}/loss"] = (s, v)
        metrics = ["text/loss", "image/loss", "audio/loss"]
    else:
        run = Run(name, "correlated_spikes", "pretrain")
        b = _pretrain(rng, run, log_every=1, total=int(_pick(rng, [3000, 6000])))
        steps, total, every = b["steps"], b["total"], 1
        k = int(rng.integers(2, 5))
        ats = np.sort(rng.choice(np.arange(int(0.15 * total), int(0.9 * total)), size=k, replace=False))
        train, grad = b["train"].copy(), b["grad"].copy()
        for at in ats:
            lead = int(rng.integers(1, 5))
            grad = grad + spike_shape(steps, at - lead, float(np.interp(at, steps, grad)) * rng.uniform(10, 100), 2)
            train = train + spike_shape(steps, at, float(np.interp(at, steps, b["clean"])) * rng.uniform(0.2, 0.8), 4)
        _emit_pretrain(run, b, train=train, grad=grad)
        metrics = ["train/loss", "grad_norm"]
    for at in ats:
        run.expect("CORRELATED_SPIKES", metrics, int(at) - (5 if variant == "grad" else 0), int(at),
                   max(5 * every, int(0.01 * total)), cause="data" if variant == "data" else "optimisation")
    run.tolerate("LOSS_SPIKE", "GRAD_NORM_INSTABILITY", "CONVERGED", "STILL_IMPROVING", "CONVERGED_EARLY")
    run.params.update(variant=variant, spikes=[int(a) for a in ats])
    return run


def grad_norm_instability(rng, name):
    """Grad norm drifts up and becomes heavy-tailed (frequent spikes, growing variance)
    from some step on while the loss still looks fine."""
    run = Run(name, "grad_norm_instability", "pretrain")
    b = _pretrain(rng, run)
    steps, total, every = b["steps"], b["total"], b["log_every"]
    onset = int(total * rng.uniform(0.3, 0.6)) // every * every
    grad = b["grad"].copy()
    after = steps >= onset
    x = (steps[after] - onset) / (total - onset)
    m = int(after.sum())
    grad[after] *= (1 + rng.uniform(3, 10) * x) * np.exp(rng.uniform(0.5, 1.0) * x * rng.standard_normal(m))
    burst = rng.random(m) < 0.03
    grad[after] += burst * grad[after] * rng.uniform(5, 30, m)
    _emit_pretrain(run, b, grad=grad)
    run.expect("GRAD_NORM_INSTABILITY", ["grad_norm"], onset, total, _tol(total, every, 0.12))
    run.tolerate("CONVERGED", "STILL_IMPROVING", "CONVERGED_EARLY", "REGIME_SHIFT")
    run.params["onset"] = onset
    return run


SCENARIOS = {f.__name__: f for f in (
    healthy_pretrain, healthy_noisy_pretrain, healthy_step_lr, healthy_sft, healthy_reward_model,
    healthy_rlhf, healthy_multimodal, healthy_classifier, healthy_short, converged, still_improving,
    nonfinite, divergence, loss_spike, erratic, plateau, plateau_broken, regime_shift, explained_shift,
    converged_early, underfitting, overfitting, generalization_gap, objective_imbalance,
    reward_hacking, correlated_spikes, grad_norm_instability, reward_collapse, healthy_grpo,
)}

# The bundled samples: (scenario, seed). Small, varied, a few healthy and a few sick.
SAMPLES = (
    ("healthy_pretrain", 11), ("healthy_sft", 12), ("healthy_reward_model", 13), ("healthy_rlhf", 14),
    ("healthy_multimodal", 15), ("healthy_classifier", 16), ("loss_spike", 21), ("overfitting", 22),
    ("reward_hacking", 23), ("objective_imbalance", 24), ("nonfinite", 25), ("divergence", 26),
    ("plateau", 27),
)


# --------------------------------------------------------------------------- API and files


# scenarios added after the first release take indices after the original ones, so that
# adding a scenario never changes the curves of the existing ones (their seeds stay put)
_ADDED_LATER = ("reward_collapse", "healthy_grpo")


def _scenario_index(scenario: str) -> int:
    base = sorted(s for s in SCENARIOS if s not in _ADDED_LATER)
    return base.index(scenario) if scenario in base else len(base) + _ADDED_LATER.index(scenario)


def make_run(scenario: str, seed: int, name: str | None = None) -> Run:
    """Build one labelled run; same (scenario, seed), same run."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    # the name does not enter the seed, so renaming a run does not change its curves
    rng = np.random.default_rng([seed, _scenario_index(scenario)])
    run = SCENARIOS[scenario](rng, name or f"{scenario}-s{seed}")
    run.params["seed"] = int(seed)
    return run


def make_scenarios(seed: int = 0, variants: int = 5, scenarios=None) -> list[Run]:
    names = scenarios or list(SCENARIOS)
    return [make_run(s, seed * 1000 + v, f"{s}-v{v:02d}") for s in names for v in range(variants)]


def curves_frame(run: Run):
    """The run as a polars long frame (run, metric, step, value)."""
    import polars as pl
    names, steps, values = run.long_arrays()
    return pl.DataFrame({"run": [run.name] * len(steps), "metric": names, "step": steps, "value": values},
                        schema={"run": pl.String, "metric": pl.String, "step": pl.Int64, "value": pl.Float64})


def metrics_frame(run: Run):
    """The roles the labels give each metric, as a polars frame shaped like ``metrics``."""
    import polars as pl
    rows = [dict(run=run.name, metric=m, inferred=False, **meta) for m, meta in sorted(run.metrics.items())]
    return pl.DataFrame(rows, schema={"run": pl.String, "metric": pl.String, "split": pl.String,
                                      "kind": pl.String, "objective": pl.String, "role": pl.String,
                                      "direction": pl.String, "inferred": pl.Boolean})


def write_runs(runs: list[Run], out_dir: Path, meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    labels = {"generator": dict(version=GENERATOR_VERSION, **meta), "codes": list(CODES), "runs": {}}
    for run in runs:
        names, steps, values = run.long_arrays()
        table = pa.table({
            "run": pa.array([run.name] * len(steps), pa.string()),
            "metric": pa.array(names, pa.string()),
            "step": pa.array(steps, pa.int64()),
            "value": pa.array(values, pa.float64()),
        })
        # events (LR changes, data refreshes) travel with the curves, where importers read them
        events = [dict(run=run.name, **e) for e in run.events]
        table = table.replace_schema_metadata({"losscope.events": json.dumps(events, default=_json_default)})
        pq.write_table(table, out_dir / f"{run.name}.parquet", compression="zstd", compression_level=9,
                       use_dictionary=["run", "metric"], write_statistics=True)
        labels["runs"][run.name] = run.label()
    (out_dir / "labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(type(o))


def load_labels(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python data/generate.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sc = sub.add_parser("scenarios", help="every scenario, K seeded variants each")
    sc.add_argument("out_dir", type=Path)
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--variants", type=int, default=5)
    sc.add_argument("--only", nargs="*", default=None, help="scenario names (default all)")
    sm = sub.add_parser("samples", help="the small bundled sample set")
    sm.add_argument("out_dir", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "scenarios":
        runs = make_scenarios(args.seed, args.variants, args.only)
        write_runs(runs, args.out_dir, dict(command="scenarios", seed=args.seed, variants=args.variants))
    else:
        runs = [make_run(s, seed, f"sample-{s.replace('_', '-')}") for s, seed in SAMPLES]
        write_runs(runs, args.out_dir, dict(command="samples"))
    print(f"wrote {len(runs)} runs to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
