"""Plain tables: CSV, TSV, JSON Lines and Parquet, in long or wide form.

Forms (decided from the column names, case-insensitive):

- long: a metric column (``metric``, ``tag`` or ``key``) and a ``value`` column, plus a
  step column and optionally a run column and a wall-time column; one point per row.
- wide: a step column and one column per metric; every non-empty numeric cell is a point.

Column roles (first match wins, names compared case-insensitively):

- step: ``step``, ``_step``, ``global_step``, ``steps``, ``iter``, ``iteration``,
  ``epoch`` (so with both ``step`` and ``epoch`` columns, ``epoch`` is a curve). Steps must
  be integers; ``100.0`` is accepted, ``4.5`` is an error (an epoch axis with fractional
  epochs cannot be a step axis: the file needs an integer step column). An empty step
  cell is an error.
- run: ``run``, ``run_name``, ``run_id``, ``model``, ``model_name``, ``experiment``,
  ``name``: its values split the file into runs (``Model`` in a CSV of 13 classifiers
  gives 13 runs). Without it, the run is named after the file (see ``default_run_name``).
- wall time: ``wall_time``, ``walltime``, ``wall time``, ``timestamp``, ``_timestamp``:
  numbers are seconds since the epoch (values above 1e11 are taken as milliseconds),
  strings are ISO-8601 (naive times are taken as UTC).

Cells: empty cells (and JSON null) are missing, never NaN; ``nan``, ``NaN``, ``inf``,
``-inf``, ``Infinity`` ... are NaN/Inf values and kept. A cell that is not a number in a
numeric column is an error naming the line and the column (the first five and the
count). A column with no numeric cell at all is a label, not a curve: it is skipped and
listed in the run attributes under ``ingest_skipped.label_columns``.

Line numbers count from 1 with the CSV header as line 1 (a quoted field holding a
newline would shift them); JSONL errors name the physical line; Parquet errors name the
row (1-based).

``.log``/``.txt``/``.out`` files are read as TSV/CSV when they look like one (a header
with a step column, then numeric rows of the same width), e.g. ``step\\tloss`` logs.
Lightning's ``version_N/metrics.csv`` is left to ``engine.ingest.lightning``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from engine.errors import IngestError
from engine.ingest.base import PARSED_SCHEMA, Event, IngestOptions, Parsed, hash_files, make_table

FORMAT = "table"

STEP_NAMES = ("step", "_step", "global_step", "steps", "iter", "iteration", "epoch")
RUN_NAMES = ("run", "run_name", "run_id", "model", "model_name", "experiment", "name")
WALL_NAMES = ("wall_time", "walltime", "wall time", "timestamp", "_timestamp")
METRIC_NAMES = ("metric", "tag", "key")
VALUE_NAMES = ("value",)

CSV_EXTS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
JSONL_EXTS = {".jsonl", ".ndjson"}
PARQUET_EXTS = {".parquet", ".pq"}
TEXT_EXTS = {".log", ".txt", ".out"}

# File stems and folder names that say nothing about the run; the run name is then
# taken from the nearest ancestor folder that does.
GENERIC = {"train", "training", "log", "logs", "metrics", "training_metrics", "history", "output", "outputs",
           "results", "result", "files", "runs", "run", "main", "events", "stdout", "out", "eval", "progress",
           "checkpoints", "wandb", "lightning_logs", "data", "tb", "csv", "jsonl"}
_CHECKPOINT = re.compile(r"checkpoint[-_]\d+$")


def default_run_name(path: Path) -> str:
    """The file's stem, unless it is generic ("train", "log", "metrics" ...): then the
    nearest ancestor folder whose name is not generic (nor ``checkpoint-N``)."""
    path = Path(path).resolve()
    stem = path.stem if path.is_file() or path.suffix else path.name
    if stem and stem.lower() not in GENERIC:
        return stem
    for parent in path.parents:
        name = parent.name
        if name and name.lower() not in GENERIC and not _CHECKPOINT.match(name):
            return name
    return stem or "run"


def _find(columns, names):
    low = {c.lower(): c for c in reversed(columns)}  # the first of equal lower-case names wins
    for n in names:
        if n in low:
            return low[n]
    return None


def _is_lightning_csv(path: Path) -> bool:
    return path.name == "metrics.csv" and re.match(r"version_\d+$", path.parent.name) is not None


def _sniff_text_table(path: Path) -> str | None:
    """Separator of a .log/.txt file that is really a delimited table, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192).decode("utf-8", "replace")
    except OSError:
        return None
    lines = [ln for ln in head.splitlines() if ln.strip()]
    if len(lines) < 4:
        return None
    for sep in ("\t", ","):
        header = [c.strip().lower() for c in lines[0].split(sep)]
        if len(header) < 2 or not any(h in STEP_NAMES for h in header):
            continue
        rows = lines[1:min(len(lines), 21)]
        if len(lines) > 21 or not head.endswith("\n"):
            rows = rows[:-1]  # the last line of the head may be cut
        ok = True
        for ln in rows:
            cells = ln.split(sep)
            if len(cells) != len(header):
                ok = False
                break
            for c in cells:
                try:
                    float(c)
                except ValueError:
                    ok = False
                    break
        if ok and rows:
            return sep
    return None


