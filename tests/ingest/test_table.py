"""Plain-table importer (CSV/TSV/JSONL/Parquet, long and wide form)."""

import json
import math

import numpy as np
import polars as pl
import pytest

from engine.errors import IngestError
from engine.ingest import table
from engine.ingest.base import PARSED_SCHEMA


def frame(p):
    return pl.from_arrow(p.table)


CNN_CSV = "plain_csv/core-collapse-leukemia-cnns/training_metrics.csv"
PPO_JSONL = "rlhf/toy-ppo-rlhf-systems-kit/runs/run_20250828_211717/logs/train.jsonl"
GPT2_TSV = "text_logs/gpt2-124m-shakespeare-memorize/train.log"


def test_real_multi_run_csv(real_dir):
    path = real_dir / CNN_CSV
    assert table.sniff(path)
    p = table.read(path)
    assert p.table.schema == PARSED_SCHEMA and p.format == "table"
    df = frame(p)
    assert len(p.runs) == 13 and "GoogLeNet" in p.runs and "VGG16" in p.runs
    assert df.height == 126 * 6
    assert df["metric"].unique(maintain_order=True).to_list() == [
        "Total Epochs", "Train Loss", "Train Acc", "Val Loss", "Val Acc", "Time (s)"]
    per_run = dict(df.filter(pl.col("metric") == "Val Loss").group_by("run").len().iter_rows())
    assert per_run["GoogLeNet"] == 6 and all(v == 10 for k, v in per_run.items() if k != "GoogLeNet")
    g = df.filter((pl.col("run") == "GoogLeNet") & (pl.col("metric") == "Val Loss"))
    assert g["step"].to_list() == [1, 2, 3, 8, 9, 10]  # epochs 4-7 missing in the file
    assert g["value"][:3].to_list() == [1.3486, 1.4717, 2.4878]
    d = df.filter((pl.col("run") == "DenseNet121") & (pl.col("metric") == "Val Loss")).sort("value")
    assert d.row(0, named=True)["step"] == 5 and d["value"][0] == pytest.approx(0.496, abs=5e-4)
    vgg = df.filter((pl.col("run") == "VGG16") & (pl.col("metric") == "Train Loss"))
    assert vgg["step"][0] == 1 and vgg["value"][0] == pytest.approx(35.6, abs=0.05)
    first = df.row(0, named=True)
    assert first == {"run": "MLC-19k", "metric": "Total Epochs", "step": 1, "value": 10.0, "wall_time": None}
    assert p.attributes["VGG16"]["columns"]["step"] == "Epoch"
    assert p.attributes["VGG16"]["columns"]["run"] == "Model"


def test_real_jsonl_with_iso_timestamps(real_dir):
    p = table.read(real_dir / PPO_JSONL)
    df = frame(p)
    assert p.runs == ["run_20250828_211717"]
    assert df.height == 50 * 13
    assert set(df["metric"]) == {"policy_loss", "kl_loss", "total_loss", "clip_fraction", "kl_mean", "kl_std",
                                 "advantage_mean", "advantage_std", "epoch", "reward_mean", "reward_std",
                                 "sequence_length_mean", "learning_rate"}
    assert df["wall_time"].null_count() == 0
    assert df["wall_time"][0] == pytest.approx(1756415846.726594, abs=1e-6)  # 2025-08-28T21:17:26.726594 UTC
    assert (np.diff(df.filter(pl.col("metric") == "kl_mean")["wall_time"].to_numpy()) >= 0).all()
    r = df.filter(pl.col("metric") == "reward_mean")
    assert r["step"].to_list() == list(range(1, 51)) and set(r["value"]) == {0.0}
    assert set(df.filter(pl.col("metric") == "clip_fraction")["value"]) == {1.0}
    kl = df.filter((pl.col("metric") == "kl_mean") & (pl.col("step") == 1))["value"][0]
    assert kl == 2.60770320892334e-08


def test_real_tsv_with_log_extension(real_dir):
    path = real_dir / GPT2_TSV
    assert table.sniff(path)
    df = frame(table.read(path))
    assert df.height == 457 and set(df["metric"]) == {"loss"}
    assert df["step"][0] == 10 and df["step"][-1] == 4570
    assert df["value"][0] == 8.460716 and df["value"][-1] == pytest.approx(0.128361)
    assert df["run"][0] == "gpt2-124m-shakespeare-memorize"


def test_sniff_leaves_other_files_alone(real_dir, tmp_path):
    assert not table.sniff(real_dir / "text_logs/nanogpt-chenzihua-nan/train.log")
    assert not table.sniff(real_dir / "lightning_csv/slm-training-wikitext103/lightning_logs/version_0/metrics.csv")
    assert not table.sniff(real_dir / "hf_trainer_state/metamath-sft/trainer_state.json")
    assert not table.sniff(real_dir / "plain_csv")


