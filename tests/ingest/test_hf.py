"""Hugging Face trainer_state.json importer: real files from ../shared/data/real and
small synthetic inputs for the edge cases (NaN literals, truncation, missing steps)."""

import json
import math
import pickle

import polars as pl
import pytest

from engine.errors import IngestError
from engine.ingest import hf
from engine.ingest.base import PARSED_SCHEMA


def frame(parsed):
    return pl.from_arrow(parsed.table)


def value_at(df, metric, step):
    sel = df.filter((pl.col("metric") == metric) & (pl.col("step") == step))["value"].to_list()
    assert len(sel) == 1, (metric, step, sel)
    return sel[0]


# (relative path, run name, rows, metric count, {metric: points})
REAL = [
    ("hf_trainer_state/aigoncharov-trainer_state_viz/trainer_state.json", "aigoncharov-trainer_state_viz",
     1236, 34, {"loss": 30, "eval_g0_loss": 31, "eval_g5_accuracy": 31, "epoch": 216}),
    ("hf_trainer_state/baize-tcm-llm-sft/trainer_state.json", "baize-tcm-llm-sft",
     26748, 4, {"loss": 6687, "grad_norm": 6687, "learning_rate": 6687, "epoch": 6687}),
    ("hf_trainer_state/gemma3-1b-instruct-sft/trainer_state.json", "gemma3-1b-instruct-sft",
     395, 8, {"loss": 75, "eval_loss": 19, "epoch": 94}),
    ("hf_trainer_state/geollm-ptuning-memorize/trainer_state.json", "geollm-ptuning-memorize", 900, 3, {"loss": 300}),
    ("hf_trainer_state/hallucination-detection-distilbert/trainer_state.json", "hallucination-detection-distilbert",
     105, 11, {"loss": 26, "eval_f1": 3}),
    ("hf_trainer_state/jaong-cpt-checkpoint/trainer_state.json", "jaong-cpt-checkpoint",
     130, 12, {"loss": 10, "eval_loss": 10, "eval_rouge-1": 10, "epoch": 20}),
    ("hf_trainer_state/kevin-token-compressor-plateau/trainer_state.json", "kevin-token-compressor-plateau",
     400, 4, {"loss": 100}),
    ("hf_trainer_state/metamath-sft/trainer_state.json", "metamath-sft", 512, 4, {"loss": 128}),
    ("hf_trainer_state/mistral-v0.2-translator/checkpoint-5500/trainer_state.json", "mistral-v0.2-translator",
     2200, 4, {"loss": 550}),
    ("hf_trainer_state/qlora-fine-tune-poludmik/trainer_state.json", "qlora-fine-tune-poludmik", 30, 3, {"loss": 10}),
    ("hf_trainer_state/roberta-lora-textcls-subro608/checkpoint-2400/trainer_state.json",
     "roberta-lora-textcls-subro608", 240, 9, {"loss": 24, "eval_accuracy": 24}),
    ("hf_trainer_state/serial-lain-ai-100epochs/trainer_state.json", "serial-lain-ai-100epochs", 18, 3, {"loss": 6}),
    ("hf_trainer_state/spam-detection-distilbert/checkpoint-500/trainer_state.json", "spam-detection-distilbert",
     45, 8, {"loss": 5, "eval_accuracy": 5}),
    ("hf_trainer_state/tinyllama-finetune/trainer_state.json", "tinyllama-finetune", 1214, 12,
     {"loss": 186, "mean_token_accuracy": 186, "eval_loss": 14}),
    ("hf_trainer_state/trocr-cer-rg321/checkpoint-1000/trainer_state.json", "trocr-cer-rg321", 1530, 8,
     {"loss": 500, "eval_cer": 5}),
    ("hf_trainer_state/whisper-large-v2-japanese/trainer_state.json", "whisper-large-v2-japanese", 630, 8,
     {"loss": 200, "eval_loss": 5, "eval_wer": 5, "epoch": 205}),
    ("rlhf/dpo-llm-recovery-seangormann/checkpoint-1000/trainer_state.json", "dpo-llm-recovery-seangormann",
     240, 12, {"rewards/chosen": 20, "rewards/margins": 20, "logps/rejected": 20}),
    ("rlhf/grpo-chaos-economy/trainer_state.json", "grpo-chaos-economy", 1280, 32,
     {"reward": 40, "kl": 40, "completions/clipped_ratio": 40, "rewards/pnl_reward_fn/mean": 40}),
]


