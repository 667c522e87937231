"""The Python face of losscope: ``Store``, ``diagnose``, ``analyse``, ``diagnose_curve``.

Everything returns polars frames on purpose (``.to_pandas()`` / ``.to_arrow()`` when you
need another library): findings, features, segments, spikes, as stored in a Store.
``from engine import Store, diagnose, analyse`` gives the same functions.

One curve, no store: steps and values as numpy arrays, lists or Series.

>>> import numpy as np
>>> from engine.api import diagnose_curve
>>> steps = np.arange(1, 2001) * 10
>>> loss = 2.0 + 3.0 * steps ** -0.3 + 0.01 * np.random.default_rng(0).standard_normal(2000)
>>> loss[1500:] = np.nan                      # NaN/Inf are evidence, never a crash
>>> found = diagnose_curve(steps, loss, metric="train/loss")
>>> found.filter(pl.col("code") == "NONFINITE").select("severity", "step_start", "step_end").row(0)
('critical', 15010, 20000)

Several curves of one run in memory (polars or pandas long frame, or a dict of curves):

>>> t = np.arange(1, 401) * 25
>>> rng = np.random.default_rng(1)
>>> train = 1.0 + 4.0 * t ** -0.35 + 0.003 * rng.standard_normal(400) - t * 1e-6
>>> val = 1.05 + 4.0 * t ** -0.35 + 0.003 * rng.standard_normal(400) + np.maximum(t - 4000, 0) * 3e-5
>>> frame = curves_frame({"train/loss": (t, train), "val/loss": (t, val)}, run="demo")
>>> found = diagnose(frame)
>>> "OVERFITTING" in found["code"].to_list()
True

A store, the batch, and a query over the stored results, e.g. every run in which a
spike that never recovered came while the loss was diverging (inside the step range of a
DIVERGENCE finding, which starts at the best step before the blow-up):

>>> import tempfile
>>> store = Store(tempfile.mkdtemp() + "/store")
>>> s = np.arange(1, 3001) * 10
>>> base = 2.0 + 3.0 * s ** -0.3 + 0.01 * rng.standard_normal(3000)
>>> bad = base.copy(); bad[1000:1003] += 3; bad[1003:] += 0.8; bad[2000:] += np.linspace(0, 20, 1000)
>>> _ = ingest_frame(store, curves_frame({"train/loss": (s, bad)}, run="blew-up"))
>>> _ = ingest_frame(store, curves_frame({"train/loss": (s, base)}, run="fine"))
>>> result = run_batch(store)
>>> spikes, findings = store.table("spikes"), store.table("findings")
>>> (findings.filter(pl.col("code") == "DIVERGENCE")
...  .join(spikes.filter(~pl.col("recovered")), on="run")
...  .filter(pl.col("step").is_between("step_start", "step_end"))["run"].unique().to_list())
['blew-up']
>>> run_batch(store).analysed                 # nothing changed: nothing analysed again
[]
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from engine.batch import BatchResult, run_batch
from engine.diagnose import analyse as _analyse
from engine.errors import IngestError
from engine.query import query, scan, sql
from engine.store import Store


def ingest_frame(store, frame, *, mapping=None):
    """Ingest an in-memory long frame (polars or pandas: run, metric, step, value) into
    ``store`` (a Store); returns the IngestReport. Ingesting the same frame again changes
    nothing."""
    from engine.diagnose import _long_frame

    frame = _long_frame(frame)
    folder = Path(tempfile.mkdtemp(prefix="losscope-frame-"))
    try:
        runs = frame["run"].unique(maintain_order=True).to_list()
        path = folder / (runs[0] if len(runs) == 1 and runs[0].isidentifier() else "frame")
        path = path.with_suffix(".parquet")
        frame.write_parquet(path)
        return store.ingest(path, mapping=mapping)
    finally:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()


def _as_array(x, what: str, dtype) -> np.ndarray:
    if hasattr(x, "to_numpy"):
        x = x.to_numpy()
    a = np.asarray(x)
    if a.ndim != 1:
        raise IngestError(f"{what} must be one-dimensional, got shape {a.shape}", path="<array>")
    try:
        return a.astype(dtype, copy=False)
    except (TypeError, ValueError) as e:
        raise IngestError(f"{what} holds values that are not numbers: {e}", path="<array>") from None


def curves_frame(curves: dict, *, run: str = "run") -> pl.DataFrame:
    """A long frame (run, metric, step, value) from {metric: (steps, values)} or
    {metric: values} (steps 0, 1, 2, ...). Values may hold NaN and +/-Inf.

    >>> curves_frame({"loss": [3.0, 2.0, float("nan")]}, run="a").rows()
    [('a', 'loss', 0, 3.0), ('a', 'loss', 1, 2.0), ('a', 'loss', 2, nan)]
    """
    parts = []
    for metric, c in curves.items():
        if isinstance(c, tuple) and len(c) == 2:
            steps, values = c
        else:
            steps, values = None, c
        v = _as_array(values, f"values of {metric!r}", np.float64)
        if steps is None:
            s = np.arange(v.size, dtype=np.int64)
        else:
            sf = _as_array(steps, f"steps of {metric!r}", np.float64)
            if sf.size and (not np.isfinite(sf).all() or (sf != np.floor(sf)).any() or (sf < 0).any()
                            or sf.max() >= 2.0 ** 63):
                raise IngestError(f"steps of {metric!r} must be integers in [0, 2**63)", path="<array>",
                                  metric=metric)
            s = sf.astype(np.int64)
        if s.size != v.size:
            raise IngestError(f"{s.size} steps but {v.size} values", path="<array>", metric=metric)
        parts.append(pl.DataFrame({"run": [run] * v.size, "metric": [metric] * v.size, "step": s, "value": v},
                                  schema={"run": pl.String, "metric": pl.String, "step": pl.Int64,
                                          "value": pl.Float64}))
    if not parts:
        raise IngestError("no curves given", path="<array>")
    return pl.concat(parts)


def diagnose(source, *, store=None, thresholds=None, mapping=None, runs=None, executor: str = "auto",
             workers: int | None = None, scheduler=None, force: bool = False, progress=None) -> pl.DataFrame:
    """Findings (a polars frame: run, code, severity, confidence, metrics, step_start,
    step_end, message, evidence (JSON text), advice) of every run in ``source``.

    source: a path or list of paths (any format the importers read), a Store (every run:
    the batch, which skips runs analysed before and unchanged since), or an in-memory long
    frame (polars/pandas: run, metric, step, value). Paths and frames go into ``store``
    (a Store or a folder) or a temporary store deleted afterwards.
    executor/workers/scheduler/force: as :func:`engine.batch.run_batch`.
    Raises LosscopeError for bad input.
    """
    if isinstance(source, Store):
        return run_batch(source, runs, thresholds=thresholds, executor=executor, workers=workers,
                         scheduler=scheduler, force=force, progress=progress).findings
    tmp = None
    try:
        if store is None:
            tmp = tempfile.TemporaryDirectory(prefix="losscope-")
            st = Store(Path(tmp.name) / "store")
        else:
            st = store if isinstance(store, Store) else Store(store)
        paths = isinstance(source, (str, os.PathLike)) or (
            isinstance(source, (list, tuple)) and source and all(isinstance(p, (str, os.PathLike)) for p in source))
        report = st.ingest(source, mapping=mapping) if paths else ingest_frame(st, source, mapping=mapping)
        names = [r.run for r in report.runs]
        if runs is not None:
            keep = {runs} if isinstance(runs, str) else set(runs)
            names = [r for r in names if r in keep]
        return run_batch(st, names, thresholds=thresholds, executor=executor, workers=workers, scheduler=scheduler,
                         force=force, progress=progress).findings
    finally:
        if tmp is not None:
            tmp.cleanup()


def analyse(source, runs=None, *, params=None) -> dict[str, pl.DataFrame]:
    """The per-curve analysis of a Store, a store folder or an in-memory long frame:
    {"features", "segments", "spikes", "metrics", "events"} polars frames (no rules).

    >>> t = analyse(curves_frame({"train/loss": np.linspace(3, 1, 200)}, run="r"))
    >>> t["features"].select("metric", "n_points", "n_spikes", "initial_value").row(0)
    ('train/loss', 200, 0, 3.0)
    """
    return _analyse(source, runs, params=params)


def analyse_curve(steps, values, *, metric: str = "loss", params=None) -> dict[str, pl.DataFrame]:
    """The analysis of one curve: {"features", "segments", "spikes", ...} polars frames.
    ``steps`` may be None (0, 1, 2, ...). The metric name sets its role (a "val/acc" is
    maximised, a "loss" minimised)."""
    return analyse(curves_frame({metric: (steps, values) if steps is not None else values}, run="run"),
                   params=params)


def diagnose_curve(steps, values, *, metric: str = "loss", thresholds=None) -> pl.DataFrame:
    """The findings of one curve (see the module docstring for an example). ``steps``
    may be None (0, 1, 2, ...); no store is kept."""
    frame = curves_frame({metric: (steps, values) if steps is not None else values}, run="run")
    return diagnose(frame, thresholds=thresholds, executor="serial")


__all__ = ["BatchResult", "Store", "analyse", "analyse_curve", "curves_frame", "diagnose", "diagnose_curve",
           "ingest_frame", "query", "run_batch", "scan", "sql"]