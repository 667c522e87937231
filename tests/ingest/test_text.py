"""Text-log importer: every metric-bearing text log of the real corpus, plus synthetic
Megatron lines, user patterns, restarts/resumes, and the sniffing rules."""

import math

import polars as pl
import pytest

from engine.errors import IngestError
from engine.ingest import text
from engine.ingest.base import PARSED_SCHEMA, IngestOptions

T = "text_logs/"
MODDED = T + "modded-nanogpt/track_1_short/"

# (relative path, runs, rows, {metric: points})
REAL = [
    (T + "nanogpt-chenzihua-nan/train.log", 1, 101, {"loss": 91, "train_loss": 5, "val_loss": 5}),
    (MODDED + "2024-06-06_AdamW/f66d43d7-e449-4029-8adf-e8537bab49ea.log", 1, 9612, {"train_loss": 9536, "val_loss": 76}),
    (MODDED + "2024-10-13_llmc/main.log", 1, 58760, {"train_loss": 19560, "lr": 19560, "norm": 19560, "val_loss": 80}),
    (MODDED + "2024-10-10_Muon/eb5659d0-fb6a-49e5-a311-f1f89412f726.txt", 1, 6251, {"train_loss": 6200, "val_loss": 51}),
    (MODDED + "2024-10-20_ScaleUp1B/c0078066-c8c9-49c8-868a-ff4d4f32e615.txt", 1, 15382,
     {"train_loss": 15258, "val_loss": 124}),
    (MODDED + "2024-10-20_ScaleUp1B/87bd51fd-6203-4c88-b3aa-8a849a6a83ca.txt", 1, 20508,
     {"train_loss": 20344, "val_loss": 164}),
    (MODDED + "2024-10-29_Optimizers/8bfe4e35-c3fc-4b70-a984-3be937b71ff3.txt", 1, 5142,
     {"train_loss": 5100, "val_loss": 42}),
    (MODDED + "2024-10-29_Optimizers/95a9fd44-7c13-49c7-b324-3e7d9e23a499.txt", 1, 5142,
     {"train_loss": 5100, "val_loss": 42}),
    (MODDED + "2026-07-17_FP8DownProjection/this_pr/11cb620c-daaf-4e85-83fc-258a5eb7ba09.txt", 1, 7, {"val_loss": 7}),
    (T + "modded-nanogpt/track_2_medium/2025-01-18/main.log", 1, 241, {"val_loss": 241}),
    (T + "modded-nanogpt/track_3_optimization/results/1bd8db7a-f3a3-4195-856d-cab7e0816443.txt", 20, 780,
     {"val_loss": 780}),
    (T + "build-nanogpt-agndm/log_2.5_epoch_full/log.txt", 1, 56497, {"train_loss": 56047, "val_loss": 225, "hellaswag_acc": 225}),
    (T + "build-nanogpt-agndm/log_half_dataset/log.txt", 1, 19229, {"train_loss": 19073, "val_loss": 78, "hellaswag_acc": 78}),
    (T + "build-nanogpt-agndm/log_no_warmup/log.txt", 1, 19229, {"train_loss": 19073, "val_loss": 78, "hellaswag_acc": 78}),
    (T + "build-nanogpt-agndm/log_bigger/nanogpt-bigger-1818620.out", 1, 76448,
     {"loss": 19073, "lr": 19073, "norm": 19073, "tok/sec": 19073, "validation_loss": 78, "HellaSwag_accuracy": 78}),
    ("rlhf/reward-model-tlab-alignment/wandb/run-20241216_135818-xmayk974/files/output.log", 1, 100,
     {"loss": 25, "grad_norm": 25, "learning_rate": 25, "epoch": 25}),
]


def frame(p):
    return pl.from_arrow(p.table)


def curve(df, metric, run=None):
    sel = df.filter(pl.col("metric") == metric)
    if run is not None:
        sel = sel.filter(pl.col("run") == run)
    return sel