# ---- synthetic -------------------------------------------------------------------------

def test_nan_spellings_and_empty_cells(tmp_path):
    p = tmp_path / "exp1.csv"
    p.write_text("step,loss,acc\n1,nan,\n2,NaN,0.5\n3,inf,\n4,-inf, 0.7\n5,Infinity,\n6,2.5,0.9\n")
    df = frame(table.read(p))
    loss = df.filter(pl.col("metric") == "loss")["value"].to_list()
    assert math.isnan(loss[0]) and math.isnan(loss[1]) and loss[2:] == [math.inf, -math.inf, math.inf, 2.5]
    acc = df.filter(pl.col("metric") == "acc")
    assert acc["step"].to_list() == [2, 4, 6] and acc["value"].to_list() == [0.5, 0.7, 0.9]  # empty = missing
    assert df["run"].unique().to_list() == ["exp1"]
    # source order: row by row, column by column
    assert df.select("metric", "step").rows()[:4] == [("loss", 1), ("loss", 2), ("acc", 2), ("loss", 3)]


def test_bad_step_message_names_line_and_column(tmp_path):
    p = tmp_path / "eval_log.csv"
    rows = [f"{i},{1.0 / (i + 1)}" for i in range(9311)]
    rows[9311 - 1] = "4.2e3.1,0.5"
    p.write_text("step,loss\n" + "\n".join(rows) + "\n")
    with pytest.raises(IngestError) as e:
        table.read(p)
    assert str(e.value).endswith("""eval_log.csv, line 9,312: column "step" holds '4.2e3.1'; expected an integer step.""")
    assert e.value.line == 9312


