"""Diagnosis of every metric-holding file or folder of the real corpus (../shared/data/real).

One test per source: ``engine.diagnose.diagnose`` runs without error and the findings
match what SOURCES.md says the curves show (overfitting with its best step, divergence,
the NaN onset, reward collapse with KL growth, plateaus, healthy runs without warnings).
Metadata-only files (hparams.yaml, config.yaml, wandb-summary.json, console output without
metrics) are read as part of their run folder or not at all.

Where a per-objective rule (owned elsewhere) still disagrees with SOURCES.md the check is
an xfail naming the code, never a silent pass: the cross-objective codes are held to it
strictly.
"""

from __future__ import annotations

import functools
import json

import pytest

CROSS = {"OVERFITTING", "GENERALIZATION_GAP", "OBJECTIVE_IMBALANCE", "REWARD_HACKING", "REWARD_COLLAPSE",
         "CORRELATED_SPIKES", "GRAD_NORM_INSTABILITY"}
ALARM = ("warning", "critical")

MODDED = [
    "text_logs/modded-nanogpt/track_1_short/2024-06-06_AdamW/f66d43d7-e449-4029-8adf-e8537bab49ea.log",
    "text_logs/modded-nanogpt/track_1_short/2024-10-13_llmc/main.log",
    "text_logs/modded-nanogpt/track_1_short/2024-10-10_Muon/eb5659d0-fb6a-49e5-a311-f1f89412f726.txt",
    "text_logs/modded-nanogpt/track_1_short/2024-10-20_ScaleUp1B/c0078066-c8c9-49c8-868a-ff4d4f32e615.txt",
    "text_logs/modded-nanogpt/track_1_short/2024-10-20_ScaleUp1B/87bd51fd-6203-4c88-b3aa-8a849a6a83ca.txt",
    "text_logs/modded-nanogpt/track_1_short/2024-10-29_Optimizers/8bfe4e35-c3fc-4b70-a984-3be937b71ff3.txt",
    "text_logs/modded-nanogpt/track_1_short/2024-10-29_Optimizers/95a9fd44-7c13-49c7-b324-3e7d9e23a499.txt",
    "text_logs/modded-nanogpt/track_2_medium/2025-01-18/main.log",
    "text_logs/modded-nanogpt/track_3_optimization/results/1bd8db7a-f3a3-4195-856d-cab7e0816443.txt",
    "text_logs/modded-nanogpt/track_1_short/2026-07-17_FP8DownProjection/this_pr/11cb620c-daaf-4e85-83fc-258a5eb7ba09.txt",
]


@functools.lru_cache(maxsize=None)
def _diagnosed(root: str, rel: str):
    from engine.diagnose import diagnose
    return diagnose(f"{root}/{rel}")


def findings(real_dir, rel):
    df = _diagnosed(str(real_dir), rel)
    assert df.height > 0, f"{rel}: no finding at all (not even HEALTHY)"
    return df.to_dicts()


def of(rows, code, run=None):
    return [r for r in rows if r["code"] == code and (run is None or r["run"] == run)]


def alarms(rows, run=None):
    return [r for r in rows if r["severity"] in ALARM and (run is None or r["run"] == run)]


def no_alarm_or_xfail(rows, what, run=None):
    """No warning/critical. Cross codes fail outright; per-objective ones are an xfail
    that names them (their rules are owned elsewhere)."""
    bad = alarms(rows, run)
    cross = [r for r in bad if r["code"] in CROSS]
    assert not cross, f"{what}: cross-objective alarms {[(r['code'], r['step_start']) for r in cross]}"
    if bad:
        pytest.xfail(f"{what}: per-objective alarms on a healthy run: "
                     f"{sorted({(r['code'], r['severity']) for r in bad})}")


def only_run(rows):
    runs = {r["run"] for r in rows}
    assert len(runs) == 1, runs
    return rows


# ---------------------------------------------------------------- overfitting (train vs held-out)

