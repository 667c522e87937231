"""Derived events: lr changes vs smooth schedules, resumes."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from engine.events import lr_change_steps, resume_events


def warmup_cosine(steps, *, peak=3e-4, warmup=200, total=5000, floor=0.0):
    s = np.asarray(steps, dtype=np.float64)
    warm = peak * np.minimum(s, warmup) / warmup
    prog = np.clip((s - warmup) / (total - warmup), 0, 1)
    cos = floor + (peak - floor) * 0.5 * (1 + np.cos(math.pi * prog))
    return np.where(s < warmup, warm, cos)


@pytest.mark.parametrize("every", [1, 10, 50, 250, 500])
def test_warmup_cosine_makes_no_event(every):
    steps = np.arange(0, 5001, every)
    assert lr_change_steps(steps, warmup_cosine(steps)) == [], every


@pytest.mark.parametrize("every", [1, 25, 100])
def test_linear_exponential_and_wsd_schedules_make_no_event(every):
    steps = np.arange(0, 10_001, every)
    linear = 1e-3 * (1 - steps / 10_000) + 1e-6
    expo = 1e-3 * 0.9995 ** steps
    wsd = np.where(steps < 8000, 1e-3, 1e-3 * (1 - (steps - 8000) / 2000) + 1e-6)
    for name, lr in (("linear", linear), ("exponential", expo), ("wsd", wsd)):
        assert lr_change_steps(steps, lr) == [], (name, every)


@pytest.mark.parametrize("every", [1, 10, 100])
def test_step_decay_fires_at_the_decay_steps(every):
    steps = np.arange(0, 9000, every)
    lr = 0.1 * 0.1 ** (steps // 3000)
    got = lr_change_steps(steps, lr)
    assert [g[0] for g in got] == [3000, 6000], (every, got)
    assert got[0][1] == pytest.approx(0.1) and got[0][2] == pytest.approx(0.01)


def test_warm_restarts_fire_and_nonfinite_points_are_skipped():
    steps = np.arange(0, 3000)
    # SGDR: cosine cycles of 1,000 steps, each restarting at the peak
    lr = 1e-5 + (3e-4 - 1e-5) * 0.5 * (1 + np.cos(math.pi * (steps % 1000) / 1000))
    lr[500] = np.nan
    got = [g[0] for g in lr_change_steps(steps, lr)]
    assert got == [1000, 2000], got


def test_constant_and_tiny_curves():
    assert lr_change_steps(np.arange(100), np.full(100, 1e-4)) == []
    assert lr_change_steps(np.array([5]), np.array([1e-3])) == []
    assert lr_change_steps(np.array([], dtype=np.int64), np.array([])) == []


def test_resume_events_one_per_rewind_in_source_order():
    df = pl.DataFrame({
        "run": ["r"] * 9,
        "metric": ["loss", "acc", "loss", "acc", "loss", "acc", "loss", "acc", "loss"],
        "step": [10, 10, 20, 20, 15, 15, 20, 20, 30],
    })
    ev = resume_events(df)
    assert [(r, s) for r, s, _ in ev] == [("r", 15)]
    assert "'loss', 'acc'" in ev[0][2] and "from 20 to 15" in ev[0][2]
    # equal steps repeated (train and eval rows at one step) are not a resume
    df2 = pl.DataFrame({"run": ["r"] * 4, "metric": ["loss"] * 4, "step": [1, 1, 2, 2]})
    assert resume_events(df2) == []


def test_rounded_printing_of_a_smooth_decay_is_not_an_event_but_a_step_decay_is():
    steps = np.arange(0, 20_000, 10)
    linear = 6e-4 * (1 - steps / 20_000)
    printed = np.array([float(f"{x:.0e}") for x in linear])  # llm.c-style "lr 5e-04"
    assert lr_change_steps(steps, printed) == []
    fixed = np.round(linear, 6)  # "lr:0.000005"
    assert lr_change_steps(steps, fixed) == []
    step_decay = np.array([float(f"{x:.0e}") for x in 1e-3 * 0.1 ** (steps // 10_000)])
    assert [g[0] for g in lr_change_steps(steps, step_decay)] == [10_000]


def test_coarsely_logged_warmup_is_not_an_event():
    # gemma3-1b-instruct-sft: logged every 50 steps, warmup ends between steps 100 and 150
    steps = np.array([50, 100, 150, 200, 250, 300, 350])
    lr = np.array([8.75e-05, 1.7678571e-04, 1.9797427e-04, 1.9523679e-04, 1.9249932e-04, 1.8976184e-04,
                   1.8702436e-04])
    assert lr_change_steps(steps, lr) == []
