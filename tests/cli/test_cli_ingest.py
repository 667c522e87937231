"""CLI ingest/runs through click's CliRunner, with the private fake importer as registry."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
from click.testing import CliRunner

import engine.ingest as registry
from engine.cli import main
from tests.store import fake_importer
from tests.store.test_store import rows, snapshot, write_fj


@pytest.fixture
def fake_registry(monkeypatch):
    monkeypatch.setattr(registry, "_loaded", [fake_importer])


def test_help_has_examples():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "ingest" in r.output and "runs" in r.output and "Examples" in r.output
    r = CliRunner().invoke(main, ["ingest", "--help"])
    assert r.exit_code == 0 and "losscope ingest runs/ --store .losscope" in r.output


def test_ingest_then_runs_table_and_json(tmp_path, fake_registry):
    src = write_fj(tmp_path / "logs" / "a.fj", rows("<b>run</b>", "loss", [1, 2, 2], [1.0, 2.0, 3.0]))
    write_fj(tmp_path / "logs" / "notes.md", ["hi"])
    store = tmp_path / "st"
    r = CliRunner().invoke(main, ["ingest", str(tmp_path / "logs"), "--store", str(store), "--format", "json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["runs"][0]["run"] == "<b>run</b>" and rep["runs"][0]["status"] == "new"
    assert rep["runs"][0]["points"] == 2 and rep["runs"][0]["replaced"] == 1
    assert rep["skipped"] == [str(tmp_path / "logs" / "notes.md")]
    r = CliRunner().invoke(main, ["ingest", str(src), "--store", str(store)])
    assert r.exit_code == 0 and "unchanged" in r.stdout and "<b>run</b>" in r.stdout
    r = CliRunner().invoke(main, ["runs", "--store", str(store), "--format", "json"])
    assert r.exit_code == 0
    got = json.loads(r.stdout)
    assert [(g["run"], g["points"], g["replaced"], g["metrics"], g["format"]) for g in got] == [
        ("<b>run</b>", 2, 1, 1, "fake")]
    r = CliRunner().invoke(main, ["runs", "--store", str(store)])
    assert r.exit_code == 0 and "<b>run</b>" in r.stdout
    r = CliRunner().invoke(main, ["runs", "--store", str(store), "--format", "parquet"])
    assert r.exit_code == 0
    assert pl.read_parquet(io.BytesIO(r.stdout_bytes))["run"].to_list() == ["<b>run</b>"]


@pytest.mark.parametrize("case", ["unknown_format", "truncated", "bad_mapping", "missing_store"])
def test_bad_input_exits_2_with_one_line_and_store_unchanged(tmp_path, fake_registry, case):
    store = tmp_path / "st"
    ok = write_fj(tmp_path / "ok.fj", rows("ok", "loss", [1], [1.0]))
    assert CliRunner().invoke(main, ["ingest", str(ok), "--store", str(store)]).exit_code == 0
    before = snapshot(store)
    args = {
        "unknown_format": ["ingest", str(write_fj(tmp_path / "x.bin", ["?"])), "--store", str(store)],
        "truncated": ["ingest", str(write_fj(tmp_path / "t.fj", ['{"run": "a", "met'])), "--store", str(store)],
        "bad_mapping": ["ingest", str(ok), "--store", str(store), "--mapping",
                        str(write_fj(tmp_path / "m.toml", ['[metrics."loss"]', 'knd = "loss"']))],
        "missing_store": ["runs", "--store", str(tmp_path / "nowhere")],
    }[case]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("losscope: ")
    named = {"unknown_format": "x.bin", "truncated": "t.fj", "bad_mapping": "m.toml", "missing_store": "nowhere"}[case]
    assert named in err
    assert snapshot(store) == before
