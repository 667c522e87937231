"""Diagnose runs: ingest (when needed) -> analyse -> rules -> findings.

``diagnose(source, ...)`` is the Python face of ``losscope diagnose``: ``source`` is a
path or a list of paths (any format the importers read, including a canonical long
Parquet/CSV with columns run, metric, step, value), a :class:`engine.store.Store`, or an
in-memory long frame (polars or pandas; columns run (optional), metric, step, value).
Without ``store=`` paths and frames are ingested into a temporary store that is
deleted afterwards; with ``store=`` (a Store or a folder) they are ingested there and
the analysis tables and findings are written back into it (Store.write_table).

``analyse(store_or_frame, runs=None)`` runs the per-curve analysis only and returns
the tables (features, segments, spikes, metrics, events).

Findings columns (schemas.FINDINGS): run, code, severity, confidence, metrics (names
as logged), step_start, step_end, message, evidence (JSON string), advice; sorted by
run, severity (critical, warning, info), step_start, code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl
import pyarrow as pa

from schemas import EVENTS, FINDINGS, METRICS

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


def empty_findings() -> pl.DataFrame:
    return pl.from_arrow(FINDINGS.empty_table())


def findings_frame(findings) -> pl.DataFrame:
    """Finding objects -> a polars frame with exactly the FINDINGS columns, sorted."""
    rows = [f.as_row() for f in findings]
    if not rows:
        return empty_findings()
    df = pl.from_arrow(pa.Table.from_pylist(rows, schema=FINDINGS))
    return sort_findings(df)


def sort_findings(df: pl.DataFrame) -> pl.DataFrame:
    if df.height == 0:
        return df
    rank = pl.col("severity").replace_strict(SEVERITY_RANK, default=3, return_dtype=pl.Int8)
    return (df.with_columns(rank.alias("_rank")).sort(["run", "_rank", "step_start", "code"], nulls_last=False)
            .drop("_rank"))


def _long_frame(frame) -> pl.DataFrame:
    """A polars or pandas long frame -> polars (run, metric, step, value)."""
    if not isinstance(frame, pl.DataFrame):
        try:
            frame = pl.from_pandas(frame)
        except Exception as e:  # noqa: BLE001 - anything that is not a frame
            raise TypeError(f"diagnose: cannot read a {type(frame).__name__} as a long frame: {e}") from None
    missing = [c for c in ("metric", "step", "value") if c not in frame.columns]
    if missing:
        from engine.errors import IngestError
        raise IngestError(f"in-memory frame lacks column(s) {', '.join(missing)}; expected run, metric, step, value",
                          path="<frame>")
    if "run" not in frame.columns:
        frame = frame.with_columns(pl.lit("run").alias("run"))
    return frame.select(pl.col("run").cast(pl.String), pl.col("metric").cast(pl.String),
                        pl.col("step").cast(pl.Int64), pl.col("value").cast(pl.Float64))


def analyse_frames(curves: pl.DataFrame, metrics: pl.DataFrame | None = None,
                   events: pl.DataFrame | None = None, *, params=None) -> dict[str, pl.DataFrame]:
    """The analysis of in-memory tables: curves (run, metric, step, value), metrics
    (roles; missing metrics get the inferred ones) and events. Returns features,
    segments, spikes, metrics and events frames."""
    from engine.analyse import analyse_run
    from engine.infer import infer_run

    if "run" not in curves.columns:
        curves = curves.with_columns(pl.lit("run").alias("run"))
    pairs = curves.select("run", "metric").unique().sort("run", "metric")
    known = set() if metrics is None else set(metrics.select("run", "metric").iter_rows())
    extra = []
    for (run,), group in pairs.group_by("run", maintain_order=True):
        missing = [m for m in group["metric"] if (run, m) not in known]
        if missing:
            # infer_run: per name, then plain `loss` next to `eval_loss` becomes the train split.
            for metric, role in infer_run(missing).items():
                extra.append(dict(run=run, metric=metric, **role.as_dict()))
    roles = metrics.select([f.name for f in METRICS]) if metrics is not None else pl.from_arrow(METRICS.empty_table())
    if extra:
        roles = pl.concat([roles, pl.from_arrow(pa.Table.from_pylist(extra, schema=METRICS))], how="vertical_relaxed")
    out = analyse_run(curves, roles, params=params)
    out["features"] = _add_last_nonfinite(out["features"], curves)
    out["metrics"] = roles
    out["events"] = events if events is not None else pl.from_arrow(EVENTS.empty_table())
    return out


def _add_last_nonfinite(features: pl.DataFrame, curves: pl.DataFrame) -> pl.DataFrame:
    """Put ``last_nonfinite_step`` into features.extra where the analysis did not
    (NONFINITE reports the range of non-finite steps, not only the first)."""
    import json

    bad = (curves.filter(~pl.col("value").is_finite()).group_by("run", "metric")
           .agg(pl.col("step").max().alias("_last")))
    if bad.height == 0:
        return features
    last = {(r, m): int(s) for r, m, s in bad.iter_rows()}
    extras = []
    for run, metric, extra in features.select("run", "metric", "extra").iter_rows():
        if (run, metric) in last:
            d = json.loads(extra) if extra else {}
            d.setdefault("last_nonfinite_step", last[(run, metric)])
            extra = json.dumps(d, sort_keys=True)
        extras.append(extra)
    return features.with_columns(pl.Series("extra", extras, dtype=pl.String))


def analyse(store_or_frame, runs=None, *, params=None, write: bool = False) -> dict[str, pl.DataFrame]:
    """Analyse every run (or ``runs``) of a Store or of an in-memory long frame.

    Returns {"features", "segments", "spikes", "metrics", "events"} polars frames.
    With a Store and ``write=True`` the features/segments/spikes of those runs are
    written back into it.
    """
    from engine.store import Store

    if isinstance(store_or_frame, (str, os.PathLike)):
        store_or_frame = Store(store_or_frame, create=False)
    if isinstance(store_or_frame, Store):
        store = store_or_frame
        names = store.run_names() if runs is None else ([runs] if isinstance(runs, str) else list(runs))
        parts = {k: [] for k in ("features", "segments", "spikes", "metrics", "events")}
        for run in names:
            t = analyse_frames(store.curves(run), store.metrics(run), store.events(run), params=params)
            for k in parts:
                parts[k].append(t[k])
            if write:
                for k in ("features", "segments", "spikes"):
                    store.write_table(k, t[k], runs=[run])
        return {k: (pl.concat(v, how="vertical_relaxed") if v else _empty(k)) for k, v in parts.items()}
    frame = _long_frame(store_or_frame)
    if runs is not None:
        frame = frame.filter(pl.col("run").is_in([runs] if isinstance(runs, str) else list(runs)))
    return analyse_frames(frame, params=params)


def _empty(name: str) -> pl.DataFrame:
    from schemas import TABLES
    return pl.from_arrow(TABLES[name].empty_table())


def diagnose_tables(tables: dict[str, pl.DataFrame], *, thresholds=None, runs=None) -> pl.DataFrame:
    """Rules over already analysed tables (as returned by ``analyse``)."""
    from engine.rules import resolve_thresholds, run_rules
    from engine.rules.base import RunContext

    th = resolve_thresholds(thresholds)
    names = sorted(set(tables["features"]["run"].to_list()))
    if runs is not None:
        keep = {runs} if isinstance(runs, str) else set(runs)
        names = [r for r in names if r in keep]
    found = []
    for run in names:
        ctx = RunContext(run, features=tables["features"], segments=tables["segments"], spikes=tables["spikes"],
                         metrics=tables.get("metrics"), events=tables.get("events"))
        found.extend(run_rules(ctx, th))
    return findings_frame(found)


def diagnose(source, *, store=None, thresholds=None, mapping=None, runs=None, params=None,
             progress=None) -> pl.DataFrame:
    """Findings of every run in ``source`` (see the module docstring) as a polars frame.

    thresholds: None (shipped defaults), a user TOML path, or a dict {code: {key: value}}.
    mapping: a metric-role mapping file (or Mapping) used when ingesting paths/frames.
    runs: restrict to these run names. Raises LosscopeError for bad input.
    """
    from engine.rules import resolve_thresholds
    from engine.store import Store

    th = resolve_thresholds(thresholds)  # a bad thresholds file fails before any work
    if isinstance(source, Store):
        return _diagnose_store(source, th, runs, params)
    tmp = None
    try:
        if store is None:
            tmp = tempfile.TemporaryDirectory(prefix="losscope-")
            st = Store(Path(tmp.name) / "store")
        else:
            st = store if isinstance(store, Store) else Store(store)
        if isinstance(source, (str, os.PathLike)) or (isinstance(source, (list, tuple)) and all(
                isinstance(p, (str, os.PathLike)) for p in source)):
            report = st.ingest(source, mapping=mapping, progress=progress)
            names = [r.run for r in report.runs]
        else:
            frame = _long_frame(source)
            folder = Path(tempfile.mkdtemp(prefix="losscope-frame-"))
            try:
                path = folder / "frame.parquet"
                frame.write_parquet(path)
                report = st.ingest(path, mapping=mapping)
                names = [r.run for r in report.runs]
            finally:
                for f in folder.iterdir():
                    f.unlink()
                folder.rmdir()
        if runs is not None:
            keep = {runs} if isinstance(runs, str) else set(runs)
            names = [r for r in names if r in keep]
        return _diagnose_store(st, th, names, params)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _diagnose_store(store, th, runs, params) -> pl.DataFrame:
    names = store.run_names() if runs is None else ([runs] if isinstance(runs, str) else list(runs))
    frames = []
    for run in names:
        tables = analyse(store, [run], params=params, write=True)
        f = diagnose_tables(tables, thresholds=th, runs=[run])
        store.write_table("findings", f, runs=[run])
        frames.append(f)
    return sort_findings(pl.concat(frames, how="vertical_relaxed")) if frames else empty_findings()


__all__ = ["analyse", "analyse_frames", "diagnose", "diagnose_tables", "findings_frame", "empty_findings"]
