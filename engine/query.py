"""Queries over the tables of a store, as polars LazyFrames or polars SQL.

``scan(store, table, run=None, metric=None)`` is a LazyFrame of one stored table (the
curves table is a lazy Parquet scan with the run choosing files and the metric pushed
down to row groups); ``query(store, table, where=..., ...)`` collects it after an
optional polars SQL ``WHERE`` expression; ``sql(store, "SELECT ...")`` runs a whole
polars SQL statement with every table registered under its name.

Tables: findings, features, segments, spikes, curves, runs, metrics, events, analysed.
"""

from __future__ import annotations

import polars as pl

from engine.errors import ConfigError

TABLE_NAMES = ("findings", "features", "segments", "spikes", "curves", "runs", "metrics", "events", "analysed")


def _as_list(x):
    return None if x is None else ([x] if isinstance(x, str) else list(x))


def scan(store, table: str, *, run=None, metric=None) -> pl.LazyFrame:
    """LazyFrame of ``table`` restricted to ``run`` and ``metric`` (each None, a name or a list)."""
    from engine.store import Store

    if not isinstance(store, Store):
        store = Store(store, create=False)
    if table not in TABLE_NAMES:
        raise ConfigError(f"unknown table {table!r}; known: {', '.join(TABLE_NAMES)}")
    runs, metrics = _as_list(run), _as_list(metric)
    if table == "curves":
        return store.scan_curves(runs, metrics)
    if table == "analysed":
        from engine.batch import analysed_table
        lf = analysed_table(store).lazy()
    else:
        lf = store.table(table).lazy()
    cols = lf.collect_schema().names()
    if runs is not None:
        lf = lf.filter(pl.col("run").is_in(runs))
    if metrics is not None:
        if "metric" in cols:
            lf = lf.filter(pl.col("metric").is_in(metrics))
        elif "metrics" in cols:  # findings: a list of the metrics a finding is about
            lf = lf.filter(pl.col("metrics").list.eval(pl.element().is_in(metrics)).list.any())
        else:
            raise ConfigError(f"table {table!r} has no metric column; drop --metric")
    return lf


def _polars_error(what: str, text: str, e: Exception) -> ConfigError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return ConfigError(f"{what} {text!r}: {first}")


def query(store, table: str, *, run=None, metric=None, where: str | None = None,
          limit: int | None = None) -> pl.DataFrame:
    """Rows of ``table`` for ``run``/``metric`` where the polars SQL expression ``where``
    holds (e.g. ``"severity = 'critical' AND confidence > 0.8"``).

    Raises ConfigError naming the expression when polars cannot parse or apply it.
    """
    lf = scan(store, table, run=run, metric=metric)
    if where:
        try:
            lf = lf.filter(pl.sql_expr(where))
        except Exception as e:  # noqa: BLE001 - polars raises several kinds for bad SQL
            raise _polars_error("--where", where, e) from None
    if limit is not None:
        lf = lf.head(limit)
    try:
        return lf.collect()
    except (pl.exceptions.PolarsError, ValueError) as e:
        raise _polars_error("--where" if where else "query", where or table, e) from None


def sql(store, statement: str) -> pl.DataFrame:
    """Run one polars SQL statement with every table of the store registered by name.

    >>> # sql(store, "SELECT run, count(*) AS n FROM findings WHERE severity = 'warning' GROUP BY run")
    """
    from engine.store import Store

    if not isinstance(store, Store):
        store = Store(store, create=False)
    ctx = pl.SQLContext({name: scan(store, name) for name in TABLE_NAMES}, eager=False)
    try:
        return ctx.execute(statement).collect()
    except Exception as e:  # noqa: BLE001
        raise _polars_error("--sql", statement, e) from None


__all__ = ["TABLE_NAMES", "query", "scan", "sql"]