@pytest.mark.parametrize("rel,n_runs,rows,counts", REAL, ids=[r[0].split("/")[-1][:24] for r in REAL])
def test_real_counts(real_dir, rel, n_runs, rows, counts):
    path = real_dir / rel
    assert text.sniff(path)
    p = text.read(path)
    assert p.table.schema == PARSED_SCHEMA and p.format == "text_log"
    df = frame(p)
    assert len(p.runs) == n_runs
    assert df.height == rows
    assert dict(df.group_by("metric").len().iter_rows()) == counts


def test_nanogpt_nan_at_iter_425(real_dir):
    df = frame(text.read(real_dir / (T + "nanogpt-chenzihua-nan/train.log")))
    loss = curve(df, "loss")
    assert loss.filter(pl.col("step") == 420)["value"].to_list() == [3.5023]
    after = loss.filter(pl.col("step") >= 425)
    assert after["step"].to_list() == [425, 430, 435, 440, 445, 450]
    assert all(math.isnan(v) for v in after["value"])
    assert all(math.isfinite(v) for v in loss.filter(pl.col("step") < 425)["value"])
    val = curve(df, "val_loss")
    assert val["step"].to_list() == [0, 100, 200, 300, 400]
    assert val["value"][0] == 4.2475 and val["value"][-1] == 3.3687
    assert df["run"][0] == "nanogpt-chenzihua-nan"


def test_modded_values(real_dir):
    df = frame(text.read(real_dir / MODDED / "2026-07-17_FP8DownProjection/this_pr/11cb620c-daaf-4e85-83fc-258a5eb7ba09.txt"))
    assert df.select("step", "value").rows() == [(0, 10.8311), (250, 4.4888), (500, 4.1451), (750, 3.7368),
                                                (1000, 3.4625), (1250, 3.333), (1390, 3.2775)]
    p = text.read(real_dir / MODDED / "2024-10-10_Muon/eb5659d0-fb6a-49e5-a311-f1f89412f726.txt")
    df = frame(p)
    # step_avg:nanms is a timing annotation, not a NaN curve
    assert "step_avg" not in set(df["metric"])
    assert p.attributes[p.runs[0]]["ingest_skipped"]["values_with_unit"] == {"train_time": 6251, "step_avg": 6251}
    assert curve(df, "val_loss")["value"][0] == 10.9264 and curve(df, "val_loss")["value"][-1] == 3.2785
    assert curve(df, "train_loss")["value"][0] == 10.9184
    df = frame(text.read(real_dir / MODDED / "2024-10-13_llmc/main.log"))
    assert df["run"][0] == "2024-10-13_llmc"  # "main" says nothing: the folder names the run
    norm = curve(df, "norm")
    assert norm.filter(pl.col("step") == 9025)["value"].to_list() == [2.02]
    assert norm.filter(pl.col("step") == 7435)["value"].to_list() == [1.44]
    assert curve(df, "val_loss")["value"][-1] == 3.2722 and curve(df, "lr")["value"][0] == 0.000001
    df = frame(text.read(real_dir / MODDED / "2024-10-20_ScaleUp1B/87bd51fd-6203-4c88-b3aa-8a849a6a83ca.txt"))
    low = curve(df, "train_loss").sort("value").row(0, named=True)
    assert low["step"] == 17106 and low["value"] == 0.9071
    df = frame(text.read(real_dir / T / "modded-nanogpt/track_2_medium/2025-01-18/main.log"))
    tail = curve(df, "val_loss").filter(pl.col("step") >= 57250)["value"]
    assert len(tail) == 12 and tail.min() == pytest.approx(2.9281) and tail.max() == pytest.approx(2.9287)