def sniff(path: Path) -> bool:
    path = Path(path)
    if not path.is_file():
        return False
    ext = path.suffix.lower()
    if ext in CSV_EXTS:
        return not _is_lightning_csv(path)
    if ext in JSONL_EXTS or ext in PARQUET_EXTS:
        return True
    if ext in TEXT_EXTS:
        return _sniff_text_table(path) is not None
    return False


# ---- readers: each returns (frame, where) where `where(i)` names row i for errors -----

def _csv_separator(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in CSV_EXTS:
        if ext != ".csv":
            return CSV_EXTS[ext]
        with open(path, "rb") as f:
            first = f.readline().decode("utf-8", "replace")
        if "\t" in first and "," not in first:
            return "\t"
        if ";" in first and "," not in first:
            return ";"
        return ","
    sep = _sniff_text_table(path)
    return sep or ","


def _read_csv(path: Path):
    sep = _csv_separator(path)
    try:
        df = pl.read_csv(path, separator=sep, infer_schema=False, has_header=True,
                         raise_if_empty=False)
    except pl.exceptions.PolarsError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise IngestError(f"not a readable {'TSV' if sep == chr(9) else 'CSV'} table: {first}",
                          path=str(path)) from None
    return df, (lambda i: ("line", i + 2))


def _flatten(obj, prefix, out):
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            _flatten(v, key + "/", out)
        else:
            out[key] = v


def _read_jsonl(path: Path):
    """stdlib json line by line: it accepts the NaN/Infinity tokens Python writes, which
    polars' ndjson reader refuses. Nested objects are flattened with '/'."""
    columns: dict[str, list] = {}
    kinds: dict[str, set] = {}
    lines: list[int] = []
    n = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                msg = getattr(e, "msg", str(e))
                hint = " (truncated?)" if not raw.endswith(b"\n") else ""
                raise IngestError(f"not a JSON object{hint}: {msg}", path=str(path), line=lineno) from None
            if not isinstance(obj, dict):
                raise IngestError(f"holds a JSON {type(obj).__name__}; expected one object per line.",
                                  path=str(path), line=lineno)
            flat = {}
            _flatten(obj, "", flat)
            for k, v in flat.items():
                col = columns.get(k)
                if col is None:
                    col = columns[k] = [None] * n
                    kinds[k] = set()
                if v is None:
                    col.append(None)
                elif isinstance(v, bool):
                    col.append(str(v).lower())
                    kinds[k].add("str")
                elif isinstance(v, (int, float)):
                    col.append(v)
                    kinds[k].add("int" if isinstance(v, int) else "float")
                elif isinstance(v, str):
                    col.append(v)
                    kinds[k].add("str")
                else:
                    col.append(json.dumps(v))
                    kinds[k].add("str")
            n += 1
            lines.append(lineno)
            for k, col in columns.items():
                if len(col) < n:
                    col.append(None)
    series = []
    for k, col in columns.items():
        kind = kinds[k]
        if "int" in kind and kind <= {"int", "float"} and any(
                isinstance(v, int) and not -(2**63) <= v < 2**63 for v in col):
            # past int64: kept as text so a step column reports the cell and a value column parses it
            series.append(pl.Series(k, [None if v is None else str(v) for v in col], dtype=pl.String))
        elif kind <= {"int"}:
            series.append(pl.Series(k, col, dtype=pl.Int64 if kind else pl.Float64))
        elif kind <= {"int", "float"}:
            series.append(pl.Series(k, [None if v is None else float(v) for v in col], dtype=pl.Float64))
        else:
            series.append(pl.Series(k, [None if v is None else (v if isinstance(v, str) else repr(v))
                                        for v in col], dtype=pl.String))
    return pl.DataFrame(series), (lambda i: ("line", lines[i]))


def _read_jsonl_arrow(path: Path):
    """pyarrow's JSON reader (it takes NaN/Infinity tokens too): the fast path when every
    column comes out flat and numeric or text. None means: use the line-by-line reader."""
    import pyarrow.json as pj

    try:
        t = pj.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        return None
    for f in t.schema:
        if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_string(f.type)
                or pa.types.is_large_string(f.type) or pa.types.is_null(f.type)):
            return None  # nested objects, lists, booleans or times pyarrow guessed: let stdlib decide
    return pl.from_arrow(t), (lambda i: ("line", i + 1))