@pytest.mark.parametrize("rel,run,rows,n_metrics,counts", REAL, ids=[r[1] for r in REAL])
def test_real_counts(real_dir, rel, run, rows, n_metrics, counts):
    path = real_dir / rel
    assert hf.sniff(path)
    parsed = hf.read(path)
    assert parsed.table.schema == PARSED_SCHEMA
    assert parsed.format == "hf_trainer_state"
    assert parsed.runs == [run]
    assert parsed.table.num_rows == rows
    df = frame(parsed)
    assert df["metric"].n_unique() == n_metrics
    got = dict(df.group_by("metric").len().iter_rows())
    for metric, n in counts.items():
        assert got[metric] == n, (metric, got.get(metric))
    assert df["wall_time"].null_count() == rows  # trainer_state.json has no wall time
    assert len(parsed.content_hash) == 64


def test_real_values_and_attributes(real_dir):
    p = hf.read(real_dir / "hf_trainer_state/aigoncharov-trainer_state_viz/trainer_state.json")
    df = frame(p)
    g0 = df.filter(pl.col("metric") == "eval_g0_loss")
    best = g0.sort("value").row(0, named=True)
    assert best["step"] == 401 and best["value"] == pytest.approx(1.113751, abs=1e-6)
    assert value_at(df, "eval_g0_accuracy", 0) == pytest.approx(0.7082294264339152, rel=1e-15)
    assert value_at(df, "eval_g0_accuracy", 12030) == pytest.approx(0.593516, abs=1e-6)
    assert value_at(df, "loss", 401) == 1.1074 and value_at(df, "loss", 12030) == 0.0549
    # six eval sets at one step: six epoch points at that step (same value), not a conflict
    assert df.filter((pl.col("metric") == "epoch") & (pl.col("step") == 401)).height == 7
    a = p.attributes["aigoncharov-trainer_state_viz"]
    assert a["global_step"] == 12030 and a["max_steps"] == 12030 and a["logging_steps"] == 500
    assert a["best_metric"] is None and "log_history" not in a and a["log_history_entries"] == 216

    p = hf.read(real_dir / "hf_trainer_state/whisper-large-v2-japanese/trainer_state.json")
    df = frame(p)
    ev = df.filter(pl.col("metric") == "eval_loss")
    assert ev["step"].to_list() == [1000, 2000, 3000, 4000, 5000]
    assert ev["value"][0] == pytest.approx(0.320998, abs=1e-6) and ev["value"][-1] == pytest.approx(0.420015, abs=1e-6)
    a = p.attributes["whisper-large-v2-japanese"]
    assert a["best_model_checkpoint"].endswith("checkpoint-3000")
    # the final summary entry is attributes, not curves
    assert "train_runtime" not in set(df["metric"]) and "train_loss" not in set(df["metric"])
    assert a["train_summary"]["train_loss"] == pytest.approx(0.0189034, abs=1e-7)
    assert a["train_summary"]["train_runtime"] == 77350.9963 and a["train_summary"]["step"] == 5000
    assert set(a["train_summary"]) >= {"train_runtime", "total_flos", "train_samples_per_second"}

    df = frame(hf.read(real_dir / "hf_trainer_state/qlora-fine-tune-poludmik/trainer_state.json"))
    loss = df.filter(pl.col("metric") == "loss")
    assert loss["step"].to_list() == list(range(1, 11))
    assert loss["value"][:2].to_list() == [1.637, 11.8069]
    assert loss["value"][4:].to_list() == [10.3735] * 6  # ln(32000) collapse
    assert set(df.filter(pl.col("metric") == "learning_rate")["value"]) == {5.0}

    df = frame(hf.read(real_dir / "rlhf/dpo-llm-recovery-seangormann/checkpoint-1000/trainer_state.json"))
    m = df.filter(pl.col("metric") == "rewards/margins")
    assert m["step"].to_list() == list(range(50, 1001, 50))
    assert m["value"][0] == pytest.approx(0.050102, abs=1e-6) and m["value"][-1] == pytest.approx(4.374285, abs=1e-6)

    df = frame(hf.read(real_dir / "hf_trainer_state/baize-tcm-llm-sft/trainer_state.json"))
    gn = df.filter(pl.col("metric") == "grad_norm").sort("value").row(-1, named=True)
    assert gn["step"] == 3202 and gn["value"] == pytest.approx(2.2376, abs=1e-4)
    lo = df.filter(pl.col("metric") == "loss").sort("value").row(0, named=True)
    assert lo["step"] == 6363 and lo["value"] == 0.0467


