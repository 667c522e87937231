"""REWARD_HACKING, REWARD_COLLAPSE, CORRELATED_SPIKES, GRAD_NORM_INSTABILITY on generated
scenarios (fixed seeds) and on the real GRPO chaos-economy log."""

import pytest

from tests.rules.helpers import diagnose_scenario, matches


def _code(findings, code):
    return [f for f in findings if f.code == code]


def _hit(run, found, code):
    labels = [l for l in run.expected if l["code"] == code]
    got = _code(found, code)
    return labels, got, [l for l in labels if not any(matches(f, l) for f in got)]


@pytest.mark.parametrize("seed", [1, 3])  # gold reward turns over (Gao et al.) while the proxy rises
def test_fires__reward_hacking_gold_reward_falls(seed):
    run, found = diagnose_scenario("reward_hacking", seed)
    assert run.params["variant"] == "gold_falls"
    labels, got, missed = _hit(run, found, "REWARD_HACKING")
    assert not missed, (seed, labels, [(f.step_start, f.step_end, f.message) for f in got])
    assert "gold_falls" in got[0].evidence["signals"]


@pytest.mark.parametrize("seed", [0, 2])  # KL accelerates to tens of nats while the proxy rises
def test_fires__reward_hacking_kl_runaway(seed):
    run, found = diagnose_scenario("reward_hacking", seed)
    assert run.params["variant"] == "kl_runaway"
    labels, got, missed = _hit(run, found, "REWARD_HACKING")
    assert not missed, (seed, labels, [(f.step_start, f.step_end, f.message) for f in got])
    assert "kl_runaway" in got[0].evidence["signals"] and "objective/kl" in got[0].metrics


@pytest.mark.parametrize("seed", range(6))
def test_quiet__reward_hacking_and_reward_collapse_on_healthy_rlhf(seed):
    run, found = diagnose_scenario("healthy_rlhf", seed)
    assert not _code(found, "REWARD_HACKING") and not _code(found, "REWARD_COLLAPSE"), \
        [f.message for f in found if f.code.startswith("REWARD")]


def test_fires__reward_collapse_real_grpo_chaos_economy(real_dir):
    from engine.diagnose import diagnose
    df = diagnose(str(real_dir / "rlhf/grpo-chaos-economy/trainer_state.json"))
    rc = df.filter(df["code"] == "REWARD_COLLAPSE").to_dicts()
    assert len(rc) == 1, df.select("code", "message")
    f = rc[0]
    assert {"reward", "kl"} <= set(f["metrics"])
    assert 60 <= f["step_start"] <= 100 and f["step_end"] == 200  # reward peaks at steps 80-85
    # the reward falls: not hacking (which needs the optimised reward to keep rising)
    assert df.filter(df["code"] == "REWARD_HACKING").height == 0
    assert df.filter(df["code"] == "CORRELATED_SPIKES").height == 0  # reward mean/std spikes are one quantity


def test_quiet__reward_collapse_when_reward_keeps_rising():
    run, found = diagnose_scenario("reward_hacking", 1)  # proxy keeps rising: hacking, not collapse
    assert not _code(found, "REWARD_COLLAPSE")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fires__correlated_spikes_data_or_optimisation(seed):
    run, found = diagnose_scenario("correlated_spikes", seed)
    labels, got, missed = _hit(run, found, "CORRELATED_SPIKES")
    assert not missed, (seed, labels, [(f.step_start, f.step_end, f.message) for f in got])
    want = "data" if run.params["variant"] == "data" else "optimisation"
    assert all(f.evidence["cause"] == want for f in got), [f.message for f in got]
    assert all(f"{want} problem" in f.message for f in got)


@pytest.mark.parametrize("scenario,seed", [("loss_spike", 0), ("loss_spike", 1), ("healthy_multimodal", 0),
                                           ("healthy_pretrain", 2), ("grad_norm_instability", 0)])
def test_quiet__correlated_spikes_single_metric_spikes(scenario, seed):
    run, found = diagnose_scenario(scenario, seed)
    assert not _code(found, "CORRELATED_SPIKES"), [f.message for f in _code(found, "CORRELATED_SPIKES")]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fires__grad_norm_instability_growth_and_bursts(seed):
    run, found = diagnose_scenario("grad_norm_instability", seed)
    labels, got, missed = _hit(run, found, "GRAD_NORM_INSTABILITY")
    assert not missed, (seed, labels, [(f.step_start, f.message) for f in got])
    assert got[0].evidence["growth"] >= 2.5


@pytest.mark.parametrize("scenario,seed", [("healthy_pretrain", 0), ("healthy_noisy_pretrain", 1), ("loss_spike", 2),
                                           ("healthy_sft", 0), ("nonfinite", 3)])
def test_quiet__grad_norm_instability_on_settled_grad_norm(scenario, seed):
    run, found = diagnose_scenario(scenario, seed)
    if scenario == "nonfinite" and "GRAD_NORM_INSTABILITY" in run.tolerated:
        pytest.skip("this nonfinite variant tolerates GRAD_NORM_INSTABILITY")
    assert not _code(found, "GRAD_NORM_INSTABILITY"), [f.message for f in _code(found, "GRAD_NORM_INSTABILITY")]


@pytest.mark.parametrize("seed", [0, 1, 2])  # GRPO reward peaks and gives back most of its gain while KL grows
def test_fires__reward_collapse_generated_grpo(seed):
    run, found = diagnose_scenario("reward_collapse", seed)
    labels, got, missed = _hit(run, found, "REWARD_COLLAPSE")
    assert labels and not missed, (seed, labels, [(f.step_start, f.step_end, f.message) for f in got])
    assert {"reward", "kl"} <= set(got[0].metrics) and got[0].severity == "warning"
    assert not _code(found, "REWARD_HACKING")  # the optimised reward itself fell: not hacking


@pytest.mark.parametrize("seed", range(4))
def test_quiet__reward_collapse_on_healthy_grpo(seed):
    run, found = diagnose_scenario("healthy_grpo", seed)
    assert not [f for f in found if f.severity != "info"], [(f.code, f.message) for f in found]