def test_concatenated_seeds_become_runs(real_dir):
    rel = T + "modded-nanogpt/track_3_optimization/results/1bd8db7a-f3a3-4195-856d-cab7e0816443.txt"
    p = text.read(real_dir / rel)
    df = frame(p)
    base = "1bd8db7a-f3a3-4195-856d-cab7e0816443"
    assert df["run"].unique(maintain_order=True).to_list() == [base] + [f"{base}-run{i}" for i in range(2, 21)]
    per = df.group_by("run", maintain_order=True).agg(pl.len(), pl.col("step").first().alias("s0"),
                                                      pl.col("step").last().alias("s1"), pl.col("value").last())
    assert set(per["len"]) == {39} and set(per["s0"]) == {0} and set(per["s1"]) == {3350}
    assert per["value"].min() == 3.2764 and per["value"].max() == pytest.approx(3.281, abs=1e-4)
    assert p.events == []  # restarts from scratch are runs, not resumes
    assert p.attributes[base]["segments_in_file"] == 20


def test_build_nanogpt_stepless_lines(real_dir):
    df = frame(text.read(real_dir / T / "build-nanogpt-agndm/log_bigger/nanogpt-bigger-1818620.out"))
    val = curve(df, "validation_loss")
    assert val["step"].to_list()[:3] == [0, 250, 500] and val["step"][-1] == 19072
    assert val["value"][0] == 11.0864 and val["value"][-1] == 2.9147
    hs = curve(df, "HellaSwag_accuracy")
    assert hs["value"][0] == 0.2498 and hs["value"][-1] == 0.3355
    assert df.head(3).select("metric", "step", "value").rows() == [
        ("validation_loss", 0, 11.0864), ("HellaSwag_accuracy", 0, 0.2498), ("loss", 0, 11.087302)]
    assert curve(df, "norm")["value"][0] == 23.1795 and curve(df, "lr")["value"][0] == 8.3916e-07
    df = frame(text.read(real_dir / T / "build-nanogpt-agndm/log_2.5_epoch_full/log.txt"))
    assert curve(df, "val_loss")["value"][-1] == 2.9752 and curve(df, "val_loss")["step"][-1] == 56000
    low = curve(df, "train_loss").sort("value").row(0, named=True)
    assert low["step"] == 43055 and low["value"] == pytest.approx(2.6829, abs=1e-4)


def test_hf_stdout_dicts(real_dir):
    p = text.read(real_dir / "rlhf/reward-model-tlab-alignment/wandb/run-20241216_135818-xmayk974/files/output.log")
    df = frame(p)
    loss = curve(df, "loss")
    assert loss["step"].to_list() == list(range(1, 26))  # ordinal of the logged dict
    assert loss["value"][0] == 0.6914 and loss["value"][-1] == 0.0952
    assert curve(df, "epoch")["value"][-1] == 0.38
    assert curve(df, "learning_rate")["value"][-1] == pytest.approx(1.3157894736842104e-08, rel=1e-15)
    s = p.attributes[p.runs[0]]["train_summary"]
    assert s["train_runtime"] == 1594.9832 and s["train_loss"] == pytest.approx(0.26900792780675387)


def test_sniff_rejects_logs_without_metric_lines(real_dir, tmp_path):
    assert not text.sniff(real_dir / "text_logs/gpt2-124m-shakespeare-memorize/train.log")  # a TSV: table.py
    assert not text.sniff(real_dir / "wandb/lion-imdb-verysimpletransformer/wandb/run-20230329_045808-2brlp5wd/files/output.log")
    assert not text.sniff(real_dir / "plain_csv/core-collapse-leukemia-cnns/training_metrics.csv")
    p = tmp_path / "notes.txt"
    p.write_text("step 1: we tried\nthe step 2 plan\nnumber of parameters: 12\nstep:3 foo:bar\n")
    assert not text.sniff(p)
    with pytest.raises(IngestError, match="no metric line found"):
        text.read(p)


# ---- synthetic -------------------------------------------------------------------------

MEGATRON = (
    " iteration      100/    1000 | consumed samples:         3200 | elapsed time per iteration (ms): 812.3 | "
    "learning rate: 1.500E-04 | global batch size:    32 | lm loss: 7.104512E+00 | loss scale: 65536.0 | "
    "grad norm: 2.345 | number of skipped iterations:   0 | number of nan iterations:   0 |\n")