def _read_parquet(path: Path):
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # polars raises several kinds for corrupt files
        raise IngestError(f"not a readable Parquet file: {str(e).splitlines()[0] if str(e) else e!r}",
                          path=str(path)) from None
    return df, (lambda i: ("row", i + 1))


# ---- column conversion -------------------------------------------------------------------

def _fail(path, where, idx, column, cells, expected, count):
    kind, first_line = where(int(idx[0]))
    more = ""
    if count > 1:
        shown = ", ".join(f"{where(int(i))[1]:,}" for i in idx[1:5])
        more = f" ({count - 1:,} more bad cells in this column, at {kind}s {shown}{'...' if count > 5 else ''})"
    reason = f"column \"{column}\" holds {cells[0]!r}; expected {expected}.{more}"
    if kind == "line":
        return IngestError(reason, path=str(path), line=first_line)
    return IngestError(f"row {first_line:,}: {reason}", path=str(path))


def _as_float(s: pl.Series):
    """(float64 values with NaN for missing, missing mask, bad mask, original strings)."""
    if s.dtype == pl.String:
        t = s.str.strip_chars()
        f = t.cast(pl.Float64, strict=False)
        missing = (t.is_null() | (t == "")).to_numpy()
        bad = (f.is_null().to_numpy() & ~missing)
        return f.fill_null(math.nan).to_numpy().astype(np.float64, copy=False), missing, bad
    if s.dtype.is_numeric():
        f = s.cast(pl.Float64)
        missing = f.is_null().to_numpy()
        return f.fill_null(math.nan).to_numpy().astype(np.float64, copy=False), missing, np.zeros(len(s), bool)
    if s.dtype == pl.Boolean or s.dtype == pl.Null:
        return np.full(len(s), math.nan), s.is_null().to_numpy(), s.is_not_null().to_numpy()
    t = s.cast(pl.String, strict=False)
    return np.full(len(s), math.nan), t.is_null().to_numpy(), t.is_not_null().to_numpy()


def _steps(path, s: pl.Series, where) -> np.ndarray:
    name = s.name
    if s.dtype.is_integer():
        if s.null_count():
            i = int(np.flatnonzero(s.is_null().to_numpy())[0])
            raise _fail(path, where, [i], name, [""], "an integer step", s.null_count())
        as_int = s.cast(pl.Int64, strict=False)  # a UInt64 past int64 becomes null
        if as_int.null_count():
            idx = np.flatnonzero(as_int.is_null().to_numpy())
            raise _fail(path, where, idx, name, [str(s[int(idx[0])])],
                        f"an integer step within int64 (at most {2**63 - 1:,})", len(idx))
        return as_int.to_numpy()
    text = s.str.strip_chars() if s.dtype == pl.String else s.cast(pl.String)
    as_int = text.cast(pl.Int64, strict=False) if s.dtype == pl.String else pl.Series([None] * len(s), dtype=pl.Int64)
    out = as_int.fill_null(0).to_numpy().copy()
    need = as_int.is_null().to_numpy()
    if need.any():
        f = (text.cast(pl.Float64, strict=False) if s.dtype == pl.String else s.cast(pl.Float64)).to_numpy()
        f = np.where(need, f, 0.0)
        good = need & np.isfinite(f) & (np.floor(f) == f) & (np.abs(f) < 2.0**63)
        bad = need & ~good
        if bad.any():
            idx = np.flatnonzero(bad)
            cells = [text[int(i)] if text[int(i)] is not None else "" for i in idx[:1]]
            frac = np.isfinite(f[idx[0]]) and np.floor(f[idx[0]]) != f[idx[0]]
            expected = "an integer step" + ("; fractional steps are not accepted (an epoch axis "
                                            "with fractions needs an integer step column)" if frac else "")
            raise _fail(path, where, idx, name, cells, expected, len(idx))
        out[need] = f[need].astype(np.int64)
    return out.astype(np.int64, copy=False)


