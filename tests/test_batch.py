"""engine.batch: skip unchanged runs, process pool and Dask give the serial findings,
one bad run does not stop the others."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.batch import analysed_table, run_batch
from engine.errors import StoreError
from engine.store import Store

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "runs"
RUNS = ("sample-loss-spike", "sample-overfitting", "sample-healthy-sft")


def _copy(tmp_path, names=RUNS) -> Path:
    if not SAMPLES.is_dir():
        pytest.skip("data/runs not generated")
    src = tmp_path / "src"
    src.mkdir()
    for n in names:
        shutil.copy(SAMPLES / f"{n}.parquet", src / f"{n}.parquet")
    return src


@pytest.fixture(scope="module")
def serial_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batch")
    store = Store(tmp / "store")
    store.ingest(_copy(tmp))
    first = run_batch(store, executor="serial")
    return store, first


def _norm(f: pl.DataFrame) -> pl.DataFrame:
    f = f.with_columns(pl.col("metrics").list.join("\x1f"))
    return f.sort(f.columns)  # every column: two findings may tie on run, code, step and message


def test_first_batch_writes_every_table(serial_store):
    store, first = serial_store
    assert sorted(first.analysed) == sorted(RUNS) and not first.skipped and not first.failed
    for name in ("features", "segments", "spikes", "findings"):
        t = store.table(name)
        assert set(t["run"]) <= set(RUNS) and t.height, name
    assert set(store.table("features")["run"]) == set(RUNS)
    a = analysed_table(store)
    assert sorted(a["run"]) == sorted(RUNS)
    runs = store.runs()
    assert dict(zip(a["run"], a["content_hash"])) == dict(zip(runs["run"], runs["content_hash"]))


def test_rerun_does_no_work_and_returns_the_same_findings(serial_store, monkeypatch):
    store, first = serial_store
    import engine.batch as batch

    def boom(*a, **k):
        raise AssertionError("analyse_one called on an unchanged store")
    monkeypatch.setattr(batch, "analyse_one", boom)
    again = run_batch(store, executor="local", workers=2)
    assert again.analysed == [] and sorted(again.skipped) == sorted(RUNS) and again.executor == "none"
    assert again.findings.equals(first.findings)


def test_changed_content_events_or_thresholds_reanalyse_only_what_changed(tmp_path):
    src = _copy(tmp_path, RUNS[:2])
    store = Store(tmp_path / "store")
    store.ingest(src)
    assert sorted(run_batch(store, executor="serial").analysed) == sorted(RUNS[:2])
    # new content for one run: same name, one value changed
    f = src / f"{RUNS[0]}.parquet"
    t = pq.read_table(f)
    v = t.column("value").to_numpy().copy()
    v[-1] += 1.0
    pq.write_table(t.set_column(3, "value", pa.array(v)), f)
    store.ingest(src)
    assert run_batch(store, executor="serial").analysed == [RUNS[0]]
    store.add_events(pl.DataFrame({"run": [RUNS[1]], "step": [100], "kind": ["data_refresh"], "detail": ["x"]}))
    assert run_batch(store, executor="serial").analysed == [RUNS[1]]
    assert run_batch(store, executor="serial", thresholds={"OVERFITTING": {"min_rise_rel": 0.5}}).analysed \
        == sorted(RUNS[:2])
    assert run_batch(store, executor="serial", force=True).skipped == []


def test_local_process_pool_gives_the_serial_findings(serial_store, tmp_path):
    store, first = serial_store
    other = Store(tmp_path / "store")
    other.ingest(_copy(tmp_path))
    got = run_batch(other, executor="local", workers=2)
    assert got.executor == "local" and sorted(got.analysed) == sorted(RUNS)
    assert _norm(got.findings).equals(_norm(first.findings))
    for name in ("features", "segments", "spikes"):
        a = store.table(name).sort("run", "metric", *(["step"] if name == "spikes" else
                                                      ["step_start"] if name == "segments" else []))
        b = other.table(name).sort(a.columns[:2] + a.columns[2:3] if name != "features" else ["run", "metric"])
        assert a.sort(a.columns).equals(b.sort(b.columns)), name


def test_dask_local_cluster_gives_the_serial_findings(serial_store, tmp_path):
    distributed = pytest.importorskip("distributed")
    store, first = serial_store
    other = Store(tmp_path / "store")
    other.ingest(_copy(tmp_path))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        got = run_batch(other, executor="dask", scheduler=client)
    assert got.executor == "dask" and sorted(got.analysed) == sorted(RUNS)
    assert _norm(got.findings).equals(_norm(first.findings))


def test_a_broken_run_fails_alone(tmp_path):
    src = _copy(tmp_path, RUNS[:2])
    store = Store(tmp_path / "store")
    store.ingest(src)
    broken = store.curve_files(RUNS[0])[0]
    broken.write_bytes(b"not parquet at all")
    got = run_batch(store, executor="serial")
    assert got.analysed == [RUNS[1]]
    assert [f.run for f in got.failed] == [RUNS[0]] and got.failed[0].bad_input
    assert "not a readable Parquet file" in got.failed[0].error
    assert set(got.findings["run"]) == {RUNS[1]}
    assert RUNS[0] not in set(analysed_table(store)["run"])


def test_unknown_analysed_version_is_refused(tmp_path):
    store = Store(tmp_path / "store")
    pq.write_table(pa.table({"run": ["a"]}).replace_schema_metadata({"losscope.table": "analysed",
                                                                     "losscope.version": "9"}),
                   tmp_path / "store" / "analysed.parquet")
    with pytest.raises(StoreError, match="analysed/1"):
        analysed_table(store)


def test_bad_arguments_are_config_errors(serial_store):
    from engine.errors import ConfigError
    store, _ = serial_store
    with pytest.raises(ConfigError, match="executor"):
        run_batch(store, executor="ray")
    with pytest.raises(ConfigError, match="workers"):
        run_batch(store, workers=0)
    with pytest.raises(StoreError, match="no such run"):
        run_batch(store, runs=["nope"])
