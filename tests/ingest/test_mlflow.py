"""MLflow file-store importer: the corpus' three runs and synthetic mlruns folders."""

import math

import polars as pl
import pytest

from engine.errors import IngestError
from engine.ingest import mlflow
from engine.ingest.base import PARSED_SCHEMA

MELI = "mlflow/aprendizaje-profundo-meli2019"
CNN = "6b4cd1fe891a4fea9d2ce37bfd9f028a"
LSTM = "eaa72819a13140e3a591621ee34415d7"
SWAHILI = "mlflow/swahili-stt-keras/mlruns/1/ed05f9cd599442fe9a0c9222184710b8"


def frame(p):
    return pl.from_arrow(p.table)


def curve(df, run, metric):
    return df.filter((pl.col("run") == run) & (pl.col("metric") == metric))


def test_real_two_runs(real_dir):
    for path in (real_dir / MELI, real_dir / MELI / "mlruns", real_dir / MELI / "mlruns/2"):
        assert mlflow.sniff(path)
    p = mlflow.read(real_dir / MELI)
    assert p.table.schema == PARSED_SCHEMA and p.format == "mlflow"
    df = frame(p)
    assert p.runs == [CNN, LSTM]  # no run name recorded: the run id names the run
    assert df.height == 64
    counts = {(r, m): n for r, m, n in df.group_by("run", "metric").len().iter_rows()}
    for r in (CNN, LSTM):
        assert counts[(r, "train_loss")] == 10 and counts[(r, "validation_loss")] == 10
        assert counts[(r, "validation_bacc")] == 10 and counts[(r, "test_loss")] == 1 and counts[(r, "test_bacc")] == 1
    val = curve(df, CNN, "validation_loss")
    assert val["step"].to_list() == list(range(10))
    best = val.sort("value").row(0, named=True)
    assert best["step"] == 4 and best["value"] == pytest.approx(0.743, abs=5e-4)
    assert val["value"][-1] == pytest.approx(0.789, abs=5e-4)
    assert curve(df, CNN, "train_loss")["value"][0] == 2.3457589695215835
    assert curve(df, CNN, "train_loss")["value"][-1] == pytest.approx(0.4747, abs=1e-4)
    t = curve(df, CNN, "test_loss").row(0, named=True)
    assert t["step"] == 9 and t["value"] == pytest.approx(0.5228636894060905, rel=1e-15)
    assert t["wall_time"] == pytest.approx(1649792789.24, abs=1e-6)
    assert curve(df, CNN, "test_bacc")["value"][0] == pytest.approx(0.877, abs=5e-4)
    lv = curve(df, LSTM, "validation_loss")["value"]
    assert lv[0] == pytest.approx(3.61, abs=5e-3) and lv[-1] == pytest.approx(0.875, abs=5e-4)
    assert (lv.diff().drop_nulls() < 0).all()
    a = p.attributes[CNN]
    assert len(a["params"]) == 9 and a["params"]["model_type"] == "Red convolucional"
    assert a["params"]["dropout"] == "0.3" and len(a["tags"]) == 4
    assert a["meta"]["experiment_name"] == "diplodatos.Meli2019" and a["meta"]["experiment_id"] == "2"
    assert a["meta"]["start_time"] == 1649792050079 and a["meta"]["status"] == 3
    assert p.attributes[LSTM]["params"]["model_type"] == "Red LSTM"
    assert df["wall_time"].null_count() == 0


def test_real_keras_autolog_run(real_dir):
    p = mlflow.read(real_dir / SWAHILI)
    df = frame(p)
    assert p.runs == ["ed05f9cd599442fe9a0c9222184710b8"] and df.height == 10
    assert df["step"].to_list() == list(range(10))
    assert df["value"][0] == 332.6841735839844 and df["value"][-1] == 234.7978057861328
    assert df["value"][4] == pytest.approx(239.03, abs=0.01)
    a = p.attributes[p.runs[0]]
    assert len(a["params"]) == 20 and a["params"]["opt_name"] == "SGD" and a["params"]["opt_learning_rate"] == "0.002"
    assert len(a["tags"]) == 5 and a["tags"]["mlflow.autologging"] == "tensorflow"
    assert a["meta"]["experiment_name"] == "Speech model simple rnn"


def make_run(root, exp, run_id, metrics, name=None, run_name_tag=None, params=None):
    e = root / "mlruns" / exp
    e.mkdir(parents=True, exist_ok=True)
    (e / "meta.yaml").write_text(f"experiment_id: '{exp}'\nname: exp{exp}\n")
    r = e / run_id
    (r / "metrics").mkdir(parents=True)
    (r / "params").mkdir()
    (r / "tags").mkdir()
    (r / "meta.yaml").write_text(f"run_id: {run_id}\nexperiment_id: '{exp}'\n"
                                 + (f"run_name: {name}\n" if name else "") + "status: 3\n")
    if run_name_tag:
        (r / "tags" / "mlflow.runName").write_text(run_name_tag)
    for k, v in (params or {}).items():
        (r / "params" / k).write_text(v)
    for key, text in metrics.items():
        f = r / "metrics" / key
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return r