def _wall_times(path, s: pl.Series, where) -> np.ndarray:
    if s.dtype.is_temporal():
        d = s.cast(pl.Datetime("us"))
        if getattr(s.dtype, "time_zone", None) is None:
            d = d.dt.replace_time_zone("UTC")
        return (d.dt.epoch("us").cast(pl.Float64) / 1e6).fill_null(math.nan).to_numpy()
    values, missing, bad = _as_float(s)
    if not bad.any():
        finite = values[np.isfinite(values)]
        if finite.size and np.nanmax(np.abs(finite)) > 1e11:
            values = values / 1e3  # milliseconds since the epoch (MLflow style)
        return values
    # ISO-8601 strings: Python's parser (3.11 takes 'Z' and offsets); naive means UTC.
    out = np.full(len(s), math.nan)
    text = s.cast(pl.String).to_list()
    errors = []
    for i, t in enumerate(text):
        if t is None or not t.strip():
            continue
        try:
            dt = datetime.fromisoformat(t.strip())
        except ValueError:
            try:
                out[i] = float(t)
                continue
            except ValueError:
                errors.append(i)
                continue
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        out[i] = dt.timestamp()
    if errors:
        raise _fail(path, where, errors, s.name, [text[errors[0]]], "an ISO-8601 time or seconds since the epoch",
                    len(errors))
    return out


def frame_to_parsed(df: pl.DataFrame, path: Path, where, *, run: str | None, source: str,
                    fmt: str = FORMAT, step_names=STEP_NAMES) -> Parsed:
    """Turn a frame of a long or wide table into Parsed (shared with lightning.py)."""
    cols = df.columns
    default_run = run or default_run_name(path)
    step_col = _find(cols, step_names)
    metric_col = _find(cols, METRIC_NAMES)
    value_col = _find(cols, VALUE_NAMES)
    run_col = None if run else _find(cols, RUN_NAMES)
    wall_col = _find(cols, WALL_NAMES)
    if step_col is None:
        raise IngestError(f"no step column; expected one of {', '.join(STEP_NAMES)} (columns: "
                          f"{', '.join(cols[:12])}{'...' if len(cols) > 12 else ''}).", path=str(path))
    n = df.height
    steps = _steps(path, df[step_col], where) if n else np.zeros(0, np.int64)
    walls = _wall_times(path, df[wall_col], where) if wall_col is not None and n else None
    if run_col is not None:
        rs = df[run_col].cast(pl.String).str.strip_chars()
        empty = (rs.is_null() | (rs == "")).to_numpy()
        if empty.any():
            idx = np.flatnonzero(empty)
            raise _fail(path, where, idx, run_col, [""], "a run name", len(idx))
        runs_arr = rs.to_numpy()
    else:
        runs_arr = None

    skipped_labels: list[str] = []
    long_form = metric_col is not None and value_col is not None and metric_col != step_col
    if long_form:
        metric = df[metric_col].cast(pl.String)
        values, missing, bad = _as_float(df[value_col])
        if bad.any():
            idx = np.flatnonzero(bad)
            raise _fail(path, where, idx, value_col, [df[value_col].cast(pl.String)[int(idx[0])]], "a number", len(idx))
        mnull = metric.is_null().to_numpy()
        if (mnull & ~missing).any():
            idx = np.flatnonzero(mnull & ~missing)
            raise _fail(path, where, idx, metric_col, [""], "a metric name", len(idx))
        keep = ~missing
        rows = np.flatnonzero(keep)
        metric_out = metric.filter(pl.Series(keep)).to_arrow()
        value_out = values[rows]
        used = {step_col, metric_col, value_col, run_col, wall_col}
        skipped_labels = [c for c in cols if c not in used]
    else:
        metric_cols = [c for c in cols if c not in {step_col, run_col, wall_col}]
        blocks, masks, names = [], [], []
        for c in metric_cols:
            values, missing, bad = _as_float(df[c])
            if bad.any():
                # No numeric cell at all, and none that looks like a mangled number
                # ('0,5', '1.2.3'): a label column, not a curve.
                if (~missing).sum() == bad.sum() and not df[c].cast(pl.String).str.strip_chars().filter(
                        pl.Series(bad)).str.contains(r"^[-+]?\.?[0-9]").any():
                    skipped_labels.append(c)
                    continue
                idx = np.flatnonzero(bad)
                raise _fail(path, where, idx, c, [df[c].cast(pl.String)[int(idx[0])]], "a number", len(idx))
            blocks.append(values)
            masks.append(~missing)
            names.append(c)
        if len(names) == 1 and names[0].lower() == "value":
            names = [default_run_name(path) if path.stem.lower() in GENERIC else path.stem]  # TensorBoard CSV export
        if names:
            vals = np.column_stack(blocks)
            mask = np.column_stack(masks)
            rows, which = np.nonzero(mask)  # row-major: source order
            value_out = vals[rows, which]
            metric_out = pa.DictionaryArray.from_arrays(pa.array(which.astype(np.int32)),
                                                        pa.array(names, pa.string())).cast(pa.string())
        else:
            raise IngestError(f"no numeric metric column (columns: {', '.join(cols[:12])}); expected a step "
                              "column and one column per metric, or long form (metric, step, value).",
                              path=str(path))

    step_out = steps[rows] if n else np.zeros(0, np.int64)
    if runs_arr is not None:
        run_out = pa.array(runs_arr[rows], pa.string())
        run_names = list(dict.fromkeys(runs_arr.tolist()))
    else:
        run_out = pa.array(np.full(len(rows), default_run, dtype=object), pa.string()) if len(rows) < 1024 else \
            pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(rows), np.int32)),
                                           pa.array([default_run])).cast(pa.string())
        run_names = [default_run]
    if walls is None:
        wall_out = pa.nulls(len(rows), pa.float64())
    else:
        w = walls[rows]
        wall_out = pa.array(w, pa.float64(), mask=~np.isfinite(w))
    table = pa.Table.from_arrays([run_out, metric_out, pa.array(step_out, pa.int64()),
                                  pa.array(value_out, pa.float64()), wall_out], schema=PARSED_SCHEMA)
    attrs = {"columns": {"step": step_col, "run": run_col, "wall_time": wall_col,
                         "form": "long" if long_form else "wide"}}
    if skipped_labels:
        attrs["ingest_skipped"] = {"label_columns": skipped_labels}
    return Parsed(format=fmt, source=source, table=table,
                  attributes={r: dict(attrs) for r in run_names},
                  content_hash=hash_files([path]) if path.is_file() else "")


