"""Rules that must tell autocorrelated wander from real changes, and logged events from
bad batches (fixes of 2026-12-06; runs named by their generator run seed).

- REGIME_SHIFT: a jump must stand min_shift_z HAC standard errors (analysis delta_z);
- PLATEAU_BROKEN: the stall's and the descent's slopes must differ by min_break_z HAC SEs;
- PLATEAU: not "never learned" while the eval twin of the objective improves plainly;
- LOSS_SPIKE: a slow spike at a logged LR change / data refresh is info and cites it.
"""

from __future__ import annotations

import pytest

from tests.rules.helpers import analysed, diagnose_scenario, matches
from tests.rules.helpers import of as _of


def _extra(scenario, seed, metric):
    """The analysis' extra features of one curve of a generated scenario."""
    import json
    _, t = analysed(scenario, seed)
    extra = t["features"].filter(t["features"]["metric"] == metric)["extra"][0]
    return json.loads(extra) if isinstance(extra, str) else extra


def test_ar_wander_is_not_a_regime_shift():
    # healthy_noisy_pretrain, AR(0.94) noise of 7.5%: a 26% "drop" between two fitted lines
    # at step 2,430 that the noise made (delta_spread 5.7, but only ~10 HAC SEs)
    run, found = diagnose_scenario("healthy_noisy_pretrain", 3011)
    assert not _of(found, "REGIME_SHIFT"), [f.message for f in _of(found, "REGIME_SHIFT")]
    shifts = _extra("healthy_noisy_pretrain", 3011, "train/loss")["shifts"]
    assert shifts and all(s["delta_z"] is not None and abs(s["delta_z"]) < 14 for s in shifts)


@pytest.mark.parametrize("seed", [1017, 1021])
def test_small_real_shifts_fire(seed):
    # 5.0-5.2 raw spreads (under the old 5.3 floor) but > 17 HAC SEs: a step of the level
    run, found = diagnose_scenario("regime_shift", seed)
    label = [e for e in run.expected if e["code"] == "REGIME_SHIFT"][0]
    assert any(matches(f, label) and f.severity == "warning" for f in found), \
        [(f.code, f.step_start, f.message) for f in found]


@pytest.mark.parametrize("scenario,seed", [("healthy_noisy_pretrain", 4003), ("healthy_sft", 4003)])
def test_wander_is_not_a_broken_plateau(scenario, seed):
    _, found = diagnose_scenario(scenario, seed)
    assert not _of(found, "PLATEAU_BROKEN"), [f.message for f in _of(found, "PLATEAU_BROKEN")]


def test_broken_plateau_still_reports_its_break_z():
    run, found = diagnose_scenario("plateau_broken", 4000)
    pb = _of(found, "PLATEAU_BROKEN")
    assert pb and pb[0].evidence["break_z"] >= 7.0
    assert any(matches(f, e) for f in pb for e in run.expected if e["code"] == "PLATEAU_BROKEN")


def test_noisy_train_loss_with_a_learning_eval_twin_is_not_never_learned():
    # reward model: train loss falls 13% under 5-12% noise, eval loss and accuracy rise plainly
    _, found = diagnose_scenario("healthy_reward_model", 4001)
    assert not _of(found, "PLATEAU"), [f.message for f in _of(found, "PLATEAU")]
    assert not [f for f in found if f.severity != "info"]


def test_slow_spike_at_a_logged_lr_change_is_info_and_cites_it():
    run, found = diagnose_scenario("explained_shift", 6004)
    spikes = _of(found, "LOSS_SPIKE")
    assert spikes and all(f.severity == "info" for f in spikes)
    assert spikes[0].evidence["explained_by"] == run.events[0]["kind"] == "lr_change"


def test_slow_spike_without_an_event_stays_a_warning():
    run, found = diagnose_scenario("loss_spike", 1004)  # two slow-recovering spikes, no event logged
    assert not run.events
    spikes = [f for f in _of(found, "LOSS_SPIKE") if f.evidence.get("recovery_class") == "slow"]
    assert len(spikes) == 2 and all(f.severity == "warning" and f.evidence["explained_by"] is None for f in spikes)


def test_late_gold_turnover_counts_by_its_decline_after_the_best():
    # reward_hacking gold_falls: the gold peaks at 55% of the run and gives back only 8% of
    # its gain by the end (under min_gold_drop_rel), but its 9 points after the best fall
    # at one-sided p ~ 0.01 (analysis after_best_slope)
    run, found = diagnose_scenario("reward_hacking", 4002)
    rh = _of(found, "REWARD_HACKING")
    label = [e for e in run.expected if e["code"] == "REWARD_HACKING"][0]
    assert rh and matches(rh[0], label)
    gold = [d for d in rh[0].evidence["details"] if d["kind"] == "gold_falls"]
    assert gold and all(g["gold_drop_rel_of_gain"] < 0.1 and g["gold_decline_p"] <= 0.01 for g in gold)
    extra = _extra("reward_hacking", 4002, "eval/gold_reward")
    assert extra["after_best_points"] == 9 and extra["after_best_slope"] < 0


def test_after_best_line_leaves_the_best_out_and_needs_three_points():
    import numpy as np

    from engine.analyse import _after_best
    s = np.arange(10, dtype=np.int64) * 10
    x = np.array([0.0, 1, 2, 3, 4, 5, 4.5, 4.0, 3.5, 3.0])
    out = _after_best(s, x, 50)
    assert out["after_best_points"] == 4 and abs(out["after_best_slope"] + 0.05) < 1e-12
    assert out["after_best_slope_se"] == 0.0 and out["after_best_mean"] == 3.75
    assert _after_best(s, x, 80)["after_best_slope"] is None  # one point after the best
    assert _after_best(s, x, 90)["after_best_points"] == 0


@pytest.mark.parametrize("seed", [1020, 2002, 4014])
def test_slow_spike_longer_than_the_baseline_window_is_a_spike_not_a_shift(seed):
    # a jump that decays back over hundreds of points is an edge to the 41-point median
    # baseline (no row in the spikes table); the segments see a jump and a steep return
    run, found = diagnose_scenario("loss_spike", seed)
    slow = [e for e in run.expected if e["code"] == "LOSS_SPIKE" and e.get("recovery_class") == "slow"]
    got = [f for f in _of(found, "LOSS_SPIKE") if f.evidence.get("detected_as") == "level shift taken back"]
    assert got and all(f.severity == "warning" and f.evidence["taken_back"] >= 0.5 for f in got)
    assert any(matches(f, e) for f in got for e in slow)
    assert not _of(found, "REGIME_SHIFT"), [f.message for f in _of(found, "REGIME_SHIFT")]


@pytest.mark.parametrize("seed", [1000, 1004, 1015, 2013])
def test_upward_shift_that_stays_is_a_regime_shift_not_a_spike(seed):
    run, found = diagnose_scenario("regime_shift", seed)
    label = [e for e in run.expected if e["code"] == "REGIME_SHIFT"][0]
    rs = [f for f in _of(found, "REGIME_SHIFT") if matches(f, label)]
    assert rs and rs[0].evidence["shifts"][0]["delta"] > 0
    assert not [f for f in _of(found, "LOSS_SPIKE") if f.evidence.get("detected_as")]
