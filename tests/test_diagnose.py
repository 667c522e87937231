"""engine.diagnose: paths, frames and stores in; a findings frame with the contract columns out."""

import json

import pandas as pd
import polars as pl
import pytest

from data import generate as gen
from engine.diagnose import analyse, diagnose
from engine.errors import ConfigError, IngestError
from engine.store import Store

COLUMNS = ["run", "code", "severity", "confidence", "metrics", "step_start", "step_end", "message", "evidence",
           "advice"]


@pytest.fixture(scope="module")
def nonfinite_frame():
    return gen.curves_frame(gen.make_run("nonfinite", 1000, "nan-run"))


def test_frame_in_findings_out(nonfinite_frame):
    df = diagnose(nonfinite_frame)
    assert df.columns == COLUMNS
    assert df["run"].unique().to_list() == ["nan-run"]
    nf = df.filter(pl.col("code") == "NONFINITE")
    assert nf.height == 1 and nf["severity"][0] == "critical"
    assert df["severity"][0] == "critical"  # sorted: critical first
    for e in df["evidence"]:
        json.loads(e)


def test_pandas_frame_and_parquet_path_give_the_same_findings(nonfinite_frame, tmp_path):
    a = diagnose(nonfinite_frame.to_pandas())
    p = tmp_path / "long.parquet"
    nonfinite_frame.write_parquet(p)
    b = diagnose(p)
    assert a.select("code", "severity", "step_start", "step_end").equals(b.select("code", "severity", "step_start", "step_end"))


def test_store_gets_tables_written_back(nonfinite_frame, tmp_path):
    st = Store(tmp_path / "st")
    df = diagnose(nonfinite_frame, store=st)
    assert st.table("findings").height == df.height
    assert st.table("features").height > 0 and st.table("segments").height > 0
    again = diagnose(st)  # a Store as the source: same findings
    assert again.select("code", "step_start").equals(df.select("code", "step_start"))
    t = analyse(st)
    assert set(t) >= {"features", "segments", "spikes", "metrics", "events"}


def test_frame_without_value_column_is_an_ingest_error():
    with pytest.raises(IngestError, match="value"):
        diagnose(pd.DataFrame({"metric": ["loss"], "step": [1]}))


def test_bad_thresholds_fail_before_any_work(tmp_path, nonfinite_frame):
    f = tmp_path / "th.toml"
    f.write_text("[DIVERGENCE]\nmin_rise = 0.1\n")
    with pytest.raises(ConfigError, match="min_rise_rel"):
        diagnose(nonfinite_frame, thresholds=f)


def test_thresholds_dict_changes_the_outcome():
    frame = gen.curves_frame(gen.make_run("divergence", 1000, "d"))
    assert "DIVERGENCE" in diagnose(frame)["code"].to_list()
    assert "DIVERGENCE" not in diagnose(frame, thresholds={"DIVERGENCE": {"min_rise_rel": 100.0}})["code"].to_list()