def read(path: Path, *, run: str | None = None, options: IngestOptions = IngestOptions()) -> Parsed:
    path = Path(path)
    if not path.is_file():
        raise IngestError("not a file; the table importer reads one CSV/TSV/JSONL/Parquet file.", path=str(path))
    ext = path.suffix.lower()
    if ext in JSONL_EXTS:
        fast = _read_jsonl_arrow(path)
        if fast is not None:
            try:
                return frame_to_parsed(fast[0], path, fast[1], run=run, source=str(path))
            except IngestError:
                pass  # the line-by-line reader names the exact line (blank lines shift the fast count)
        df, where = _read_jsonl(path)
    elif ext in PARQUET_EXTS:
        df, where = _read_parquet(path)
    else:
        df, where = _read_csv(path)
    if df.width == 0:
        raise IngestError("the table is empty (no header, no rows).", path=str(path))
    parsed = frame_to_parsed(df, path, where, run=run, source=str(path))
    if ext in PARQUET_EXTS:
        parsed.events.extend(_parquet_events(path, run=run, default_run=parsed.runs[0] if len(parsed.runs) == 1
                                             else None))
    return parsed


def _parquet_events(path: Path, *, run: str | None, default_run: str | None) -> list[Event]:
    """Events stored in the Parquet key-value metadata ``losscope.events``: a JSON list of
    {run, step, kind, detail} (``run`` may be left out in a one-run file). ``run=``
    (store everything under one name) renames them too. Kinds are checked by the store."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"losscope.events")
    if raw is None:
        return []
    where = "key-value metadata 'losscope.events'"
    try:
        items = json.loads(raw)
    except ValueError as e:
        raise IngestError(f"{where} is not JSON: {e}", path=str(path)) from None
    if not isinstance(items, list):
        raise IngestError(f"{where} holds a {type(items).__name__}; expected a list of {{run, step, kind, detail}}",
                          path=str(path))
    out = []
    for i, ev in enumerate(items):
        if not isinstance(ev, dict) or "step" not in ev or "kind" not in ev:
            raise IngestError(f"{where}, item {i + 1}: {str(ev)[:60]!r} lacks step or kind", path=str(path))
        step = ev["step"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise IngestError(f"{where}, item {i + 1}: step {step!r} is not an integer >= 0", path=str(path))
        name = run or ev.get("run") or default_run
        if not isinstance(name, str) or not name:
            raise IngestError(f"{where}, item {i + 1}: no run (the file holds several runs)", path=str(path))
        out.append(Event(name, step, str(ev["kind"]), str(ev.get("detail", ""))))
    return out
