"""Store: round trip, dedup, idempotence, atomic failure, hostile names, pushdown, locks."""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.errors import IngestError, StoreError, UnknownFormatError
from engine.ingest import plan
from engine.ingest.base import Parsed, make_table
from engine.store import Store, run_key
from tests.store import fake_importer

MODS = [fake_importer]


def write_fj(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) if isinstance(r, dict) else r for r in rows) + "\n")
    return path


def rows(run, metric, steps, values, **extra):
    return [dict(run=run, metric=metric, step=s, value=v, **extra) for s, v in zip(steps, values)]


def snapshot(folder: Path) -> dict:
    """Every file under folder -> (sha256, mtime_ns)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def test_round_trip_sorted_nonfinite_kept_wall_time_utc(store, tmp_path):
    f = write_fj(tmp_path / "a.fj",
                 rows("r", "val/loss", [20, 10], [1.5, float("nan")], wall_time=1_700_000_000.25)
                 + rows("r", "loss", [3, 1, 2], [float("inf"), -float("inf"), 0.5]))
    # json.dumps writes NaN/Infinity literals, which json.loads reads back
    rep = store.ingest([f], mods=MODS)
    assert [r.status for r in rep.runs] == ["new"]
    c = store.curves()
    assert c["metric"].to_list() == ["loss", "loss", "loss", "val/loss", "val/loss"]
    assert c["step"].to_list() == [1, 2, 3, 10, 20]
    v = c["value"].to_list()
    assert v[0] == -math.inf and v[1] == 0.5 and v[2] == math.inf and math.isnan(v[3]) and v[4] == 1.5
    assert c.schema["wall_time"] == pl.Datetime("us", "UTC")
    assert c["wall_time"][4].timestamp() == pytest.approx(1_700_000_000.25, abs=1e-6)
    assert c["wall_time"][0] is None
    runs = store.runs()
    assert runs["points"].to_list() == [5] and runs["format"].to_list() == ["fake"]


def test_repeated_step_last_in_source_order_wins_and_is_counted(store, tmp_path):
    f = write_fj(tmp_path / "a.fj", rows("r", "loss", [1, 2, 3, 2, 3, 4], [1.0, 2.0, 3.0, 20.0, 30.0, 4.0]))
    rep = store.ingest([f], mods=MODS)
    c = store.curves(run="r", metric="loss")
    assert c["step"].to_list() == [1, 2, 3, 4]
    assert c["value"].to_list() == [1.0, 20.0, 30.0, 4.0]
    assert rep.runs[0].replaced == 2 and rep.sources[0].replaced == 2 and rep.sources[0].points == 6
    assert store.runs()["replaced"].to_list() == [2]
    ev = store.events(run="r")
    assert ev.filter(pl.col("kind") == "resume")["step"].to_list() == [2]


def test_same_source_twice_changes_nothing(store, tmp_path):
    f = write_fj(tmp_path / "a.fj", rows("r", "loss", [1, 2], [1.0, 2.0]))
    store.ingest([f], mods=MODS)
    before = snapshot(store.path)
    rep = store.ingest([f], mods=MODS)
    assert [r.status for r in rep.runs] == ["unchanged"] and rep.sources[0].status == "unchanged"
    assert snapshot(store.path) == before


def test_changed_source_replaces_the_run(store, tmp_path):
    f = write_fj(tmp_path / "a.fj", rows("r", "loss", [1, 2, 3], [1.0, 2.0, 3.0]))
    store.ingest([f], mods=MODS)
    write_fj(f, rows("r", "loss", [1, 2], [5.0, 6.0]))
    rep = store.ingest([f], mods=MODS)
    assert rep.runs[0].status == "updated"
    assert store.curves(run="r")["value"].to_list() == [5.0, 6.0]
    assert store.runs().height == 1


def test_sources_of_one_run_in_one_call_are_merged_in_order(store, tmp_path):
    a = write_fj(tmp_path / "x" / "a.fj", rows("r", "loss", [1, 2], [1.0, 2.0]))
    b = write_fj(tmp_path / "x" / "b.fj", rows("r", "loss", [2, 3], [20.0, 3.0]))
    rep = store.ingest([a, b], mods=MODS)
    assert store.curves(run="r")["value"].to_list() == [1.0, 20.0, 3.0]
    assert rep.runs[0].replaced == 1 and rep.runs[0].sources == [str(a), str(b)]
    # --run puts everything under one name
    rep = store.ingest([tmp_path / "x"], run="merged", mods=MODS)
    assert store.curves(run="merged")["value"].to_list() == [1.0, 20.0, 3.0]


def _bad_cases(tmp_path):
    d = tmp_path / "bad"
    return {
        "truncated_json": write_fj(d / "trunc.fj", [json.dumps(dict(run="x", metric="loss", step=1, value=1.0)),
                                                    '{"run": "x", "metric": "lo']),
        "non_numeric_value": write_fj(d / "nonnum.fj", rows("x", "loss", [1, 2], [1.0, "4.2e3.1"])),
        "unknown_format": write_fj(d / "notes.txt", ["hello"]),
        "hostile_run_control_char": write_fj(d / "ctl.fj", rows("evil\x1b[2Jrun", "loss", [1], [1.0])),
        "empty_run_name": write_fj(d / "empty.fj", rows("", "loss", [1], [1.0])),
        "negative_step": write_fj(d / "neg.fj", rows("x", "loss", [1, -5], [1.0, 2.0])),
        "metric_control_char": write_fj(d / "mctl.fj", rows("x", "lo\nss", [1], [1.0])),
        "step_past_int64": write_fj(d / "big.fj", rows("x", "loss", [1, 2**63], [1.0, 2.0])),
        "missing_path": d / "does-not-exist.fj",
    }


@pytest.mark.parametrize("case", ["truncated_json", "non_numeric_value", "unknown_format",
                                  "hostile_run_control_char", "empty_run_name", "negative_step",
                                  "metric_control_char", "step_past_int64", "missing_path"])
def test_failed_ingest_leaves_store_byte_for_byte_unchanged(store, tmp_path, case):
    store.ingest([write_fj(tmp_path / "ok.fj", rows("ok", "loss", [1, 2], [1.0, 2.0]))], mods=MODS)
    good = write_fj(tmp_path / "good2.fj", rows("new", "loss", [1], [1.0]))
    bad = _bad_cases(tmp_path)[case]
    before = snapshot(store.path)
    with pytest.raises((IngestError, StoreError)) as info:
        store.ingest([good, bad], mods=MODS)
    assert snapshot(store.path) == before
    msg = str(info.value)
    assert bad.name in msg, msg  # the error names the file
    if case == "truncated_json":
        assert "line 2" in msg
    if case == "negative_step":
        assert "-5" in msg and info.value.step == -5
    if case == "step_past_int64":
        assert "9223372036854775808" in msg.replace(",", "")
    if case == "unknown_format":
        assert isinstance(info.value, UnknownFormatError)
    assert store.run_names() == ["ok"]


def test_step_past_int64_in_a_uint64_table_names_the_step(store, tmp_path):
    t = make_table("r", "loss", [1], [1.0])
    t = t.set_column(2, "step", pa.array([2**63 + 7], pa.uint64()))
    mod = _module_returning(Parsed("x", str(tmp_path / "f"), t))
    (tmp_path / "f").write_text("x")
    with pytest.raises(IngestError, match="9223372036854775815"):
        store.ingest([tmp_path / "f"], mods=[mod])


def _module_returning(parsed):
    import types
    return types.SimpleNamespace(FORMAT="x", sniff=lambda p: True, read=lambda p, run=None, options=None: parsed)


@pytest.mark.parametrize("name", ["a/../../b", "../../etc/passwd", "/abs", "<script>alert(1)</script>", "..",
                                  "C:\\Windows\\x", "run with spaces", "ünïcødé/日本", "x" * 300])
def test_hostile_run_names_are_data_not_paths(store, tmp_path, name):
    f = write_fj(tmp_path / "h.fj", rows(name, "<b>loss</b>", [1, 2], [3.0, 4.0]))
    store.ingest([f], mods=MODS)
    files = [p for p in store.path.rglob("*") if p.is_file()]
    for p in files:
        assert p.resolve().is_relative_to(store.path.resolve())
    curve_files = sorted(p.name for p in (store.path / "curves").iterdir())
    assert curve_files == [f"{run_key(name)}.parquet"]
    assert all(c in "0123456789abcdef" for c in curve_files[0][:-8])
    c = store.curves(run=name, metric="<b>loss</b>")
    assert c["value"].to_list() == [3.0, 4.0] and c["run"].to_list() == [name, name]
    assert store.run_names() == [name]


def test_one_run_query_reads_only_that_runs_file(store, tmp_path):
    store.ingest([write_fj(tmp_path / "a.fj", rows("a", "loss", [1, 2], [1.0, 2.0])
                           + rows("a", "acc", [1], [0.5]))], mods=MODS)
    store.ingest([write_fj(tmp_path / "b.fj", rows("b", "loss", [1], [9.0]))], mods=MODS)
    other = store.path / "curves" / f"{run_key('b')}.parquet"
    other.write_bytes(b"garbage, not parquet")
    assert store.curves(run="a", metric="loss")["value"].to_list() == [1.0, 2.0]
    assert store.curve_files("a") == [store.path / "curves" / f"{run_key('a')}.parquet"]
    with pytest.raises(StoreError, match="not a readable Parquet file"):
        store.curves()


def test_curves_files_have_one_metric_per_row_group_sorted(store, tmp_path):
    r = []
    for m in ["zeta", "alpha", "mid"]:
        r += rows("r", m, [5, 1, 3], [1.0, 2.0, 3.0])
    store.ingest([write_fj(tmp_path / "a.fj", r)], mods=MODS)
    md = pq.ParquetFile(store.curve_files("r")[0]).metadata
    mi = md.schema.names.index("metric")
    stats = [(md.row_group(i).column(mi).statistics.min, md.row_group(i).column(mi).statistics.max)
             for i in range(md.num_row_groups)]
    assert stats == [("alpha", "alpha"), ("mid", "mid"), ("zeta", "zeta")]
    assert md.row_group(0).column(0).compression == "ZSTD"
    plan_text = store.scan_curves(run="r", metric="mid").explain()
    assert "mid" in plan_text  # the metric filter reaches the scan


def test_unknown_schema_version_is_refused(store, tmp_path):
    store.ingest([write_fj(tmp_path / "a.fj", rows("r", "loss", [1], [1.0]))], mods=MODS)
    f = store.path / "runs.parquet"
    t = pq.read_table(f)
    t = t.replace_schema_metadata({b"losscope.table": b"runs", b"losscope.version": b"99"})
    pq.write_table(t, f)
    with pytest.raises(StoreError, match="schema version 99"):
        Store(store.path).runs()


def test_non_store_folder_is_refused(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("x")
    with pytest.raises(StoreError, match="not a losscope store"):
        Store(tmp_path / "home")


def test_write_table_replaces_rows_of_given_runs(store, tmp_path):
    store.ingest([write_fj(tmp_path / "a.fj", rows("a", "loss", [1], [1.0]) + rows("b", "loss", [1], [1.0]))],
                 mods=MODS)
    seg = lambda run, k: pl.DataFrame({"run": [run], "metric": ["loss"], "step_start": [0], "step_end": [k],  # noqa: E731
                                       "kind": ["plateau"], "slope": [0.0], "slope_se": [0.1], "level": [1.0]})
    store.write_table("segments", pl.concat([seg("a", 1), seg("b", 2)]))
    store.write_table("segments", seg("a", 10), runs=["a"])
    t = store.table("segments").sort("run")
    assert t["run"].to_list() == ["a", "b"] and t["step_end"].to_list() == [10, 2]
    with pytest.raises(StoreError, match="unknown column"):
        store.write_table("segments", seg("a", 1).with_columns(pl.lit(1).alias("bogus")))
    with pytest.raises(StoreError, match="unknown table"):
        store.write_table("nope", seg("a", 1))
    with pytest.raises(StoreError, match="not among runs"):
        store.write_table("segments", seg("b", 1), runs=["a"])
    assert store.table("segments").height == 2


def test_user_events_survive_reingest_and_need_a_known_run(store, tmp_path):
    f = write_fj(tmp_path / "a.fj", rows("r", "loss", [1, 2], [1.0, 2.0]))
    store.ingest([f], mods=MODS)
    assert store.add_events(pl.DataFrame({"run": ["r"], "step": [2], "kind": ["data_refresh"],
                                          "detail": ["new shard"]})) == 1
    write_fj(f, rows("r", "loss", [1, 2, 3], [1.0, 2.0, 3.0]))
    store.ingest([f], mods=MODS)
    ev = store.events("r")
    assert ev.filter(pl.col("source") == "user")["detail"].to_list() == ["new shard"]
    with pytest.raises(StoreError, match="no such run"):
        store.add_events(pl.DataFrame({"run": ["ghost"], "step": [1], "kind": ["note"], "detail": [""]}))
    with pytest.raises(StoreError, match="unknown"):
        store.add_events(pl.DataFrame({"run": ["r"], "step": [1], "kind": ["party"], "detail": [""]}))


def test_importer_events_are_stored(store, tmp_path):
    f = write_fj(tmp_path / "a.fj", rows("r", "loss", [1], [1.0])
                 + [dict(run="r", step=1, event="phase", detail="pretrain")])
    store.ingest([f], mods=MODS)
    ev = store.events("r")
    assert ev.select("step", "kind", "detail", "source").rows() == [(1, "phase", "pretrain", "log")]


def test_mapping_overrides_inference(store, tmp_path):
    m = tmp_path / "map.toml"
    m.write_text('[metrics."weird_thing"]\nkind = "loss"\nsplit = "val"\n[metrics."acc*"]\ndirection = "min"\n')
    f = write_fj(tmp_path / "a.fj", rows("r", "weird_thing", [1], [1.0]) + rows("r", "accuracy", [1], [1.0])
                 + rows("r", "loss", [1], [1.0]))
    store.ingest([f], mapping=m, mods=MODS)
    met = {r["metric"]: r for r in store.metrics().iter_rows(named=True)}
    assert (met["weird_thing"]["kind"], met["weird_thing"]["split"], met["weird_thing"]["direction"],
            met["weird_thing"]["inferred"]) == ("loss", "val", "min", False)
    assert (met["accuracy"]["direction"], met["accuracy"]["inferred"]) == ("min", False)
    assert (met["loss"]["direction"], met["loss"]["inferred"]) == ("min", True)
    # a new mapping is a change; the same mapping again is not
    assert store.ingest([f], mapping=m, mods=MODS).runs[0].status == "unchanged"


def test_walk_dispatches_sources_and_lists_unread_files(tmp_path):
    root = tmp_path / "logs"
    write_fj(root / "run1" / "metrics.fj", rows("r1", "loss", [1], [1.0]))
    write_fj(root / "run2" / "FAKE_RUN", ["marker"])
    write_fj(root / "run2" / "a.fj", rows("r2", "loss", [1], [1.0]))
    write_fj(root / "run2" / "b.fj", rows("r2", "acc", [1], [1.0]))
    write_fj(root / "README.md", ["# notes"])
    write_fj(root / ".hidden" / "x.fj", rows("h", "loss", [1], [1.0]))
    p = plan(root, mods=MODS)
    assert [(s.relative_to(root).as_posix(), m.FORMAT) for s, m in p.sources] == [
        ("run1/metrics.fj", "fake"), ("run2", "fake")]
    assert [s.relative_to(root).as_posix() for s in p.skipped] == ["README.md"]
    with pytest.raises(UnknownFormatError, match="README.md"):
        plan(root / "README.md", mods=MODS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownFormatError, match="empty"):
        plan(tmp_path / "empty", mods=MODS)
    s = Store(tmp_path / "st")
    rep = s.ingest([root], mods=MODS)
    assert s.run_names() == ["r1", "r2"] and rep.skipped == [str(root / "README.md")]


def _ingest_in_process(store_path, src):
    Store(store_path).ingest([src], mods=MODS)


def test_two_processes_ingesting_at_once_keep_the_store_whole(tmp_path):
    store_path = tmp_path / "store"
    Store(store_path)
    srcs = [write_fj(tmp_path / f"p{i}.fj", rows(f"run{i}", "loss", range(2000), np.arange(2000.0)))
            for i in range(4)]
    ctx = multiprocessing.get_context("spawn")  # polars threads do not survive fork
    procs = [ctx.Process(target=_ingest_in_process, args=(store_path, s)) for s in srcs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    s = Store(store_path)
    assert s.run_names() == ["run0", "run1", "run2", "run3"]
    assert s.metrics().height == 4
    assert s.curves().height == 8000
    assert not [p for p in store_path.rglob("*.tmp")]


# ------------------------------------------------------------------ with the real importers

@pytest.mark.slow
def test_real_corpus_ingests_and_a_second_ingest_is_a_noop(real_dir, tmp_path):
    s = Store(tmp_path / "store")
    rep = s.ingest(sorted(p for p in real_dir.iterdir() if p.is_dir()))
    assert rep.runs and all(r.status == "new" for r in rep.runs)
    assert s.runs().height == len(rep.runs) and s.curves().height == sum(r.points for r in rep.runs)
    m = s.metrics()
    assert m.filter(pl.col("metric") == "eval_g0_loss")[["split", "kind", "role", "direction"]].row(0) == (
        "val", "loss", "g0", "min")
    before = snapshot(s.path)
    rep2 = s.ingest(sorted(p for p in real_dir.iterdir() if p.is_dir()))
    assert all(r.status == "unchanged" for r in rep2.runs)
    assert snapshot(s.path) == before


@pytest.mark.parametrize("case", ["truncated_trainer_state", "corrupt_event_file"])
def test_real_importer_failures_leave_store_unchanged(real_dir, tmp_path, case):
    s = Store(tmp_path / "store")
    s.ingest([real_dir / "hf_trainer_state" / "qlora-fine-tune-poludmik"])
    before = snapshot(s.path)
    bad = tmp_path / "bad"
    if case == "truncated_trainer_state":
        src = real_dir / "hf_trainer_state" / "whisper-large-v2-japanese" / "trainer_state.json"
        target = bad / "whisper" / "trainer_state.json"
        target.parent.mkdir(parents=True)
        target.write_bytes(src.read_bytes()[:5000])
    else:
        src = next((real_dir / "tensorboard" / "lightning-lstm-textgen").rglob("events.out.tfevents.*"))
        target = bad / "tb" / src.name
        target.parent.mkdir(parents=True)
        data = bytearray(src.read_bytes())
        data[200:260] = b"\xff" * 60
        target.write_bytes(bytes(data))
    with pytest.raises(IngestError) as info:
        s.ingest([real_dir / "hf_trainer_state" / "metamath-sft", target])
    assert target.name in str(info.value)
    assert snapshot(s.path) == before