def test_float_and_fractional_steps(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("step,loss\n100.0,1\n200,2\n3e2,3\n")
    assert frame(table.read(p))["step"].to_list() == [100, 200, 300]
    p.write_text("epoch,loss\n0.5,1\n1.0,2\n")
    with pytest.raises(IngestError, match=r"line 2: column \"epoch\" holds '0.5'; expected an integer step; fractional"):
        table.read(p)
    p.write_text("step,loss\n1,1\n,2\n")
    with pytest.raises(IngestError, match=r"line 3: column \"step\" holds ''"):
        table.read(p)
    p.write_text("time,loss\n1,1\n")
    with pytest.raises(IngestError, match="no step column"):
        table.read(p)


def test_non_numeric_value_lists_first_five(tmp_path):
    p = tmp_path / "b.csv"
    lines = ["step,loss,note"] + [f"{i},{'oops' if i % 3 == 0 else i},hello" for i in range(1, 31)]
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(IngestError) as e:
        table.read(p)
    msg = str(e.value)
    assert "line 4: column \"loss\" holds 'oops'; expected a number. (9 more bad cells" in msg
    assert "lines 7, 10, 13, 16..." in msg
    # an all-text column is a label: skipped and listed
    p.write_text("step,loss,note\n1,2.0,hello\n2,1.5,world\n")
    parsed = table.read(p)
    assert set(frame(parsed)["metric"]) == {"loss"}
    assert parsed.attributes["b"]["ingest_skipped"]["label_columns"] == ["note"]


def test_long_form_csv_and_step_priority(tmp_path):
    p = tmp_path / "long.csv"
    p.write_text("run,metric,step,value,wall_time\n"
                 "r1,loss,1,2.0,1700000000\nr1,val/loss,1,2.5,1700000001\nr2,loss,1,nan,\nr2,loss,2,,\n")
    df = frame(table.read(p))
    assert df.height == 3  # the empty value is missing, not NaN
    assert df.select("run", "metric", "step").rows() == [("r1", "loss", 1), ("r1", "val/loss", 1), ("r2", "loss", 1)]
    assert math.isnan(df["value"][2]) and df["wall_time"].to_list()[:2] == [1.7e9, 1.7e9 + 1]
    assert df["wall_time"][2] is None
    # step beats epoch; epoch becomes a curve; milliseconds are detected
    p = tmp_path / "w.csv"
    p.write_text("epoch,step,loss,timestamp\n0.5,10,1.0,1700000000000\n1.0,20,0.5,1700000001500\n")
    df = frame(table.read(p))
    assert df.filter(pl.col("metric") == "epoch")["value"].to_list() == [0.5, 1.0]
    assert df["step"].unique(maintain_order=True).to_list() == [10, 20]
    assert df["wall_time"].unique(maintain_order=True).to_list() == [1.7e9, 1700000001.5]


def test_tsv_semicolon_and_parquet(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_text("iteration\tlm loss\n1\t7.0\n2\t6.5\n")
    df = frame(table.read(p))
    assert df.select("metric", "step", "value").rows() == [("lm loss", 1, 7.0), ("lm loss", 2, 6.5)]
    p = tmp_path / "y.csv"
    p.write_text("step;loss\n1;0,5\n")  # decimal commas are not numbers
    with pytest.raises(IngestError, match="holds '0,5'"):
        table.read(p)
    q = tmp_path / "z.parquet"
    pl.DataFrame({"global_step": [1, 2, 3], "loss": [1.0, None, float("nan")], "run": ["a", "a", "b"],
                  "label": ["x", "y", "z"]}).write_parquet(q)
    assert table.sniff(q)
    parsed = table.read(q)
    df = frame(parsed)
    assert df.select("run", "step").rows() == [("a", 1), ("b", 3)] and math.isnan(df["value"][1])
    pl.DataFrame({"global_step": [1.5], "loss": [1.0]}).write_parquet(q)
    with pytest.raises(IngestError, match=r"row 1: column \"global_step\" holds '1.5'"):
        table.read(q)


def test_jsonl_tokens_nesting_and_errors(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1, "loss": NaN, "eval": {"loss": 2.0}}\n\n'
                 '{"step": 2, "loss": Infinity, "grad_norm": "NaN", "phase": "a"}\n'
                 '{"step": 3, "loss": 1.0, "phase": "b"}\n')
    parsed = table.read(p)
    df = frame(parsed)
    assert parsed.runs == [tmp_path.name]  # "metrics" is generic: the folder names the run
    assert df.select("metric", "step").rows() == [("loss", 1), ("eval/loss", 1), ("loss", 2), ("grad_norm", 2),
                                                  ("loss", 3)]
    v = df["value"].to_list()
    assert math.isnan(v[0]) and v[2] == math.inf and math.isnan(v[3])
    p.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": "bad"}\n{"step": 3, "loss": 1.0}\n')
    with pytest.raises(IngestError, match=r"line 2: column \"loss\" holds 'bad'; expected a number"):
        table.read(p)
    p.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
    with pytest.raises(IngestError, match=r"line 2: not a JSON object \(truncated\?\)"):
        table.read(p)
    p.write_text('{"step": 1, "loss": 1.0}\n[1, 2]\n')
    with pytest.raises(IngestError, match="line 2: holds a JSON list"):
        table.read(p)
    p.write_text('{"step": 1, "timestamp": "yesterday", "loss": 1}\n')
    with pytest.raises(IngestError, match=r"line 1: column \"timestamp\" holds 'yesterday'; expected an ISO-8601"):
        table.read(p)


def test_ragged_csv_is_an_error(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("step,loss\n1,2\n3,4,5,6\n")
    with pytest.raises(IngestError, match="r.csv"):
        table.read(p)


def test_large_wide_table_matches_unpivot(tmp_path):
    rng = np.random.default_rng(7)
    n = 2000
    data = {"step": np.arange(n) * 10, "a": rng.normal(size=n), "b": rng.normal(size=n)}
    data["b"][rng.random(n) < 0.5] = np.nan
    pl.DataFrame(data).with_columns(pl.col("b").fill_nan(None)).write_csv(tmp_path / "big.csv")
    df = frame(table.read(tmp_path / "big.csv"))
    ref = (pl.DataFrame(data).with_row_index().unpivot(index=["index", "step"], variable_name="metric")
           .drop_nulls("value").filter(~pl.col("value").is_nan()).sort("index", maintain_order=True))
    assert df.height == ref.height
    assert df["metric"].to_list() == ref["metric"].to_list()
    np.testing.assert_allclose(df["value"].to_numpy(), ref["value"].to_numpy(), rtol=1e-15)
    assert df["step"].to_list() == ref["step"].to_list()


def test_jsonl_fast_path_agrees_with_line_reader(tmp_path):
    p = tmp_path / "flat.jsonl"
    p.write_text('{"step": 1, "loss": NaN, "acc": 1}\n\n{"step": 2, "loss": Infinity, "acc": 0.5}\n'
                 '{"step": 3, "loss": 1.0}\n')
    fast = table._read_jsonl_arrow(p)
    assert fast is not None  # flat numeric: the pyarrow path is taken
    df = frame(table.read(p))
    df_slow, where = table._read_jsonl(p)
    slow = frame(table.frame_to_parsed(df_slow, p, where, run=None, source=str(p)))
    assert df.select("metric", "step").rows() == slow.select("metric", "step").rows() == [
        ("loss", 1), ("acc", 1), ("loss", 2), ("acc", 2), ("loss", 3)]
    np.testing.assert_array_equal(df["value"].to_numpy(), slow["value"].to_numpy())
    # a bad cell after a blank line: the exact physical line is named (line-reader fallback)
    p.write_text('{"step": 1, "loss": 1.0}\n\n{"step": 2.5, "loss": 1.0}\n')
    with pytest.raises(IngestError, match=r"line 3: column \"step\" holds '2.5'"):
        table.read(p)