def test_real_entries_without_step_are_counted(real_dir):
    p = hf.read(real_dir / "hf_trainer_state/jaong-cpt-checkpoint/trainer_state.json")
    df = frame(p)
    assert not any(m.startswith("predict_") for m in df["metric"].unique())
    skipped = p.attributes["jaong-cpt-checkpoint"]["ingest_skipped"]
    assert skipped["entries_without_step"] == 10
    assert "predict_loss" in skipped["keys_without_step"]
    ev = df.filter(pl.col("metric") == "eval_loss").sort("value").row(0, named=True)
    assert ev["step"] == 3294 and ev["value"] == pytest.approx(0.4853, abs=1e-4)
    assert value_at(df, "eval_loss", 5490) == pytest.approx(0.4917, abs=1e-4)


def test_checkpoint_folder_takes_parent_name(real_dir):
    p = hf.read(real_dir / "hf_trainer_state/mistral-v0.2-translator/checkpoint-5500/trainer_state.json")
    assert p.runs == ["mistral-v0.2-translator"]
    assert p.attributes["mistral-v0.2-translator"]["max_steps"] == 8660
    assert hf.read(real_dir / "hf_trainer_state/metamath-sft/trainer_state.json", run="x").runs == ["x"]


# ---- synthetic edge cases -------------------------------------------------------------

def write_state(tmp_path, history, name="trainer_state.json", **top):
    d = tmp_path / "myrun"
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(json.dumps({"global_step": 3, "log_history": history, **top}, indent=2))
    return p


def test_nan_and_infinity_literals_are_kept(tmp_path):
    p = write_state(tmp_path, [
        {"loss": 1.0, "grad_norm": float("nan"), "step": 1, "epoch": 0.1},
        {"loss": float("inf"), "grad_norm": float("-inf"), "step": 2, "epoch": 0.2},
        {"loss": "NaN", "grad_norm": "Infinity", "step": 3, "epoch": 0.3},
    ])
    assert "NaN" in p.read_text() and "-Infinity" in p.read_text()
    df = frame(hf.read(p))
    assert df.height == 9
    gn = df.filter(pl.col("metric") == "grad_norm")["value"].to_list()
    assert math.isnan(gn[0]) and gn[1] == -math.inf and gn[2] == math.inf
    loss = df.filter(pl.col("metric") == "loss")["value"].to_list()
    assert loss[0] == 1.0 and loss[1] == math.inf and math.isnan(loss[2])
    assert hf.read(p).runs == ["myrun"]


def test_source_order_and_duplicates_kept(tmp_path):
    p = write_state(tmp_path, [
        {"loss": 3.0, "step": 10, "epoch": 1.0},
        {"eval_loss": 2.5, "step": 10, "epoch": 1.0},
        {"loss": 2.0, "step": 5, "epoch": 0.5},  # out of order: kept as logged
        {"loss": 1.5, "step": 5, "epoch": 0.5},  # repeated: kept, the store decides
    ])
    df = frame(hf.read(p))
    assert df.select("metric", "step", "value").rows() == [
        ("loss", 10, 3.0), ("epoch", 10, 1.0), ("eval_loss", 10, 2.5), ("epoch", 10, 1.0),
        ("loss", 5, 2.0), ("epoch", 5, 0.5), ("loss", 5, 1.5), ("epoch", 5, 0.5)]