@pytest.mark.parametrize("rel,metrics,best,end,tol", [
    # every eval loss bottoms at epoch 1 (eval_g0_loss 1.114 at step 401), then climbs
    ("hf_trainer_state/aigoncharov-trainer_state_viz/trainer_state.json", {"loss", "eval_g0_loss"}, 401, 12030, 0),
    # eval_loss minimum 0.321 at step 1000, rises to 0.420 at step 5000
    ("hf_trainer_state/whisper-large-v2-japanese/trainer_state.json", {"loss", "eval_loss"}, 1000, 5000, 0),
    # val loss bottoms at 0.275 at epoch 4, +88% by epoch 19
    ("tensorboard/keras-tensorboard-tutorial/imdb-model-1690485351", {"validation/epoch_loss"}, 4, 19, 0),
    # milder: val minimum 0.814 at epoch 8, then a noisy rise to 0.879
    ("tensorboard/keras-tensorboard-tutorial/mod1-reuters-1690485395", {"validation/epoch_loss"}, 8, 19, 0),
    # CNN: validation_loss bottoms at epoch 4 (0.743), 0.789 at epoch 9
    ("mlflow/aprendizaje-profundo-meli2019/mlruns/2/6b4cd1fe891a4fea9d2ce37bfd9f028a",
     {"train_loss", "validation_loss"}, 4, 9, 0),
])
def test_overfitting_with_best_step(real_dir, rel, metrics, best, end, tol):
    rows = only_run(findings(real_dir, rel))
    ov = of(rows, "OVERFITTING")
    assert len(ov) == 1, [(r["code"], r["metrics"]) for r in rows]
    f = ov[0]
    assert metrics <= set(f["metrics"]), f["metrics"]
    assert abs(f["step_start"] - best) <= tol and f["step_end"] == end, (f["step_start"], f["step_end"])
    assert f["severity"] == "warning" and str(best) in f["message"].replace(",", "")


def test_trainer_state_viz_every_eval_set_overfits(real_dir):
    f = of(findings(real_dir, "hf_trainer_state/aigoncharov-trainer_state_viz/trainer_state.json"), "OVERFITTING")[0]
    assert {f"eval_g{i}_loss" for i in range(6)} <= set(f["metrics"])  # each eval set pairs with the train loss


@pytest.mark.parametrize("rel", [
    "hf_trainer_state/tinyllama-finetune/trainer_state.json",  # eval_loss falls monotonically
    "hf_trainer_state/gemma3-1b-instruct-sft/trainer_state.json",  # eval_loss falls steadily, no overfitting
    "hf_trainer_state/roberta-lora-textcls-subro608/checkpoint-2400/trainer_state.json",  # flat, not rising
    "hf_trainer_state/trocr-cer-rg321/checkpoint-1000/trainer_state.json",  # still improving
    "hf_trainer_state/spam-detection-distilbert/checkpoint-500/trainer_state.json",
    "mlflow/aprendizaje-profundo-meli2019/mlruns/2/eaa72819a13140e3a591621ee34415d7",  # LSTM still improving
    "text_logs/build-nanogpt-agndm/log_2.5_epoch_full/log.txt",  # gap grows slowly: no real overfitting
    "text_logs/build-nanogpt-agndm/log_half_dataset/log.txt",
    "lightning_csv/slm-training-wikitext103/lightning_logs/version_0/metrics.csv",
])
def test_no_overfitting_where_held_out_keeps_improving(real_dir, rel):
    rows = findings(real_dir, rel)
    assert not of(rows, "OVERFITTING"), [(r["metrics"], r["step_start"]) for r in of(rows, "OVERFITTING")]
    assert not [r for r in rows if r["severity"] == "critical"]


def test_tinyllama_healthy_and_converging(real_dir):
    rows = only_run(findings(real_dir, "hf_trainer_state/tinyllama-finetune/trainer_state.json"))
    assert not alarms(rows), [(r["code"], r["severity"]) for r in alarms(rows)]
    assert of(rows, "HEALTHY") or of(rows, "CONVERGED")


def test_leukemia_csv_chance_level_models_are_not_overfitting(real_dir):
    """VGG16 and SqueezeNet sit at chance (val accuracy flat at its first value): not
    overfitting; MobileNetV2 barely learns: underfitting."""
    rows = findings(real_dir, "plain_csv/core-collapse-leukemia-cnns/training_metrics.csv")
    assert len({r["run"] for r in rows}) == 13
    for run in ("VGG16", "SqueezeNet", "LeNet", "EfficientNetB0"):
        assert not of(rows, "OVERFITTING", run), run
    assert of(rows, "UNDERFITTING", "MobileNetV2")


