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
      losscope diagnose data/runs
      losscope diagnose --store .losscope --fail-on critical --format json
      losscope query findings --store .losscope --where "severity = 'critical'"
      losscope report --store .losscope -o report.html
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


# ------------------------------------------------------------------------------ diagnose

SEVERITIES = ("critical", "warning", "info")
_SEV_STYLE = {"critical": "bold red", "warning": "yellow", "info": "dim"}


def _findings_json(findings) -> str:
    """The findings as a JSON array: evidence as an object, non-finite numbers as strings."""
    import math

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return "NaN" if x != x else ("Infinity" if x > 0 else "-Infinity")
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    rows = []
    for r in findings.iter_rows(named=True):
        try:
            r["evidence"] = json.loads(r["evidence"]) if r["evidence"] else {}
        except ValueError:
            r["evidence"] = {"text": r["evidence"]}
        rows.append(clean(r))
    return json.dumps(rows, indent=1, allow_nan=False)


def _fmt_steps(a, b) -> str:
    if a is None and b is None:
        return ""
    if b is None or a == b:
        return f"{a:,}"
    return f"{a:,}-{b:,}" if a is not None else f"-{b:,}"


def _findings_table(findings, runs: list[str], *, title: str):
    """A rich table grouped by run: a healthy run in one line with its key figures,
    a sick run with every finding (critical, warning, then info)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("run", overflow="fold", max_width=32)
    table.add_column("finding", overflow="fold", max_width=24)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("what happened", overflow="fold", ratio=1)

    def code_cell(code, severity, confidence, style):
        t = Text(code, style="bold")
        t.append(f"\n{severity} {confidence:.2f}", style=style)
        return t

    by_run = {}
    for r in findings.iter_rows(named=True):
        by_run.setdefault(r["run"], []).append(r)
    for run in runs:
        rows = by_run.get(run, [])
        sick = [r for r in rows if r["severity"] in ("critical", "warning")]
        if not sick:
            healthy = [r for r in rows if r["code"] == "HEALTHY"]
            if healthy:
                h = healthy[0]
                table.add_row(Text(run), code_cell("HEALTHY", "healthy", h["confidence"], "green"),
                              _fmt_steps(h["step_start"], h["step_end"]), Text(h["message"]), end_section=True)
            else:
                table.add_row(Text(run), Text("-"), "",
                              Text(rows[0]["message"] if rows else "no findings (no curve with a direction)"),
                              end_section=True)
            continue
        for i, r in enumerate(rows):
            table.add_row(Text(run if i == 0 else ""),
                          code_cell(r["code"], r["severity"], r["confidence"], _SEV_STYLE[r["severity"]]),
                          _fmt_steps(r["step_start"], r["step_end"]), Text(r["message"]),
                          end_section=i == len(rows) - 1)
    return table


def _batch_progress(console):
    """A context manager yielding a progress(done, total, run) callback (or None)."""
    import contextlib

    if not console.is_terminal:
        return contextlib.nullcontext(None)

    @contextlib.contextmanager
    def bar():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as p:
            task = p.add_task("analysing", total=None)

            def progress(done, total, run):
                p.update(task, completed=done, total=total, description=f"analysing {run[:30]}")
            yield progress
    return bar()


def _write_output(data, output, *, binary: bool = False):
    if output is None:
        if binary:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            click.echo(data, nl=not data.endswith("\n"))
        return
    Path(output).write_bytes(data) if binary else Path(output).write_text(data + ("" if data.endswith("\n") else "\n"))


def _emit_frame(frame, fmt: str, output, *, title: str, json_text=None):
    """A result frame on stdout (or --output) as table, JSON or Parquet bytes."""
    if fmt == "parquet":
        import io
        buf = io.BytesIO()
        frame.write_parquet(buf)
        _write_output(buf.getvalue(), output, binary=True)
        return
    if fmt == "json":
        _write_output(json_text if json_text is not None else _frame_json(frame), output)
        return
    _print_rich(_plain_table(frame, title=title), output)


def _frame_json(frame) -> str:
    import polars as pl
    temporal = [c for c, t in frame.schema.items() if t.is_temporal()]
    if temporal:
        frame = frame.with_columns(pl.col(c).cast(pl.String) for c in temporal)
    return json.dumps(frame.to_dicts(), indent=1, default=str)


def _plain_table(frame, *, title: str):
    from rich.table import Table
    from rich.text import Text
    table = Table(title=title, title_justify="left")
    for c in frame.columns:
        table.add_column(c, overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*(Text("" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))) for v in row))
    return table


def _print_rich(renderable, output):
    from rich.console import Console
    if output is None:
        Console(soft_wrap=False).print(renderable)
        return
    with open(output, "w") as f:
        Console(file=f, width=160, soft_wrap=False, color_system=None).print(renderable)


def _exit_code(findings, fail_on: str | None) -> int:
    if fail_on is None or findings.height == 0:
        return 0
    worst = SEVERITIES.index(fail_on)
    hit = findings.filter(findings["severity"].is_in(list(SEVERITIES[: worst + 1])))
    return 1 if hit.height else 0


def _prepare_store(paths, store_path, *, mapping, runs):
    """(store, run names, temporary dir or None): ingest PATH... (into --store or a
    temporary store) or take every run of --store."""
    import tempfile

    from engine.errors import StoreError
    tmp = None
    if paths:
        if store_path is None:
            tmp = tempfile.TemporaryDirectory(prefix="losscope-")
            store = _store(Path(tmp.name) / "store", create=True)
        else:
            store = _store(store_path, create=True)
        report = _ingest_with_progress(store, paths, run=None, mapping=mapping)
        if report.skipped:
            shown = ", ".join(Path(s).name for s in report.skipped[:5])
            more = f" and {len(report.skipped) - 5} more" if len(report.skipped) > 5 else ""
            click.echo(f"losscope: skipped {len(report.skipped)} file(s) no importer reads: {shown}{more}", err=True)
        names = [r.run for r in report.runs]
    else:
        if not (store_path / "losscope-store.json").is_file():
            raise StoreError("no losscope store here (run `losscope ingest` first, or give PATH...)",
                             path=str(store_path))
        store = _store(store_path, create=False)
        names = store.run_names()
    if runs:
        missing = [r for r in runs if r not in set(names)]
        if missing:
            raise StoreError(f"no such run (runs: {', '.join(repr(n) for n in names[:5])}"
                             f"{' ...' if len(names) > 5 else ''})", path=str(store.path), run=missing[0])
        names = [r for r in names if r in set(runs)]
    return store, names, tmp


def _run_batch_cli(store, names, *, thresholds, executor, scheduler, workers, force):
    from engine.batch import run_batch
    if scheduler and executor in ("auto", "local"):
        executor = "dask"
    console = _stderr_console()
    with _batch_progress(console) as progress:
        return run_batch(store, names, thresholds=thresholds, executor=executor, workers=workers,
                         scheduler=scheduler, force=force, progress=progress)


def _report_failures(result) -> int:
    if not result.failed:
        return 0
    for f in result.failed[:5]:
        click.echo(f"losscope: run {f.run!r} not analysed: {f.error}", err=True)
    if len(result.failed) > 5:
        click.echo(f"losscope: ... and {len(result.failed) - 5} more run(s) not analysed", err=True)
    return 2 if any(f.bad_input for f in result.failed) else 3


_BATCH_OPTIONS = [
    click.option("--store", "store_path", type=click.Path(path_type=Path), default=None,
                 help="Store folder. With PATH: ingest there and keep the results. Without PATH: every run in it."),
    click.option("--run", "runs", multiple=True, help="Only this run (repeatable)."),
    click.option("--thresholds", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
                 help="TOML file overriding rule thresholds (see engine/thresholds.toml)."),
    click.option("--mapping", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
                 help="TOML file that sets split/kind/objective/role/direction of metrics."),
    click.option("--executor", type=click.Choice(["auto", "local", "serial", "dask"]), default="auto",
                 show_default=True,
                 help="auto: local processes for 64+ runs to analyse, else this process; dask: client.map "
                      "on a Dask cluster."),
    click.option("--scheduler", default=None, metavar="ADDRESS",
                 help="Dask scheduler address (implies --executor dask; also LOSSCOPE_DASK_ADDRESS). "
                      "Without it --executor dask starts a LocalCluster."),
    click.option("--workers", type=click.IntRange(min=1), default=None,
                 help="Worker processes (default: the CPUs available)."),
    click.option("--force", is_flag=True, help="Analyse again even runs whose content has not changed."),
]


def _batch_options(fn):
    for opt in reversed(_BATCH_OPTIONS):
        fn = opt(fn)
    return fn


@main.command("diagnose")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@_batch_options
@click.option("--format", "fmt", type=click.Choice(["table", "json", "parquet"]), default="table",
              show_default=True, help="json: a JSON array of findings alone on stdout; parquet: Parquet bytes.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the result to this file instead of stdout.")
@click.option("--fail-on", type=click.Choice(["warning", "critical"]), default=None,
              help="Exit 1 when a finding at or above this severity exists (a CI gate).")
def diagnose_cmd(paths, store_path, runs, thresholds, mapping, executor, scheduler, workers, force, fmt, output,
                 fail_on):
    """Diagnose training runs: ingest PATH... (any format the importers read, including
    a long Parquet/CSV with run, metric, step, value, or a folder of them), analyse every
    curve, apply the rules and print the findings.

    Without PATH, --store DIR diagnoses every run of that store (the batch): runs whose
    content, events and thresholds have not changed since their last analysis are not
    analysed again. Results (features, segments, spikes, findings) are written back into
    the store; without --store a temporary store is used and deleted.

    \b
    Findings (--format json): run, code, severity (info, warning, critical), confidence,
    metrics, step_start, step_end, message, evidence (an object), advice.
    Exit codes: 0 ok; 1 a finding at or above --fail-on; 2 bad input (one line on
    stderr); 3 a run failed on an internal error.

    \b
    Examples:
      losscope diagnose data/runs
      losscope diagnose out/trainer_state.json --format json | jq '.[].code'
      losscope diagnose runs/ --store .losscope --fail-on critical
      losscope diagnose --store .losscope --executor dask --scheduler tcp://10.0.0.5:8786
      losscope diagnose --store .losscope --run bert-base --format parquet -o findings.parquet
    """
    if not paths and store_path is None:
        raise click.UsageError("give PATH... to diagnose, or --store DIR to diagnose every run of a store")
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        raise click.UsageError("--format parquet writes bytes: redirect stdout or give --output FILE")
    tmp = None
    try:
        store, names, tmp = _prepare_store(paths, store_path, mapping=mapping, runs=runs)
        result = _run_batch_cli(store, names, thresholds=thresholds, executor=executor, scheduler=scheduler,
                                workers=workers, force=force)
        findings = result.findings
        click.echo(f"losscope: {result.summary()}", err=True)
        code = _report_failures(result)
        ok = [r for r in names if r not in {f.run for f in result.failed}]
        if fmt == "json":
            _write_output(_findings_json(findings), output)
        elif fmt == "parquet":
            _emit_frame(findings, "parquet", output, title="")
        else:
            n_sick = len({r for r, s in findings.select("run", "severity").iter_rows() if s != "info"})
            title = (f"{len(ok)} run(s): {n_sick} with warnings, {len(ok) - n_sick} without"
                     + (f" ({len(result.failed)} failed)" if result.failed else ""))
            _print_rich(_findings_table(findings, ok, title=title), output)
    except LosscopeError as e:
        fail(e)
    finally:
        if tmp is not None:
            tmp.cleanup()
    sys.exit(code or _exit_code(findings, fail_on))


# ------------------------------------------------------------------------------ query

@main.command("query")
@click.argument("table", type=click.Choice(["findings", "features", "segments", "spikes", "curves", "runs",
                                            "metrics", "events", "analysed"]), required=False)
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path), help="Store folder.")
@click.option("--run", "runs", multiple=True, help="Only this run (repeatable).")
@click.option("--metric", "metrics", multiple=True,
              help="Only this metric (repeatable; for findings: findings about this metric).")
@click.option("--where", default=None, metavar="POLARS_SQL", help="A polars SQL boolean expression on the table.")
@click.option("--sql", "statement", default=None,
              help="A whole polars SQL statement; every table is registered under its name.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most this many rows.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "parquet"]), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the result to this file instead of stdout.")
def query_cmd(table, store_path, runs, metrics, where, statement, limit, fmt, output):
    """Query the tables of a store (findings, features, segments, spikes, curves, runs,
    metrics, events, analysed) with polars SQL. The curves table is scanned lazily: a
    query for one run and metric reads only that run's file and metric's row groups.

    \b
    Examples:
      losscope query findings --store .losscope --where "severity = 'critical'"
      losscope query spikes --store .losscope --run bert-base --where "NOT recovered" --format json
      losscope query curves --store .losscope --run bert-base --metric train/loss --format parquet -o c.parquet
      losscope query --store .losscope --sql "SELECT run, count(*) AS n FROM spikes GROUP BY run ORDER BY n DESC"
    """
    from engine.query import query, sql
    if (table is None) == (statement is None):
        raise click.UsageError("give either TABLE (with --run/--metric/--where) or --sql STATEMENT")
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        raise click.UsageError("--format parquet writes bytes: redirect stdout or give --output FILE")
    try:
        if not (store_path / "losscope-store.json").is_file():
            from engine.errors import StoreError
            raise StoreError("no losscope store here (run `losscope ingest` first)", path=str(store_path))
        store = _store(store_path, create=False)
        if statement is not None:
            frame = sql(store, statement)
            if limit is not None:
                frame = frame.head(limit)
        else:
            frame = query(store, table, run=list(runs) or None, metric=list(metrics) or None, where=where, limit=limit)
    except LosscopeError as e:
        fail(e)
    if fmt == "json" and table == "findings":
        _write_output(_findings_json(frame), output)
        return
    _emit_frame(frame, fmt, output, title=f"{frame.height:,} row(s)" + (f" of {table}" if table else ""))


# ------------------------------------------------------------------------------ report

@main.command("report")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@_batch_options
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="HTML file to write (default: losscope-report.html, or <run>.html with one --run).")
@click.option("--each-run", is_flag=True,
              help="Also write one report per run next to the index (in <output stem>_runs/), linked from it.")
def report_cmd(paths, store_path, runs, thresholds, mapping, executor, scheduler, workers, force, output, each_run):
    """Write a self-contained HTML report (opens offline): the store index with every
    run's findings and a comparison of runs, or with one --run that run's curves (raw and
    smoothed, segments shaded, spikes and non-finite values marked, findings beside).

    Runs that were not diagnosed yet (or changed since) are diagnosed first, as
    `losscope diagnose` would; PATH... is ingested first (into --store or a temporary store).

    \b
    Examples:
      losscope report data/runs -o report.html
      losscope report --store .losscope --run bert-base -o bert-base.html
      losscope report --store .losscope --each-run -o reports/index.html
    """
    from engine.report import render_run_report, render_store_report, report_filename
    if not paths and store_path is None:
        raise click.UsageError("give PATH... to report on, or --store DIR")
    tmp = None
    try:
        store, names, tmp = _prepare_store(paths, store_path, mapping=mapping, runs=runs)
        result = _run_batch_cli(store, names, thresholds=thresholds, executor=executor, scheduler=scheduler,
                                workers=workers, force=force)
        click.echo(f"losscope: {result.summary()}", err=True)
        code = _report_failures(result)
        if len(runs) == 1 and not each_run:
            out = output or Path(report_filename(runs[0]))
            written = [render_run_report(store, runs[0], out_path=out)]
        else:
            out = Path(output or "losscope-report.html")
            links = None
            written = []
            if each_run:
                folder = out.with_name(out.stem + "_runs")
                folder.mkdir(parents=True, exist_ok=True)
                links = {}
                for r in names:
                    p = render_run_report(store, r, out_path=folder / report_filename(r))
                    links[r] = f"{folder.name}/{p.name}"
                    written.append(p)
            written.insert(0, render_store_report(store, out_path=out, runs=names, run_links=links))
    except LosscopeError as e:
        fail(e)
    except ImportError as e:
        click.echo(f"losscope: the HTML report needs plotly (pip install plotly): {e}", err=True)
        sys.exit(2)
    finally:
        if tmp is not None:
            tmp.cleanup()
    for p in written[:1]:
        click.echo(str(p))
    if len(written) > 1:
        click.echo(f"losscope: wrote {len(written) - 1} run report(s) in {written[1].parent}", err=True)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
