"""OVERFITTING: fires on generated overfitting runs (classifier and multi-epoch SFT) and
on the real whisper / trainer_state_viz logs; quiet on healthy runs, a large but stable
generalisation gap, and the real tinyllama / spam-detection logs."""

import pytest

from tests.rules.helpers import diagnose_scenario, matches


def _of(findings, code="OVERFITTING"):
    return [f for f in findings if f.code == code]


@pytest.mark.parametrize("seed", [0, 4, 10])  # SFT variant: eval_loss rises after epoch 1-2
def test_fires__overfitting_sft_eval_loss_turns_up(seed):
    run, found = diagnose_scenario("overfitting", seed)
    assert run.params["variant"] == "sft", run.params
    got = _of(found)
    label = run.expected[0]
    assert any(matches(f, label) for f in got), (seed, label, [(f.step_start, f.step_end, f.message) for f in got])
    f = got[0]
    ev = f.evidence
    assert ev["best_checkpoint_step"] == f.step_start
    # early stopping: patience x eval spacing after the best checkpoint, and a positive saving
    assert ev["early_stop_step"] == f.step_start + ev["patience"] * ev["lead"]["val_spacing"]
    assert 0 < ev["compute_saved_rel"] < 1
    assert "patience 3" in f.message and "saved" in f.message


@pytest.mark.parametrize("seed", [1, 17, 28])  # classifier variant: val_loss bottoms out mid-run
def test_fires__overfitting_classifier_val_loss_bottoms_out(seed):
    run, found = diagnose_scenario("overfitting", seed)
    assert run.params["variant"] == "classifier", run.params
    got = _of(found)
    assert any(matches(f, run.expected[0]) for f in got), (seed, run.expected, [f.message for f in got])
    assert got[0].severity == "warning" and 0.5 <= got[0].confidence <= 0.95


def test_fires__overfitting_patience_is_configurable():
    run, found = diagnose_scenario("overfitting", 0, thresholds={"OVERFITTING": {"patience": 1}})
    f = _of(found)[0]
    assert f.evidence["patience"] == 1
    assert f.evidence["early_stop_step"] == f.step_start + f.evidence["lead"]["val_spacing"]


@pytest.mark.parametrize("scenario,seed", [("healthy_sft", 0), ("healthy_sft", 1), ("healthy_classifier", 0),
                                           ("healthy_classifier", 1), ("healthy_short", 0), ("generalization_gap", 0),
                                           ("healthy_pretrain", 0), ("converged", 0)])
def test_quiet__overfitting_when_val_keeps_improving(scenario, seed):
    run, found = diagnose_scenario(scenario, seed)
    assert not _of(found), [f.message for f in _of(found)]


def _diagnose_real(path):
    from engine.diagnose import diagnose
    return diagnose(str(path))


def test_fires__overfitting_real_whisper(real_dir):
    df = _diagnose_real(real_dir / "hf_trainer_state/whisper-large-v2-japanese/trainer_state.json")
    of = df.filter(df["code"] == "OVERFITTING").to_dicts()
    assert len(of) == 1, df.select("code", "message")
    f = of[0]
    assert set(f["metrics"]) >= {"loss", "eval_loss"}
    assert f["step_start"] == 1000 and f["step_end"] == 5000  # eval_loss minimum 0.321 at step 1000


def test_fires__overfitting_real_trainer_state_viz(real_dir):
    df = _diagnose_real(real_dir / "hf_trainer_state/aigoncharov-trainer_state_viz/trainer_state.json")
    of = df.filter(df["code"] == "OVERFITTING").to_dicts()
    assert len(of) == 1, df.select("code", "message")
    f = of[0]
    assert "eval_g0_loss" in f["metrics"] and "loss" in f["metrics"]
    assert f["step_start"] <= 1203  # every eval loss bottoms at epoch 1-2 (steps 401-802)


@pytest.mark.parametrize("path", ["hf_trainer_state/tinyllama-finetune/trainer_state.json",
                                  "hf_trainer_state/spam-detection-distilbert/checkpoint-500/trainer_state.json"])
def test_quiet__overfitting_real_healthy_finetunes(real_dir, path):
    df = _diagnose_real(real_dir / path)
    assert df.filter(df["code"] == "OVERFITTING").height == 0, df.select("code", "message")


def _ctx_with_inferred_roles(scenario, seed, user_split_none=()):
    """RunContext of a generated run whose roles come from engine.infer (names only),
    optionally with some metrics marked as set by a user mapping (inferred False)."""
    import polars as pl

    from engine.diagnose import analyse_frames
    from engine.rules.base import RunContext
    from tests.rules.helpers import gen
    run = gen.make_run(scenario, seed)
    t = analyse_frames(gen.curves_frame(run))
    user = pl.col("metric").is_in(list(user_split_none))
    metrics = t["metrics"].with_columns(
        pl.when(user).then(False).otherwise(pl.col("inferred")).alias("inferred"),
        pl.when(user).then(pl.lit("none")).otherwise(pl.col("split")).alias("split"))
    return RunContext(run.name, features=t["features"], segments=t["segments"], spikes=t["spikes"],
                      metrics=metrics, events=t["events"])


def test_fires__hf_loss_pairs_with_eval_loss_by_name_alone():
    """HF logs the train loss as plain ``loss``: with no role table, the pair still forms
    (engine.infer.train_by_partner) and OVERFITTING fires on it."""
    from engine.infer import infer
    from engine.rules import run_rules
    from engine.rules._cross import train_val_pairs
    ctx = _ctx_with_inferred_roles("overfitting", 0)
    assert infer("loss").split == "none"  # name by name, plain `loss` has no split...
    assert ctx.role("loss")["split"] == "train"  # ...across the run (infer_run) it is train
    assert ("loss", "eval_loss") in {(p.train, p.val) for p in train_val_pairs(ctx)}
    assert any(f.code == "OVERFITTING" and {"loss", "eval_loss"} <= set(f.metrics) for f in run_rules(ctx))


def test_quiet__user_mapped_unsplit_loss_is_not_paired():
    from engine.rules._cross import train_val_pairs
    ctx = _ctx_with_inferred_roles("overfitting", 0, user_split_none=("loss",))
    assert "loss" not in {p.train for p in train_val_pairs(ctx)}
