"""CONVERGED_EARLY precision (the gain after the near-best step) and REWARD_HACKING recall
(runs named by their generator run seed, tuning seeds 1-4 and 9-12 only).

- CONVERGED_EARLY: "within noise of the best" says the rest of the run bought little only
  when the noise band is small next to the total improvement; a curve whose gain after
  its near-best step exceeds max_after_share (2%) of its total improvement by
  min_after_z (2) HAC standard errors is not converged early.
"""

from __future__ import annotations

import pytest

from engine.rules.base import load_thresholds
from engine.rules.converged_early import bought_more, gain_after
from tests.rules.helpers import analysed, diagnose_scenario, matches


def _ctx(scenario, seed):
    from engine.rules.base import RunContext
    run, t = analysed(scenario, seed)
    return run, RunContext(run.name, features=t["features"], segments=t["segments"], spikes=t["spikes"],
                           metrics=t["metrics"], events=t["events"])


def _hit(scenario, seed, code):
    run, found = diagnose_scenario(scenario, seed)
    labels = [e for e in run.expected if e["code"] == code]
    assert labels
    return all(any(matches(f, lab) for f in found) for lab in labels), found


# ---- CONVERGED_EARLY ----------------------------------------------------------------

@pytest.mark.parametrize("seed,metric,near", [
    (4001, "eval_loss", 1000),  # rate x total 5.57: 10 eval points, 3.6% of the improvement after step 1000 (+2.6 SE)
    (11005, "loss", 700),       # rate x total 3.72: 10% train noise, 20% of the improvement after 35% of the run
])
def test_healthy_reward_model_rest_bought_more(seed, metric, near):
    th = load_thresholds()["CONVERGED_EARLY"]
    _, ctx = _ctx("healthy_reward_model", seed)
    ga = gain_after(ctx, metric, near)
    assert ga["gain_share"] > th.max_after_share and bought_more(ga, th), ga
    _, found = diagnose_scenario("healthy_reward_model", seed)
    assert not [f for f in found if f.code == "CONVERGED_EARLY"]


@pytest.mark.parametrize("seed", [3006, 3009, 9002, 1000])
def test_converged_early_still_fires(seed):
    # 3006/3009: the largest gains after the near-best step among the labels (2.3-2.5% of
    # the improvement, +0.6/+0.7 SE over 2%); 9002: 1.9%; 1000: a typical one
    ok, found = _hit("converged_early", seed, "CONVERGED_EARLY")
    assert ok, [(f.code, f.step_start, f.step_end, f.metrics) for f in found]