def test_string_labels_skipped_but_mixed_key_is_an_error(tmp_path):
    p = write_state(tmp_path, [
        {"loss": 1.0, "step": 1, "phase": "warmup", "flag": True, "extra": {"a": 1}},
        {"loss": 0.9, "step": 2, "phase": "main", "flag": False},
    ])
    parsed = hf.read(p)
    assert set(frame(parsed)["metric"]) == {"loss"}
    assert parsed.attributes["myrun"]["ingest_skipped"]["non_numeric"] == {"phase": 2, "flag": 2, "extra": 1}

    p = write_state(tmp_path, [{"loss": 1.0, "step": 1}, {"loss": 1.0, "step": 2}, {"loss": "oops", "step": 3}])
    with pytest.raises(IngestError) as e:
        hf.read(p)
    msg = str(e.value)
    assert "trainer_state.json" in msg and "entry 2" in msg and "'oops'" in msg and "'loss'" in msg


def test_bad_step_is_an_error(tmp_path):
    p = write_state(tmp_path, [{"loss": 1.0, "step": 1}, {"loss": 1.0, "step": 2.5}])
    with pytest.raises(IngestError, match=r"entry 1 has step 2\.5; expected an integer step"):
        hf.read(p)
    p = write_state(tmp_path, [{"loss": 1.0, "step": 100.0}])
    assert frame(hf.read(p))["step"].to_list() == [100]
    p = write_state(tmp_path, [{"loss": 1.0, "step": "7"}])
    with pytest.raises(IngestError, match="entry 0 has step '7'"):
        hf.read(p)


def test_truncated_json_names_the_byte(tmp_path):
    full = write_state(tmp_path, [{"loss": 1.0 + i, "step": i} for i in range(50)])
    data = full.read_bytes()
    for cut in (len(data) // 2, len(data) - 3, data.index(b'"loss"') + 3):
        p = tmp_path / "cut.json"
        p.write_bytes(data[:cut])
        with pytest.raises(IngestError) as e:
            hf.read(p)
        msg = str(e.value)
        assert f"JSON ends at byte {cut:,} inside log_history (truncated?)" in msg, (cut, msg)
        assert "cut.json" in msg and e.value.line == data[:cut].rstrip().count(b"\n") + 1


def test_corrupt_json_and_wrong_shape(tmp_path):
    p = tmp_path / "trainer_state.json"
    p.write_text('{"log_history": [{"loss": 1.0, "step": 1}},\n "x": 1}')
    with pytest.raises(IngestError, match=r"invalid JSON at byte 41 .* inside log_history"):
        hf.read(p)
    p.write_text('{"global_step": 3}')
    with pytest.raises(IngestError, match="log_history"):
        hf.read(p)
    p.write_text('[1, 2]')
    with pytest.raises(IngestError):
        hf.read(p)


def test_error_pickles(tmp_path):
    p = write_state(tmp_path, [{"loss": 1.0, "step": 0.5}])
    with pytest.raises(IngestError) as e:
        hf.read(p)
    again = pickle.loads(pickle.dumps(e.value))
    assert str(again) == str(e.value) and again.path == e.value.path


def test_sniff(tmp_path):
    p = write_state(tmp_path, [{"loss": 1.0, "step": 1}])
    assert hf.sniff(p) and hf.sniff(p.parent)
    other = write_state(tmp_path, [{"loss": 1.0, "step": 1}], name="state_copy.json")
    assert hf.sniff(other)
    q = tmp_path / "other.json"
    q.write_text('{"a": [1, 2, 3]}')
    assert not hf.sniff(q) and not hf.sniff(tmp_path)
    (tmp_path / "x.csv").write_text("step,loss\n1,2\n")
    assert not hf.sniff(tmp_path / "x.csv")
    # reading a folder reads its trainer_state.json
    assert hf.read(p.parent).table.num_rows == 1
    assert hf.read(p.parent).source == str(p.parent)
