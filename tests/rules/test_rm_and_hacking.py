"""Reward-model / SFT false alarms of ERRATIC and UNDERFITTING, and REWARD_HACKING on
short gold curves (runs named by their generator run seed, tuning seeds 1-4 only).

- ERRATIC: the oscillation index must beat white noise by oscillation_z standard errors
  at the curve's number of points (turning-point test), not a fixed 0.7;
- UNDERFITTING: an accuracy's gain is measured from chance (1/k for a loss starting at
  ln(k), else 1/2), not from its first eval point;
- REWARD_HACKING: a short gold curve's noise is the lower of the residual and the
  difference-based estimate (the residual one holds the curvature a smoother of 7 points
  cannot follow).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.rules.erratic import white_oscillation_bar
from tests.rules.helpers import diagnose_scenario, matches


def _of(findings, code, severities=("warning", "critical")):
    return [f for f in findings if f.code == code and f.severity in severities]


def _hit(scenario, seed, code):
    run, found = diagnose_scenario(scenario, seed)
    labels = [e for e in run.expected if e["code"] == code]
    assert labels
    return all(any(matches(f, lab) for f in found) for lab in labels), found


# ---- ERRATIC ------------------------------------------------------------------------

def test_white_noise_oscillation_bar_matches_simulation():
    from kernels.noise import oscillation_index
    rng = np.random.default_rng(0)
    osc = np.array([oscillation_index(rng.standard_normal(200))[0] for _ in range(400)])
    se = math.sqrt((16 * 200 - 29) / 90) / 198
    assert abs(osc.mean() - 2 / 3) < 0.006
    assert abs(osc.std() - se) < 0.25 * se
    assert abs(white_oscillation_bar(200, 3.0, 0.7) - (2 / 3 + 3 * se)) < 1e-12
    assert white_oscillation_bar(100000, 3.0, 0.7) == 0.7  # the effect-size floor holds for long curves


def test_white_noise_reward_model_loss_is_not_erratic():
    # healthy_reward_model, 200 points of nearly white 9% noise: oscillation 0.702
    # (+1.2 SE over white noise) used to pass the fixed 0.7 bar
    _, found = diagnose_scenario("healthy_reward_model", 2013)
    assert not _of(found, "ERRATIC"), [f.message for f in _of(found, "ERRATIC")]


@pytest.mark.parametrize("seed", [1006, 1009, 2006, 3001])
def test_erratic_still_fires(seed):
    # 1006/1009/2006: 400-800 points, oscillation 0.69-0.71 (under the bar): the noise jump;
    # 3001: 600 points, oscillation 0.78 (+6.5 SE)
    ok, found = _hit("erratic", seed, "ERRATIC")
    assert ok, [(f.code, f.step_start, f.message) for f in found]


# ---- UNDERFITTING -------------------------------------------------------------------

@pytest.mark.parametrize("seed", [4001, 2011, 1003])
def test_healthy_reward_model_is_not_underfitting(seed):
    # loss 0.55-0.62 falling 4-14%; eval accuracy from 0.57-0.62 to 0.66-0.72: 0.21-0.25 of
    # the way from its first eval to perfect (at the old bar), 0.31-0.43 of the way from chance
    _, found = diagnose_scenario("healthy_reward_model", seed)
    assert not [f for f in found if f.code == "UNDERFITTING"]


@pytest.mark.parametrize("seed", [1006, 3005, 4002, 4007])
def test_underfitting_still_fires(seed):
    # 100-class (acc 0.18), binary (0.58), binary from 0.48, 10-class off chance (0.25)
    ok, found = _hit("underfitting", seed, "UNDERFITTING")
    assert ok, [(f.code, f.step_start, f.message) for f in found]


# ---- REWARD_HACKING -----------------------------------------------------------------

def test_short_gold_turning_over_is_hacking():
    # 7 evals: gold 0.99 at step 1,140 falls to 0.68 by 2,000 (23% of its gain); residual
    # noise 0.14 (the curvature), difference-based 0.11, true 0.03
    ok, found = _hit("reward_hacking", 4003, "REWARD_HACKING")
    assert ok, [(f.code, f.step_start, f.message) for f in found]


@pytest.mark.parametrize("seed", [1002, 2010, 3001])
def test_healthy_rlhf_gold_saturating_is_quiet(seed):
    # the gold's smoothed best sits 1-2 evals before the end and the end 0.1-0.9 noise below it
    _, found = diagnose_scenario("healthy_rlhf", seed)
    assert not _of(found, "REWARD_HACKING"), [f.message for f in _of(found, "REWARD_HACKING")]