@pytest.mark.xfail(reason="DenseNet121 val loss (min 0.496 at epoch 5, 0.832 at 10) is too noisy on 10 points "
                          "(one 3.93 outlier at epoch 2): the rise is 0.3 of the estimated noise, below OVERFITTING's bar",
                   strict=False)
def test_leukemia_densenet_overfits(real_dir):
    rows = findings(real_dir, "plain_csv/core-collapse-leukemia-cnns/training_metrics.csv")
    assert of(rows, "OVERFITTING", "DenseNet121")


# ---------------------------------------------------------------- divergence, non-finite, plateaus

def test_qlora_diverges_to_ln_32000(real_dir):
    rows = only_run(findings(real_dir, "hf_trainer_state/qlora-fine-tune-poludmik/trainer_state.json"))
    div = of(rows, "DIVERGENCE")
    assert div, [(r["code"], r["severity"]) for r in rows]
    ev = json.loads(div[0]["evidence"])
    assert div[0]["severity"] == "critical" and div[0]["step_start"] <= 2 and ev["flat_at_ln"] == 32000


def test_nanogpt_nan_at_iter_425(real_dir):
    rows = only_run(findings(real_dir, "text_logs/nanogpt-chenzihua-nan/train.log"))
    nf = of(rows, "NONFINITE")
    assert nf and nf[0]["step_start"] == 425 and nf[0]["severity"] == "critical" and "loss" in nf[0]["metrics"]


def test_kevin_plateau_from_step_0(real_dir):
    rows = only_run(findings(real_dir, "hf_trainer_state/kevin-token-compressor-plateau/trainer_state.json"))
    p = of(rows, "PLATEAU")
    assert p and p[0]["step_start"] <= 10 and p[0]["step_end"] == 1000  # first logged step is 10


def test_lightning_version_7_not_learning(real_dir):
    rows = only_run(findings(real_dir, "lightning_csv/slm-training-wikitext103/lightning_logs/version_7/metrics.csv"))
    stuck = [r for r in of(rows, "PLATEAU") + of(rows, "UNDERFITTING") if "train_loss_step" in r["metrics"]]
    assert stuck and min(r["step_start"] for r in stuck) <= 49 and not of(rows, "HEALTHY")


def test_lion_lr_too_high_sits_at_ln2(real_dir):
    rows = findings(real_dir, "wandb/lion-imdb-verysimpletransformer/wandb/run-20230329_045808-2brlp5wd/run-2brlp5wd.wandb")
    assert [r for r in of(rows, "PLATEAU") if "train_loss_local" in r["metrics"]]


def test_toy_ppo_no_learning_signal(real_dir):
    for rel in ("rlhf/toy-ppo-rlhf-systems-kit/runs/run_20250828_211717/tb",
                "rlhf/toy-ppo-rlhf-systems-kit/runs/run_20250828_211717/logs/train.jsonl"):
        rows = findings(real_dir, rel)
        assert alarms(rows) and not of(rows, "HEALTHY"), rel


# ---------------------------------------------------------------- RL

def test_grpo_reward_collapse_with_kl_growth(real_dir):
    rows = only_run(findings(real_dir, "rlhf/grpo-chaos-economy/trainer_state.json"))
    rc = of(rows, "REWARD_COLLAPSE")
    assert len(rc) == 1
    f = rc[0]
    assert {"reward", "kl"} <= set(f["metrics"]) and f["severity"] == "warning"
    assert 75 <= f["step_start"] <= 125 and f["step_end"] == 200  # reward peaks mid-run (1.47 at step 85)
    assert not of(rows, "HEALTHY")


def test_dpo_textbook_run_is_quiet(real_dir):
    rows = only_run(findings(real_dir, "rlhf/dpo-llm-recovery-seangormann/checkpoint-1000/trainer_state.json"))
    assert not alarms(rows) and not of(rows, "REWARD_HACKING") and not of(rows, "REWARD_COLLAPSE")


# ---------------------------------------------------------------- healthy runs

@pytest.mark.parametrize("rel", MODDED, ids=[m.split("/")[-2] + "/" + m.split("/")[-1][:8] for m in MODDED])
def test_modded_nanogpt_records_are_healthy(real_dir, rel):
    rows = findings(real_dir, rel)
    assert not [r for r in rows if r["severity"] == "critical"]
    assert not of(rows, "OVERFITTING") and not of(rows, "GRAD_NORM_INSTABILITY") and not of(rows, "CORRELATED_SPIKES")
    no_alarm_or_xfail(rows, rel)


