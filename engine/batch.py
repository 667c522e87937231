"""Batch: analyse every run of a store in parallel and write the results back.

``run_batch(store, runs=None, ...)`` analyses each run (features, segments, spikes,
then the rules' findings) with one of three executors:

- ``"auto"`` (default): ``"local"`` when at least ``AUTO_MIN_RUNS`` runs need an
  analysis, else ``"serial"``. A fresh worker process pays a fixed start-up cost
  (imports of numba, polars, scipy and statsmodels, loading the kernel cache: 3 to 30 s
  depending on load, measured in benchmarks/bench_batch.py), which a dozen runs at
  ~0.3 s each never earn back.
- ``"local"``: a ``concurrent.futures.ProcessPoolExecutor`` with the *spawn*
  start method (fork hangs once polars has started its thread pool in the parent; see
  docs.pola.rs "multiprocessing"). Every numba kernel the analysis uses is compiled in
  the parent first (one warm-up analysis of a small synthetic run), so the workers load
  the cache instead of compiling into it at the same time (``cache=True`` can race).
  Workers run with ``POLARS_MAX_THREADS=1`` and ``NUMBA_NUM_THREADS=1`` so N workers use
  N cores. With one run to analyse, or ``workers=1``, the work runs in this process.
- ``"serial"``: in this process, one run after the other.
- ``"dask"``: ``client.map`` of the same per-run function on a Dask cluster
  (``scheduler="tcp://host:8786"``, a ``distributed.Client``, or a ``LocalCluster``
  started for the call when neither is given). Workers read the same Parquet store (the
  path must be visible to them) and return their tables; this process writes them.

Results are written by the calling process only, in chunks (every ``flush_every`` runs),
table by table (features, segments, spikes, findings) and then the commit record
``analysed.parquet``: one row per analysed run with the run's ``content_hash`` (from the
runs table), a hash of its user events, the hash of the configuration the analysis
used (thresholds, analysis params and the losscope version) and when it ran. A run whose
record matches its current content, events and configuration is skipped: re-running a
batch over an unchanged store does no analysis at all (``force=True`` redoes it). A
process that dies between a table write and the record leaves the record stale, so the
next batch redoes those runs.

A run that fails (bad input: a LosscopeError, or a bug) does not stop the others: it is
listed in ``BatchResult.failed`` with its error, and its old results are left in place.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

ANALYSED = "analysed"
ANALYSED_SCHEMA = pa.schema([
    pa.field("run", pa.string(), nullable=False),
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("events_hash", pa.string(), nullable=False),
    pa.field("config_hash", pa.string(), nullable=False),
    pa.field("version", pa.string(), nullable=False),
    pa.field("analysed_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("seconds", pa.float64(), nullable=False),
], metadata={b"losscope.table": b"analysed", b"losscope.version": b"1"})
RESULT_TABLES = ("features", "segments", "spikes", "findings")
EXECUTORS = ("auto", "local", "serial", "dask")
AUTO_MIN_RUNS = 64


def losscope_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("losscope")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


@dataclass
class Failure:
    run: str
    error: str  # one line
    kind: str  # the exception class name
    bad_input: bool  # a LosscopeError (exit 2) rather than a bug


@dataclass
class BatchResult:
    findings: pl.DataFrame
    analysed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    executor: str = "serial"

    def summary(self) -> str:
        return (f"{len(self.analysed):,} run(s) analysed, {len(self.skipped):,} unchanged (skipped), "
                f"{len(self.failed):,} failed in {self.seconds:.1f} s ({self.executor})")


# ---------------------------------------------------------------------------------- the per-run work

def analyse_one(store_path: str, run: str, thresholds, params=None) -> dict:
    """Analyse one run of the store at ``store_path`` and apply the rules.

    Returns {"run", "seconds", "features", "segments", "spikes", "findings"} (Arrow
    tables) or {"run", "error", "kind", "bad_input"} when the run fails. Reads the
    store, writes nothing: this is the function workers run.
    """
    from engine.diagnose import analyse, diagnose_tables
    from engine.errors import LosscopeError
    from engine.store import Store

    t0 = time.perf_counter()
    try:
        store = Store(store_path, create=False)
        tables = analyse(store, [run], params=params)
        findings = diagnose_tables(tables, thresholds=thresholds, runs=[run])
    except LosscopeError as e:
        return {"run": run, "error": str(e).splitlines()[0], "kind": type(e).__name__, "bad_input": True}
    except Exception as e:  # noqa: BLE001 - a bug in one run must not stop the batch
        return {"run": run, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                "kind": type(e).__name__, "bad_input": False}
    out = {k: tables[k].to_arrow() for k in ("features", "segments", "spikes")}
    out["findings"] = findings.to_arrow()
    out["run"] = run
    out["seconds"] = time.perf_counter() - t0
    return out


def _worker_init() -> None:
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")


_warmed = False


def warm_up() -> float:
    """Compile (or load from the cache) every numba kernel the analysis uses, here.

    Runs the whole analysis on a small synthetic run that goes through every path that
    calls a kernel: a long noisy train loss with warmup, a spike, a plateau and NaN/Inf
    values (block averaging, multi-scale changepoints, spikes, power-law fit), a short
    uneven val loss, an accuracy curve, a learning rate and a grad norm. Returns seconds.
    """
    global _warmed
    if _warmed:
        return 0.0
    import numpy as np

    from engine.diagnose import analyse_frames, diagnose_tables

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    n = 6000
    steps = np.arange(1, n + 1, dtype=np.int64) * 10
    loss = 2.0 + 3.0 * (steps / 10.0) ** -0.4 + 0.02 * rng.standard_normal(n)
    loss[3000:3005] += 1.5
    loss[4000:] = loss[4000]
    loss[4000:] += 0.01 * rng.standard_normal(n - 4000)
    loss[[100, 2000]] = np.nan
    loss[2500] = np.inf
    val_steps = np.unique(np.concatenate([np.arange(1, 8) * 50, np.arange(1, 60) * 1000]))
    val = 2.2 + 3.0 * (val_steps / 10.0) ** -0.4 + 0.01 * rng.standard_normal(val_steps.size)
    acc = np.clip(1.0 - val / 6.0, 0, 1)
    lr = np.where(steps < 1000, steps / 1000 * 3e-4, 3e-4 * 0.5 * (1 + np.cos(np.pi * steps / steps[-1])))
    grad = 1.0 + 0.1 * rng.standard_normal(n)
    grad[3000:3005] += 20
    parts = [("train/loss", steps, loss), ("val/loss", val_steps, val), ("val/accuracy", val_steps, acc),
             ("lr", steps, lr), ("grad_norm", steps, grad)]
    frame = pl.concat([pl.DataFrame({"run": "warm-up", "metric": m, "step": s, "value": v}) for m, s, v in parts])
    tables = analyse_frames(frame)
    diagnose_tables(tables)
    _warmed = True
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------- hashes and state

def config_hash(thresholds, params=None) -> str:
    """Hash of what the analysis depends on besides the data: thresholds, params, version."""
    from dataclasses import asdict, is_dataclass

    th = {code: t.as_dict() for code, t in sorted(thresholds.items())}
    p = asdict(params) if is_dataclass(params) else params
    text = json.dumps({"thresholds": th, "params": p, "version": losscope_version()}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _events_hashes(store) -> dict[str, str]:
    ev = store.events()
    if ev.height == 0:
        return {}
    out = {}
    for (run,), part in ev.sort("run", "step", "kind", "detail").partition_by("run", as_dict=True).items():
        text = "\n".join(f"{s}\t{k}\t{d}\t{src}" for s, k, d, src in part.select("step", "kind", "detail", "source")
                         .iter_rows())
        out[run] = hashlib.sha256(text.encode()).hexdigest()
    return out


def analysed_table(store) -> pl.DataFrame:
    """The commit records of past analyses (empty when none)."""
    from engine.errors import StoreError

    path = Path(store.path) / f"{ANALYSED}.parquet"
    if not path.is_file():
        return pl.from_arrow(ANALYSED_SCHEMA.empty_table())
    import pyarrow.parquet as pq
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"{path.name} is not a readable Parquet file: {e}", path=str(store.path)) from None
    if meta.get(b"losscope.table") != b"analysed" or meta.get(b"losscope.version") != b"1":
        raise StoreError(f"{path.name} has table/version {meta.get(b'losscope.table')!r}/"
                         f"{meta.get(b'losscope.version')!r}; this losscope reads analysed/1. Upgrade losscope "
                         "or delete the file (the next batch redoes every run).", path=str(store.path))
    return pl.read_parquet(path)


def _write_analysed(store, rows: list[dict]) -> None:
    names = [r["run"] for r in rows]
    new = pa.Table.from_pylist(rows, schema=ANALYSED_SCHEMA)
    with store._lock():
        old = analysed_table(store).filter(~pl.col("run").is_in(names))
        merged = pa.concat_tables([old.to_arrow().cast(ANALYSED_SCHEMA), new]).sort_by("run")
        store._write_parquet(Path(store.path) / f"{ANALYSED}.parquet", merged)


def plan_runs(store, runs, thresholds, params=None, *, force: bool = False):
    """(to_do, skipped, keys): which of ``runs`` need an analysis, and the key of each."""
    runs_t = store.runs()
    content = dict(zip(runs_t["run"].to_list(), runs_t["content_hash"].to_list()))
    from engine.errors import StoreError
    missing = [r for r in runs if r not in content]
    if missing:
        raise StoreError(f"no such run in the store ({len(missing)} missing)", path=str(store.path), run=missing[0])
    ev = _events_hashes(store)
    cfg = config_hash(thresholds, params)
    keys = {r: (content[r], ev.get(r, ""), cfg) for r in runs}
    done = {}
    if not force:
        a = analysed_table(store)
        done = {r: (c, e, g) for r, c, e, g in a.select("run", "content_hash", "events_hash", "config_hash").iter_rows()}
    to_do = [r for r in runs if done.get(r) != keys[r]]
    skipped = [r for r in runs if done.get(r) == keys[r]]
    return to_do, skipped, keys


# ---------------------------------------------------------------------------------- executors

@contextlib.contextmanager
def _worker_env():
    """Worker thread budgets, inherited by spawned processes; restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("POLARS_MAX_THREADS", "NUMBA_NUM_THREADS")}
    for k in saved:
        os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _serial(store_path, runs, th, params):
    for r in runs:
        yield analyse_one(store_path, r, th, params)