def test_synthetic_layouts(tmp_path):
    make_run(tmp_path, "0", "aaaa1111bbbb", {"train/loss": "1000 2.0 0\n2000 nan 1\n3000 inf 2\n3000 -inf 2\n",
                                              "old": "1000 5.0\n", "ds": "1000 0.5 7 mydata abc123\n"},
             name="named-by-meta", params={"lr": "0.1"})
    make_run(tmp_path, "0", "cccc2222dddd", {"loss": "1000 1.0 0\n"}, name="x", run_name_tag="dup")
    make_run(tmp_path, "5", "eeee3333ffff", {"loss": "1000 1.0 0\n"}, run_name_tag="dup")
    p = mlflow.read(tmp_path)
    df = frame(p)
    assert p.runs == sorted(["named-by-meta", "dup-cccc2222", "dup-eeee3333"])
    r = df.filter(pl.col("run") == "named-by-meta")
    assert r.select("metric", "step").rows() == [("ds", 7), ("old", 0), ("train/loss", 0), ("train/loss", 1),
                                                ("train/loss", 2), ("train/loss", 2)]
    v = r.filter(pl.col("metric") == "train/loss")["value"].to_list()
    assert v[0] == 2.0 and math.isnan(v[1]) and v[2:] == [math.inf, -math.inf]
    assert r["wall_time"].to_list()[0] == 1.0
    assert p.attributes["named-by-meta"]["params"] == {"lr": "0.1"}
    assert p.attributes["dup-eeee3333"]["meta"]["experiment_name"] == "exp5"
    assert mlflow.read(tmp_path / "mlruns/5/eeee3333ffff", run="mine").runs == ["mine"]


def test_large_metric_file_fast_path_matches(tmp_path):
    lines = "".join(f"{1600000000000 + i} {1.0 / (i + 1)!r} {i}\n" for i in range(5000))
    make_run(tmp_path, "1", "r1", {"loss": lines})
    df = frame(mlflow.read(tmp_path))
    assert df.height == 5000 and df["step"].to_list() == list(range(5000))
    assert df["value"][4999] == 1.0 / 5000 and df["wall_time"][1] == 1600000000.001


@pytest.mark.parametrize("text,line,what", [
    ("1000 1.0 0\n1001 abc 1\n", 2, "value 'abc' is not a number"),
    ("1000 1.0 0\n1001 1.0 1.5\n", 2, "step '1.5' is not an integer"),
    ("1000 1.0 0 x\n", 1, "has 4 fields"),
    ("10.5 1.0 0\n", 1, "timestamp '10.5'"),
])
def test_bad_metric_lines(tmp_path, text, line, what):
    make_run(tmp_path, "1", "r1", {"val/acc": text})
    with pytest.raises(IngestError) as e:
        mlflow.read(tmp_path)
    assert e.value.line == line and what in str(e.value) and e.value.path.endswith("metrics/val/acc")


def test_bad_line_in_large_file_is_named(tmp_path):
    lines = [f"{1000 + i} {i}.5 {i}" for i in range(3000)]
    lines[2500] = "3500 oops 2500"
    make_run(tmp_path, "1", "r1", {"loss": "\n".join(lines) + "\n"})
    with pytest.raises(IngestError) as e:
        mlflow.read(tmp_path)
    assert e.value.line == 2501 and "'oops'" in str(e.value)


def test_not_mlflow(tmp_path):
    assert not mlflow.sniff(tmp_path) and not mlflow.sniff(tmp_path / "x.csv")
    with pytest.raises(IngestError, match="no MLflow run here"):
        mlflow.read(tmp_path)


def test_run_name_prefers_tag_then_meta_run_name_then_id(tmp_path):
    # no mlflow.runName tag: meta.yaml's run_name names the run (quoted, with spaces)
    make_run(tmp_path, "0", "aaaa1111bbbb", {"loss": "1000 1.0 0\n"}, name="'warm up'")
    # the tag wins over meta.yaml
    make_run(tmp_path, "0", "bbbb2222cccc", {"loss": "1000 1.0 0\n"}, name="meta-name", run_name_tag="tagged")
    # two runs named alike by meta.yaml only: each takes its id prefix
    make_run(tmp_path, "1", "cccc3333dddd", {"loss": "1000 1.0 0\n"}, name="same")
    make_run(tmp_path, "1", "dddd4444eeee", {"loss": "1000 1.0 0\n"}, name="same")
    # neither: the run id
    make_run(tmp_path, "1", "eeee5555ffff", {"loss": "1000 1.0 0\n"})
    p = mlflow.read(tmp_path)
    assert p.runs == sorted(["warm up", "tagged", "same-cccc3333", "same-dddd4444", "eeee5555ffff"])
    assert p.attributes["warm up"]["meta"]["run_id"] == "aaaa1111bbbb"
