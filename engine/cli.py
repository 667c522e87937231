"""The ``losscope`` command.

Each command is a click command in a function; ``main`` is the group. A command that
lives in another module is listed in ``LAZY_COMMANDS`` as "module:function" and
imported only when it is run, so ``losscope --help`` stays fast.

Conventions: results on stdout (``--format table|json|parquet``), progress and errors
on stderr; a LosscopeError prints its one-line reason and exits with code 2; progress
bars show only when stderr is a terminal.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import click

from engine.errors import LosscopeError

# name -> "module:attribute" of a click command defined elsewhere (imported on use).
LAZY_COMMANDS: dict[str, str] = {
    "compare": "engine.compare:compare_cmd",
}


class _Group(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None and name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[name].split(":")
            cmd = getattr(importlib.import_module(module), attr)
        return cmd


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """losscope: read training logs, store them as Parquet curves, diagnose them.

    \b
    Examples:
      losscope ingest runs/ --store .losscope
      losscope ingest trainer_state.json --store .losscope --run bert-base
      losscope runs --store .losscope --format json
    """


def fail(error: LosscopeError):
    click.echo(f"losscope: {error}", err=True)
    sys.exit(2)


def _stderr_console():
    from rich.console import Console
    return Console(stderr=True)


def _store(path, *, create: bool):
    from engine.store import Store
    return Store(path, create=create)


@main.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path),
              help="Store folder (created when absent).")
@click.option("--run", default=None, help="Store everything read under this run name.")
@click.option("--mapping", default=None, type=click.Path(path_type=Path),
              help="TOML file that sets split/kind/objective/role/direction of metrics.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def ingest_cmd(paths, store_path, run, mapping, fmt):
    """Read training logs under PATH... into the store.

    Formats are detected per file or folder (trainer_state.json, TensorBoard event
    files, mlruns/, W&B run folders, Lightning metrics.csv, CSV/JSONL/Parquet tables,
    text logs). Files nobody reads are listed, not errors, unless named directly.
    Ingesting the same sources again changes nothing.

    \b
    Examples:
      losscope ingest runs/ --store .losscope
      losscope ingest out/trainer_state.json --store .losscope --run bert-base
      losscope ingest logs/ --store .losscope --mapping metrics.toml --format json
    """
    try:
        store = _store(store_path, create=True)
        report = _ingest_with_progress(store, paths, run=run, mapping=mapping)
    except LosscopeError as e:
        fail(e)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=1))
        return
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"ingest into {store_path}", title_justify="left")
    for col, just in (("run", "left"), ("status", "left"), ("points", "right"), ("replaced", "right"),
                      ("metrics", "right"), ("events", "right"), ("source", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for r in report.runs:
        table.add_row(*_cells(r.run, r.status, f"{r.points:,}", f"{r.replaced:,}", str(r.metrics),
                              str(r.events), "\n".join(r.sources)))
    out = Console(soft_wrap=False)
    out.print(table)
    if report.skipped:
        shown = report.skipped[:5]
        more = f" and {len(report.skipped) - 5} more" if len(report.skipped) > 5 else ""
        click.echo(f"skipped {len(report.skipped)} file(s) no importer reads: " + ", ".join(shown) + more, err=True)


def _cells(*texts):
    """Cells as rich Text, so names like '[bold]x' or '<script>' print literally."""
    from rich.text import Text
    return [Text(t) for t in texts]


def _ingest_with_progress(store, paths, *, run, mapping):
    console = _stderr_console()
    if not console.is_terminal:
        return store.ingest(list(paths), run=run, mapping=mapping)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("reading sources", total=None)

        def progress(done, total, path):
            bar.update(task, completed=done, total=total, description=f"reading {Path(path).name[:40]}")
        return store.ingest(list(paths), run=run, mapping=mapping, progress=progress)


@main.command("runs")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path), help="Store folder.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "parquet"]), default="table",
              show_default=True, help="parquet writes the runs table to stdout as Parquet bytes.")
def runs_cmd(store_path, fmt):
    """List the runs in a store: source, format, points, replaced rows, when ingested.

    \b
    Examples:
      losscope runs --store .losscope
      losscope runs --store .losscope --format json | jq '.[].run'
      losscope runs --store .losscope --format parquet > runs.parquet
    """
    try:
        if not (store_path / "losscope-store.json").is_file():
            from engine.errors import StoreError
            raise StoreError("no losscope store here (run `losscope ingest` first)", path=str(store_path))
        store = _store(store_path, create=False)
        runs = store.runs()
        metrics = store.metrics().group_by("run").len("metrics")
    except LosscopeError as e:
        fail(e)
    import polars as pl
    runs = runs.join(metrics, on="run", how="left").with_columns(pl.col("metrics").fill_null(0))
    if fmt == "parquet":
        import io
        buf = io.BytesIO()
        store.runs().write_parquet(buf)
        sys.stdout.buffer.write(buf.getvalue())
        sys.stdout.buffer.flush()
        return
    if fmt == "json":
        rows = runs.with_columns(pl.col("ingested_at").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")).to_dicts()
        for r in rows:
            r["attributes"] = json.loads(r["attributes"] or "{}")
        click.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"{runs.height} run(s) in {store_path}", title_justify="left")
    for col, just in (("run", "left"), ("format", "left"), ("points", "right"), ("metrics", "right"),
                      ("replaced", "right"), ("ingested", "left"), ("source", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for r in runs.iter_rows(named=True):
        table.add_row(*_cells(*(x for x in (r["run"], r["format"], f"{r['points']:,}", str(r["metrics"]),
                                              f"{r['replaced']:,}", r["ingested_at"].strftime("%Y-%m-%d %H:%M"),
                                              r["source"]))))
    Console(soft_wrap=False).print(table)


if __name__ == "__main__":  # pragma: no cover
    main()