def _local(store_path, runs, th, params, workers):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    warm_up()
    with _worker_env(), ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_init) as pool:
        futures = [pool.submit(analyse_one, store_path, r, th, params) for r in runs]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()


def _dask(store_path, runs, th, params, workers, scheduler):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - dask is a dev/optional dependency
        from engine.errors import ConfigError
        raise ConfigError("the dask executor needs dask[distributed]: pip install 'dask[distributed]'") from None
    own_cluster = own_client = None
    if isinstance(scheduler, Client):
        client = scheduler
    else:
        address = scheduler or os.environ.get("LOSSCOPE_DASK_ADDRESS")
        if address:
            client = own_client = Client(address)
        else:
            warm_up()
            with _worker_env():
                own_cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
            client = own_client = Client(own_cluster)
    try:
        futures = client.map(analyse_one, [store_path] * len(runs), runs, thresholds=th, params=params, pure=False)
        for fut in as_completed(futures):
            yield fut.result()
            fut.release()
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------------------------- the batch

def run_batch(store, runs=None, *, thresholds=None, params=None, executor: str = "auto", workers: int | None = None,
              scheduler=None, force: bool = False, progress=None, flush_every: int = 100) -> BatchResult:
    """Analyse the runs of ``store`` that changed since their last analysis; write the
    results back; return every requested run's findings (see the module docstring).

    store: a Store or a store folder. runs: None (every run), a name or a list.
    thresholds: None, a TOML path or a dict (as ``engine.rules.resolve_thresholds``).
    executor: "auto", "local" (spawned processes), "serial" or "dask" (``scheduler``: an address,
    a distributed.Client, or None for a LocalCluster of ``workers`` processes).
    progress(done, total, run): called after each analysed run.
    """
    from engine.diagnose import empty_findings, sort_findings
    from engine.errors import ConfigError
    from engine.rules import resolve_thresholds
    from engine.store import Store

    t0 = time.perf_counter()
    if executor not in EXECUTORS:
        raise ConfigError(f"executor {executor!r} unknown; known: {', '.join(EXECUTORS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if not isinstance(store, Store):
        store = Store(store, create=False)
    th = resolve_thresholds(thresholds)
    names = store.run_names() if runs is None else ([runs] if isinstance(runs, str) else list(dict.fromkeys(runs)))
    to_do, skipped, keys = plan_runs(store, names, th, params, force=force)
    workers = workers or _default_workers()
    store_path = str(Path(store.path).resolve())
    used = executor
    if executor == "auto":
        used = "local" if len(to_do) >= AUTO_MIN_RUNS else "serial"
    if used == "local" and (len(to_do) < 2 or workers == 1):
        used = "serial"
    if not to_do:
        used = "none"
    result = BatchResult(findings=empty_findings(), skipped=skipped, executor=used)

    if used == "serial":
        stream = _serial(store_path, to_do, th, params)
    elif used == "local":
        stream = _local(store_path, to_do, th, params, min(workers, len(to_do)))
    elif used == "dask":
        stream = _dask(store_path, to_do, th, params, min(workers, len(to_do)), scheduler)
    else:
        stream = iter(())

    pending: list[dict] = []

    def flush():
        if not pending:
            return
        done = [p["run"] for p in pending]
        for name in RESULT_TABLES:
            frame = pl.concat([pl.from_arrow(p[name]) for p in pending], how="vertical_relaxed")
            store.write_table(name, frame, runs=done)
        now = _dt.datetime.now(_dt.timezone.utc)
        _write_analysed(store, [dict(run=p["run"], content_hash=keys[p["run"]][0], events_hash=keys[p["run"]][1],
                                     config_hash=keys[p["run"]][2], version=losscope_version(), analysed_at=now,
                                     seconds=float(p["seconds"])) for p in pending])
        result.analysed.extend(done)
        pending.clear()

    last_flush = time.monotonic()
    try:
        for i, out in enumerate(stream):
            if "error" in out:
                result.failed.append(Failure(out["run"], out["error"], out["kind"], out["bad_input"]))
            else:
                pending.append(out)
            if progress is not None:
                progress(i + 1, len(to_do), out["run"])
            if len(pending) >= flush_every or (pending and time.monotonic() - last_flush > 30):
                flush()
                last_flush = time.monotonic()
    finally:
        flush()  # keep what finished, even when interrupted
    ok = [r for r in names if r not in {f.run for f in result.failed}]
    found = store.table("findings")
    found = found.filter(pl.col("run").is_in(ok)) if found.height else found
    result.findings = sort_findings(found)
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["BatchResult", "Failure", "analyse_one", "analysed_table", "config_hash", "plan_runs", "run_batch",
           "warm_up"]
