"""`losscope diagnose`, `query` and `report` end to end on the bundled sample runs (CliRunner)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "runs"
FIELDS = ["run", "code", "severity", "confidence", "metrics", "step_start", "step_end", "message", "evidence",
          "advice"]


@pytest.fixture(scope="module")
def labels():
    if not (SAMPLES / "labels.json").is_file():
        pytest.skip("data/runs not generated")
    return json.loads((SAMPLES / "labels.json").read_text())["runs"]


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory, labels):
    """The samples diagnosed once into a store through the CLI (JSON output kept)."""
    store = tmp_path_factory.mktemp("cli") / "store"
    r = CliRunner().invoke(main, ["diagnose", str(SAMPLES), "--store", str(store), "--format", "json",
                                  "--executor", "serial"])
    assert r.exit_code == 0, r.stderr
    return store, r


def test_diagnose_json_on_samples_finds_sick_and_clears_healthy(sample_store, labels):
    store, r = sample_store
    found = json.loads(r.stdout)  # stdout holds the JSON array alone
    assert isinstance(found, list) and found
    assert all(list(f) == FIELDS for f in found)
    assert all(isinstance(f["evidence"], dict) for f in found)
    assert "analysed" in r.stderr  # the summary goes to stderr
    by_run = {}
    for f in found:
        by_run.setdefault(f["run"], []).append(f)
    assert set(by_run) == set(labels)
    for run, lab in labels.items():
        codes = {f["code"] for f in by_run[run]}
        bad = [f["code"] for f in by_run[run] if f["severity"] != "info"]
        if lab["healthy"]:
            assert not bad, f"{run} is healthy but got {bad}"
            assert "HEALTHY" in codes, run
        else:
            want = {e["code"] for e in lab["expected"]}
            assert want & codes, f"{run}: expected one of {sorted(want)}, got {sorted(codes)}"
            assert bad, f"{run} is sick but got no warning"
            assert "HEALTHY" not in codes


def test_diagnose_table_fresh_clone_command(labels):
    """The README's command: a folder of long Parquet files plus labels.json (skipped)."""
    r = CliRunner().invoke(main, ["diagnose", str(SAMPLES), "--executor", "serial"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    assert "labels.json" in r.stderr  # listed as skipped, not an error
    for run, lab in labels.items():
        assert run in out, run
    healthy_lines = [ln for ln in out.splitlines() if "HEALTHY" in ln]
    assert len(healthy_lines) == sum(lab["healthy"] for lab in labels.values())
    for code in ("DIVERGENCE", "NONFINITE", "OVERFITTING", "PLATEAU", "LOSS_SPIKE"):
        assert code in out, code


def test_store_batch_rerun_does_no_work_and_fail_on(sample_store, labels):
    store, first = sample_store
    r = CliRunner().invoke(main, ["diagnose", "--store", str(store), "--format", "json", "--fail-on", "critical"])
    assert "0 run(s) analysed" in r.stderr and f"{len(labels)} unchanged" in r.stderr, r.stderr
    assert json.loads(r.stdout) == json.loads(first.stdout)
    assert r.exit_code == 1  # divergence and non-finite samples are critical
    healthy = sorted(run for run, lab in labels.items() if lab["healthy"])
    args = ["diagnose", "--store", str(store), "--fail-on", "warning", "--format", "json"]
    for run in healthy:
        args += ["--run", run]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.stderr
    assert {f["run"] for f in json.loads(r.stdout)} == set(healthy)


def test_events_from_parquet_metadata_reach_the_store(sample_store, labels):
    store, _ = sample_store
    r = CliRunner().invoke(main, ["query", "events", "--store", str(store), "--format", "json"])
    assert r.exit_code == 0, r.stderr
    got = {(e["run"], e["step"], e["kind"], e["detail"]) for e in json.loads(r.stdout) if e["source"] == "log"}
    want = {(run, e["step"], e["kind"], e["detail"]) for run, lab in labels.items() for e in lab["events"]}
    assert want and want <= got


def test_query_where_sql_and_parquet(sample_store, tmp_path):
    store, _ = sample_store
    r = CliRunner().invoke(main, ["query", "findings", "--store", str(store), "--where",
                                  "severity = 'critical' AND confidence > 0.5", "--format", "json"])
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows and all(f["severity"] == "critical" for f in rows)
    assert {"sample-divergence", "sample-nonfinite"} <= {f["run"] for f in rows}
    out = tmp_path / "c.parquet"
    r = CliRunner().invoke(main, ["query", "curves", "--store", str(store), "--run", "sample-divergence",
                                  "--metric", "train/loss", "--format", "parquet", "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    c = pl.read_parquet(out)
    assert c.height > 100 and set(c["run"]) == {"sample-divergence"} and set(c["metric"]) == {"train/loss"}
    r = CliRunner().invoke(main, ["query", "--store", str(store), "--sql",
                                  "SELECT run, count(*) AS n FROM spikes GROUP BY run ORDER BY n DESC"])
    assert r.exit_code == 0 and "sample-loss-spike" in r.stdout, r.stderr
    r = CliRunner().invoke(main, ["query", "findings", "--store", str(store), "--where", "severity = = 1"])
    assert r.exit_code == 2 and r.stderr.startswith("losscope: --where") and r.stderr.count("\n") == 1, r.stderr


def test_bad_input_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "broken.csv"
    bad.write_text("step,loss\n1,0.5\n2,abc\n")
    r = CliRunner().invoke(main, ["diagnose", str(bad)])
    assert r.exit_code == 2
    assert "broken.csv" in r.stderr and "line 3" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    r = CliRunner().invoke(main, ["diagnose", "--store", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "no losscope store" in r.stderr
    th = tmp_path / "th.toml"
    th.write_text("[OVERFITTING]\nmin_rise = 1\n")
    good = tmp_path / "ok.csv"
    good.write_text("step,loss\n" + "".join(f"{i},{1 / i}\n" for i in range(1, 50)))
    r = CliRunner().invoke(main, ["diagnose", str(good), "--thresholds", str(th)])
    assert r.exit_code == 2 and "min_rise" in r.stderr, r.stderr
    r = CliRunner().invoke(main, ["diagnose"])
    assert r.exit_code == 2  # click usage error


def test_thresholds_change_reanalyses(tmp_path):
    good = tmp_path / "curve.csv"
    good.write_text("step,loss\n" + "".join(f"{i},{1 / i}\n" for i in range(1, 80)))
    store = tmp_path / "st"
    r = CliRunner().invoke(main, ["diagnose", str(good), "--store", str(store)])
    assert r.exit_code == 0 and "1 run(s) analysed" in r.stderr, r.stderr
    r = CliRunner().invoke(main, ["diagnose", "--store", str(store)])
    assert "0 run(s) analysed" in r.stderr
    th = tmp_path / "th.toml"
    th.write_text("[OVERFITTING]\nmin_rise_rel = 0.5\n")
    r = CliRunner().invoke(main, ["diagnose", "--store", str(store), "--thresholds", str(th)])
    assert r.exit_code == 0 and "1 run(s) analysed" in r.stderr, r.stderr


def test_help_has_examples_for_each_command():
    for cmd in ("diagnose", "query", "report"):
        r = CliRunner().invoke(main, [cmd, "--help"])
        assert r.exit_code == 0 and "Examples:" in r.output and f"losscope {cmd}" in r.output, cmd


def test_report_writes_index_and_run_page(sample_store, tmp_path):
    store, _ = sample_store
    out = tmp_path / "index.html"
    r = CliRunner().invoke(main, ["report", "--store", str(store), "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    html = out.read_text()
    assert "sample-divergence" in html and "DIVERGENCE" in html and "<script src=\"http" not in html
    one = tmp_path / "div.html"
    r = CliRunner().invoke(main, ["report", "--store", str(store), "--run", "sample-divergence", "-o", str(one)])
    assert r.exit_code == 0, r.stderr
    assert "DIVERGENCE" in one.read_text() and "0 run(s) analysed" in r.stderr


def test_bad_events_metadata_is_bad_input(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    t = pa.table({"run": ["r"] * 60, "metric": ["loss"] * 60, "step": list(range(60)),
                  "value": [1.0 / (i + 1) for i in range(60)]})
    for meta, msg in (("{not json", "is not JSON"), ('[{"step": -3, "kind": "note"}]', "step -3"),
                      ('[{"step": 5, "kind": "party"}]', "event kind 'party'")):
        f = tmp_path / "r.parquet"
        pq.write_table(t.replace_schema_metadata({"losscope.events": meta}), f)
        r = CliRunner().invoke(main, ["diagnose", str(f), "--format", "json"])
        assert r.exit_code == 2 and msg in r.stderr and "r.parquet" in r.stderr, (meta, r.stderr)
        assert r.stdout == ""
    pq.write_table(t.replace_schema_metadata({"losscope.events": '[{"step": 5, "kind": "data_refresh"}]'}), f)
    store = tmp_path / "st"
    r = CliRunner().invoke(main, ["diagnose", str(f), "--store", str(store)])
    assert r.exit_code == 0, r.stderr
    r = CliRunner().invoke(main, ["query", "events", "--store", str(store), "--format", "json"])
    assert [(e["run"], e["step"], e["kind"]) for e in json.loads(r.stdout)] == [("r", 5, "data_refresh")]