def test_megatron_lines(tmp_path):
    p = tmp_path / "megatron_gpt.log"
    body = ["using world size: 8", "> building GPT model ..."]
    for it in (100, 200, 300):
        body.append(MEGATRON.replace("100/", f"{it}/").replace("7.104512E+00", f"{7.0 - it / 1000:.6E}").rstrip("\n"))
    body.append(" iteration      400/    1000 | lm loss: nan | grad norm: inf |")
    p.write_text("\n".join(body) + "\n")
    assert text.sniff(p)
    df = frame(text.read(p))
    lm = curve(df, "lm_loss")
    assert lm["step"].to_list() == [100, 200, 300, 400]
    assert lm["value"][:3].to_list() == [6.9, 6.8, 6.7] and math.isnan(lm["value"][3])
    assert curve(df, "learning_rate")["value"][0] == 1.5e-4
    assert curve(df, "grad_norm")["value"].to_list() == [2.345] * 3 + [math.inf]
    assert curve(df, "elapsed_time_per_iteration_(ms)")["value"][0] == 812.3
    assert set(df["run"]) == {"megatron_gpt"}


def test_script_at_top_and_carriage_returns(tmp_path):
    script = "\n".join([
        "import torch",
        "for step in range(10):",
        "    print0(f'step:{step}/{n} val_loss:{v:.4f}')",
        "    print(f\"iter {it}: loss {loss:.4f}, time {dt:.2f}ms\")",
        "    x = {'loss': 1}",
    ])
    log = script + "\n" + "\n".join(f"step:{s}/3 train_loss:{5 - s}.5 train_time:{s * 10}ms" for s in range(4))
    log += "\nprogress 10%\rprogress 50%\rstep:4/3 val_loss:1.25\n"
    p = tmp_path / "run.txt"
    p.write_text(log)
    df = frame(text.read(p))
    assert df.select("metric", "step", "value").rows() == [
        ("train_loss", 0, 5.5), ("train_loss", 1, 4.5), ("train_loss", 2, 3.5), ("train_loss", 3, 2.5),
        ("val_loss", 4, 1.25)]


def test_resume_inside_a_run_is_an_event(tmp_path):
    lines = [f"s:{s} trl:{10 - s * 0.1:.2f}" for s in range(0, 50)]
    lines += [f"s:{s} trl:{9 - s * 0.1:.2f}" for s in range(40, 60)]  # resumed from the step-40 checkpoint
    p = tmp_path / "resumed.log"
    p.write_text("\n".join(lines) + "\n")
    parsed = text.read(p)
    df = frame(parsed)
    assert parsed.runs == ["resumed"] and df.height == 70
    assert [(e.run, e.step, e.kind) for e in parsed.events] == [("resumed", 40, "resume")]
    assert "line 51" in parsed.events[0].detail


def test_user_patterns(tmp_path):
    p = tmp_path / "custom.log"
    p.write_text("2024-01-01 INFO [ep 1] it=10 L=2.5 acc=0.1\nnoise\n2024-01-01 INFO [ep 1] it=20 L=2.25 acc=nan\n"
                 "metric train/loss at 30 = 2.0\n")
    opts = IngestOptions(text_patterns=[r"it=(?P<step>\d+) L=(?P<loss>\S+) acc=(?P<acc>\S+)",
                                        r"metric (?P<key>\S+) at (?P<step>\d+) = (?P<value>\S+)"])
    df = frame(text.read(p, options=opts, run="mine"))
    assert df.select("metric", "step").rows() == [("loss", 10), ("acc", 10), ("loss", 20), ("acc", 20),
                                                  ("train/loss", 30)]
    assert math.isnan(df["value"][3]) and df["value"][4] == 2.0 and set(df["run"]) == {"mine"}
    with pytest.raises(IngestError, match="no named group 'step'"):
        text.read(p, options=IngestOptions(text_patterns=[r"L=(?P<loss>\S+)"]))
    with pytest.raises(IngestError, match="not a valid regular expression"):
        text.read(p, options=IngestOptions(text_patterns=[r"(?P<step>\d+"]))