@pytest.mark.parametrize("rel", [
    MODDED[0], MODDED[1], MODDED[5], MODDED[6],  # data-order spikes at steps 919/947/1760/3194 and the like
    "hf_trainer_state/baize-tcm-llm-sft/trainer_state.json",
    "hf_trainer_state/geollm-ptuning-memorize/trainer_state.json",
    "text_logs/build-nanogpt-agndm/log_2.5_epoch_full/log.txt",
    "hf_trainer_state/whisper-large-v2-japanese/trainer_state.json",  # memorised loss logged as 0.0001/0.0002
])
def test_fast_recovering_single_step_spikes_are_not_alarms(real_dir, rel):
    """Single-step spikes that are back within a step or two and rare are normal in LLM
    training: LOSS_SPIKE reports them as info (or not at all on a quantised curve)."""
    rows = findings(real_dir, rel)
    bad = [(r["step_start"], r["severity"]) for r in of(rows, "LOSS_SPIKE") if r["severity"] in ALARM]
    assert not bad, bad


@pytest.mark.parametrize("rel", [
    "hf_trainer_state/metamath-sft/trainer_state.json",  # noisy, no trend worth reporting
    "hf_trainer_state/spam-detection-distilbert/checkpoint-500/trainer_state.json",
    "text_logs/build-nanogpt-agndm/log_half_dataset/log.txt",
    "text_logs/build-nanogpt-agndm/log_no_warmup/log.txt",  # worse than the baseline, but healthy alone
    "text_logs/build-nanogpt-agndm/log_bigger/nanogpt-bigger-1818620.out",
    "lightning_csv/slm-training-wikitext103/lightning_logs/version_0/metrics.csv",
    "rlhf/reward-model-tlab-alignment/wandb/run-20241216_135818-xmayk974/files/output.log",
])
def test_healthy_runs_raise_no_alarm(real_dir, rel):
    no_alarm_or_xfail(findings(real_dir, rel), rel)


# ---------------------------------------------------------------- every other source: no error

@pytest.mark.parametrize("rel", [
    "hf_trainer_state/jaong-cpt-checkpoint/trainer_state.json",
    "hf_trainer_state/baize-tcm-llm-sft/trainer_state.json",
    "hf_trainer_state/mistral-v0.2-translator/checkpoint-5500/trainer_state.json",
    "hf_trainer_state/geollm-ptuning-memorize/trainer_state.json",
    "hf_trainer_state/hallucination-detection-distilbert/trainer_state.json",
    "hf_trainer_state/serial-lain-ai-100epochs/trainer_state.json",
    "text_logs/gpt2-124m-shakespeare-memorize/train.log",
    "tensorboard/lightning-lstm-textgen/lightning_logs/version_0",
    "tensorboard/hf-trainer-serial-lain-ai/runs/Jun29_06-31-19_6a29ce405cda",
    "mlflow/swahili-stt-keras/mlruns/1/ed05f9cd599442fe9a0c9222184710b8",
    "wandb/stanford-alpaca-kaikai/wandb/run-20231102_033502-v7i3k2p0/run-v7i3k2p0.wandb",
    "wandb/lion-imdb-verysimpletransformer/wandb/run-20230329_123313-6a0em794/run-6a0em794.wandb",
    "lightning_csv/slm-training-wikitext103/lightning_logs/version_5/metrics.csv",
])
def test_diagnosed_without_error_and_no_false_cross_alarm(real_dir, rel):
    """Runs without validation data, memorisation runs and the resumed run: no error, no
    critical, and no train-vs-held-out finding where there is no held-out curve."""
    rows = findings(real_dir, rel)
    assert not [r for r in rows if r["severity"] == "critical"], rel
    assert not of(rows, "REWARD_HACKING") and not of(rows, "REWARD_COLLAPSE")
    if "eval" not in " ".join(m for r in rows for m in r["metrics"]) and "val" not in " ".join(
            m for r in rows for m in r["metrics"]):
        assert not of(rows, "OVERFITTING") and not of(rows, "GENERALIZATION_GAP")
