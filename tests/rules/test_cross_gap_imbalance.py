"""GENERALIZATION_GAP and OBJECTIVE_IMBALANCE on generated scenarios (fixed seeds)."""

import pytest

from tests.rules.helpers import diagnose_scenario, matches


def _code(findings, code):
    return [f for f in findings if f.code == code]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fires__generalization_gap_val_far_above_train(seed):
    run, found = diagnose_scenario("generalization_gap", seed)
    got = _code(found, "GENERALIZATION_GAP")
    assert len(got) == 1 and matches(got[0], run.expected[0]), (run.expected, [(f.step_start, f.message) for f in got])
    assert got[0].severity == "info" and got[0].evidence["gap_rel"] >= 0.25


@pytest.mark.parametrize("scenario,seed", [("healthy_classifier", 0), ("healthy_classifier", 3), ("healthy_pretrain", 0),
                                           ("healthy_short", 1), ("overfitting", 0)])
def test_quiet__generalization_gap_small_gap_or_overfitting(scenario, seed):
    run, found = diagnose_scenario(scenario, seed)
    assert not _code(found, "GENERALIZATION_GAP"), [f.message for f in _code(found, "GENERALIZATION_GAP")]


@pytest.mark.parametrize("seed", [0, 1, 2, 13])  # 13: noise cuts the stalled stretch into plateau/descent pieces
def test_fires__objective_imbalance_one_modality_stalls(seed):
    run, found = diagnose_scenario("objective_imbalance", seed)
    got = _code(found, "OBJECTIVE_IMBALANCE")
    assert any(matches(f, run.expected[0]) for f in got), (run.expected, [(f.step_start, f.message) for f in got])
    stalled = f"{run.params['stalled']}/loss"
    assert got[0].metrics[0] == stalled and got[0].evidence["stall_share"] >= 0.5


@pytest.mark.parametrize("seed", range(5))
def test_quiet__objective_imbalance_healthy_multimodal(seed):
    run, found = diagnose_scenario("healthy_multimodal", seed)
    assert not _code(found, "OBJECTIVE_IMBALANCE"), [f.message for f in _code(found, "OBJECTIVE_IMBALANCE")]