def test_nanogpt_eval_and_dict_eval_steps(tmp_path):
    p = tmp_path / "stdout.log"
    p.write_text("{'loss': 0.7, 'learning_rate': 1e-05, 'epoch': 0.1}\n"
                 "{'eval_loss': 0.65, 'eval_runtime': 3.2, 'epoch': 0.1}\n"
                 "{'loss': nan, 'learning_rate': 9e-06, 'epoch': 0.2}\n"
                 "{'loss': 0.5, 'step': 300, 'epoch': 0.3}\n")
    df = frame(text.read(p))
    assert df.select("metric", "step").rows() == [
        ("loss", 1), ("learning_rate", 1), ("epoch", 1), ("eval_loss", 1), ("eval_runtime", 1), ("epoch", 1),
        ("loss", 2), ("learning_rate", 2), ("epoch", 2), ("loss", 300), ("epoch", 300)]
    assert math.isnan(df["value"][6])


# ---- metric names the role inference can read ----------------------------------------

# every metric name the real text logs give, with the (split, kind, direction) that
# engine.infer must read from it; a new name in the corpus fails the test until added here
EXPECTED_ROLES = {
    "train_loss": ("train", "loss", "min"), "val_loss": ("val", "loss", "min"),
    "validation_loss": ("val", "loss", "min"), "loss": ("none", "loss", "min"),
    "hellaswag_acc": ("none", "accuracy", "max"), "HellaSwag_accuracy": ("none", "accuracy", "max"),
    "lr": ("none", "lr", "none"), "learning_rate": ("none", "lr", "none"),
    "norm": ("none", "grad_norm", "none"), "grad_norm": ("none", "grad_norm", "none"),
    "tok/sec": ("none", "throughput", "max"), "epoch": ("none", "other", "none"),
}


@pytest.mark.parametrize("rel", [r[0] for r in REAL], ids=[r[0].split("/")[-1][:24] for r in REAL])
def test_real_metric_names_have_sensible_roles(real_dir, rel):
    from engine.infer import infer

    p = text.read(real_dir / rel)
    names = set(p.table.column("metric").to_pylist())
    got = {n: (r.split, r.kind, r.direction) for n in names for r in [infer(n)]}
    assert got == {n: EXPECTED_ROLES.get(n) for n in names}, rel
    assert any(k == "loss" for _, k, _ in got.values()), f"{rel}: no loss metric among {sorted(names)}"


def test_trainer_abbreviations_are_expanded_and_recorded(real_dir, tmp_path):
    p = text.read(real_dir / MODDED / "2024-10-13_llmc/main.log")
    assert p.attributes[p.runs[0]]["metric_aliases"] == {"val_loss": "tel", "train_loss": "trl"}
    p = text.read(real_dir / T / "build-nanogpt-agndm/log_half_dataset/log.txt")
    assert p.attributes[p.runs[0]]["metric_aliases"] == {"val_loss": "val", "hellaswag_acc": "hella",
                                                         "train_loss": "train"}
    p = text.read(real_dir / MODDED / "2024-10-10_Muon/eb5659d0-fb6a-49e5-a311-f1f89412f726.txt")
    assert "metric_aliases" not in p.attributes[p.runs[0]]  # already descriptive: nothing renamed
    # llm.c's eval line is HellaSwag; 'eval' after a step: prefix (not llm.c) stays as logged,
    # and 'val' is renamed only in build-nanogpt's column lines
    f = tmp_path / "llmc.log"
    f.write_text("s:0 tel:11.0\ns:0 trl:11.0 lr:0.0006 norm:1.5\ns:0 eval:0.25\nstep:1 eval:0.5 val:2.0\n"
                 "step 2: val 3.0, train 2.5\n")
    df = frame(text.read(f))
    assert df.select("metric", "step", "value").rows() == [
        ("val_loss", 0, 11.0), ("train_loss", 0, 11.0), ("lr", 0, 0.0006), ("norm", 0, 1.5),
        ("hellaswag_acc", 0, 0.25), ("eval", 1, 0.5), ("val", 1, 2.0), ("val", 2, 3.0), ("train", 2, 2.5)]


# ---- block headers ---------------------------------------------------------------------

TOY_PPO = "rlhf/toy-ppo-rlhf-systems-kit/runs/run_20250828_211717/logs/train.log"


def test_toy_ppo_epoch_blocks(real_dir):
    import numpy as np

    from engine.ingest import read_source

    path = real_dir / TOY_PPO
    assert text.sniff(path)
    p = text.read(path)
    df = frame(p)
    assert df.height == 15 and p.runs == ["run_20250828_211717"]
    for m in ("avg_reward", "avg_kl", "avg_loss"):
        assert curve(df, m)["step"].to_list() == [1, 2, 3, 4, 5]
        assert curve(df, m)["value"].to_list() == [0.0] * 5
    # "-0.0000" is kept as -0.0 (a value 0, sign preserved)
    kl = p.table.column("value").to_numpy()[np.array(p.table.column("metric").to_pylist()) == "avg_kl"]
    assert np.signbit(kl).tolist() == [True, False, False, True, False]
    a = p.attributes[p.runs[0]]
    assert a["step_unit"] == "epoch" and a["line_profiles"] == {"block": 15}
    assert a["metric_aliases"] == {"avg_reward": "Avg Reward", "avg_kl": "Avg KL", "avg_loss": "Avg Loss"}
    got = read_source(path)
    got = got[0] if isinstance(got, list) else got
    assert got.format == "text_log" and got.table.num_rows == 15


def test_block_headers_synthetic(tmp_path):
    f = tmp_path / "eval.log"
    # bare headers take indented lines; a unit value is skipped, a non-metric line ends the block
    f.write_text("Step 100:\n  Train Loss: 2.5\n  val acc: nan\n  time: 12ms\nnotes: 3\n"
                 "Step 200:\n  Train Loss: 2.0\n  val acc: 0.5\n  comment: fine\n  Train Loss: 9\n")
    assert text.sniff(f)
    p = text.read(f)
    df = frame(p)
    assert df.select("metric", "step").rows() == [("train_loss", 100), ("val_acc", 100), ("train_loss", 200),
                                                  ("val_acc", 200)]
    v = df["value"].to_list()
    assert v[0] == 2.5 and math.isnan(v[1]) and v[2:] == [2.0, 0.5]
    a = p.attributes[p.runs[0]]
    assert "step_unit" not in a and a["ingest_skipped"] == {"values_with_unit": {"time": 1}}
    # unindented lines after a bare header, and a prefix of another shape, are no block lines
    f.write_text("Epoch 1:\nloss: 1.0\nEpoch 2:\nloss: 0.5\n"
                 "12:00:01 INFO Epoch 3:\n12:00:01 WARN   loss: 0.2\n12:00:02 INFO Epoch 4:\nINFO loss: 0.1\n")
    assert not text.sniff(f)
    with pytest.raises(IngestError, match="no metric line found"):
        text.read(f)


def test_headers_without_metric_lines_are_not_claimed(tmp_path):
    f = tmp_path / "train.log"
    f.write_text("".join(f"2024-01-01 10:00:0{e},000 - INFO - Epoch {e} complete:\n"
                         f"2024-01-01 10:00:0{e},001 - INFO - Saved checkpoint: ckpt_{e}.pt\n" for e in range(1, 6)))
    assert not text.sniff(f)
    # one block is not enough for sniff (read still takes it when asked)
    f.write_text("x - INFO - Epoch 1 complete:\nx - INFO -   Avg Loss: 0.5\nx - INFO - Epoch 2 complete:\n")
    assert not text.sniff(f)
    p = text.read(f)
    assert frame(p).select("metric", "step", "value").rows() == [("avg_loss", 1, 0.5)]
    assert p.attributes[p.runs[0]]["step_unit"] == "epoch"
