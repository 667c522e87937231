"""The embedded store: a directory of Parquet files, no server.

Layout::

    <store>/losscope-store.json          marker (layout version); a non-empty folder without it is refused
    <store>/curves/<h>.parquet           one file per run; h = sha256(run name)[:32]
    <store>/runs.parquet                 one row per run (the commit record of an ingest)
    <store>/metrics.parquet              roles per (run, metric)
    <store>/events.parquet               resume, lr_change, importer and user events
    <store>/<table>.parquet              features, segments, spikes, findings (write_table)
    <store>/.lock                        advisory lock (fcntl.flock) held by every writer

Run names are data, never paths: a curves file is named by the hash of the run name,
and the name itself is stored in the file's ``run`` column. Names that are empty, hold
control characters or are not valid UTF-8 are refused; anything else ('a/../../b',
'<script>') is stored as it is.

Curves files are sorted by (metric, step), zstd-compressed, with row groups that never
span two metrics (at most 1,048,576 rows each), so a metric filter skips row groups by
their min/max statistics and a run filter never opens another run's file.

Writes: every file is written to a temporary file in the same folder, fsynced and moved
into place with os.replace (readers see the old file or the new one, never a mix).
Ingest parses and validates every source before the first write, so a failed ingest
leaves the store byte-for-byte as it was. Writers hold an exclusive ``flock`` on
``.lock``, so two processes ingesting at once serialise their writes (readers take no
lock). An ingest writes the curves files first, then events, metrics and the runs table
last: if a process dies in between, the runs table still holds the old content hash and
the next ingest of those sources rewrites them.

Ingest semantics: a run is the sources that produce it in one ingest call (merged in
walk order; for each (metric, step) the last value in source order wins and the number
replaced is counted). Ingesting a run again replaces it when the content hash of its
sources (and of the mapping) differs ("updated"), and changes nothing when it is equal
("unchanged").
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from engine import events as _events
from engine.errors import IngestError, LosscopeError, StoreError
from engine.ingest.base import PARSED_SCHEMA, IngestOptions, Parsed
from engine.mapping import Mapping, load_mapping
from schemas import TABLES, SchemaVersionError, check_version, with_metadata

MARKER = "losscope-store.json"
LAYOUT = 1
ROW_GROUP = 1 << 20
EVENT_KINDS = ("lr_change", "data_refresh", "resume", "phase", "note")
_INT64_MAX = np.iinfo(np.int64).max
_MAX_WALL_S = 1e11  # year 5138: larger values are milliseconds or garbage, not seconds


# ---------------------------------------------------------------------------------- names

def check_name(name, what: str = "run name", *, path: str | None = None) -> str:
    """Return ``name`` if it can be stored; raise StoreError saying why not."""
    if not isinstance(name, str):
        raise StoreError(f"{what} {name!r} is not a string", path=path)
    if not name.strip():
        raise StoreError(f"{what} {name!r} is empty", path=path)
    for i, ch in enumerate(name):
        if unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029":
            raise StoreError(f"{what} {name!r} contains control character {ch!r} at position {i}; "
                             "rename it", path=path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError(f"{what} {name!r} is not valid UTF-8", path=path) from None
    return name


def run_key(run: str) -> str:
    """The file stem of a run: 32 hex digits of sha256(name)."""
    return hashlib.sha256(run.encode("utf-8")).hexdigest()[:32]


# ---------------------------------------------------------------------------------- report

@dataclass
class SourceReport:
    path: str
    format: str
    runs: list[str]
    points: int
    replaced: int
    status: str  # new, updated, unchanged, mixed

    def as_dict(self) -> dict:
        return dict(path=self.path, format=self.format, runs=self.runs, points=self.points,
                    replaced=self.replaced, status=self.status)


@dataclass
class RunReport:
    run: str
    status: str  # new, updated, unchanged
    points: int
    replaced: int
    metrics: int
    sources: list[str]
    events: int = 0

    def as_dict(self) -> dict:
        return dict(run=self.run, status=self.status, points=self.points, replaced=self.replaced,
                    metrics=self.metrics, sources=self.sources, events=self.events)


@dataclass
class IngestReport:
    sources: list[SourceReport] = field(default_factory=list)
    runs: list[RunReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"sources": [s.as_dict() for s in self.sources], "runs": [r.as_dict() for r in self.runs],
                "skipped": self.skipped}

    @property
    def changed(self) -> bool:
        return any(r.status != "unchanged" for r in self.runs)


# ---------------------------------------------------------------------------------- helpers

def _empty(name: str) -> pl.DataFrame:
    return pl.from_arrow(TABLES[name].empty_table())


def _to_arrow(name: str, df: pl.DataFrame, where: str) -> pa.Table:
    schema = TABLES[name]
    missing = [f.name for f in schema if f.name not in df.columns]
    extra = [c for c in df.columns if c not in schema.names]
    if missing or extra:
        raise StoreError(f"table {name!r}: " + (f"missing column(s) {', '.join(missing)}" if missing else "")
                         + ("; " if missing and extra else "")
                         + (f"unknown column(s) {', '.join(extra)}" if extra else "")
                         + f"; expected {', '.join(schema.names)}", path=where)
    df = df.select(schema.names)
    for f in schema:
        if not f.nullable and df[f.name].null_count():
            raise StoreError(f"table {name!r}: column {f.name!r} holds {df[f.name].null_count()} null(s); "
                             "it may not be null", path=where)
    try:
        return df.to_arrow().cast(with_metadata(name))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise StoreError(f"table {name!r} does not match its schema: {e}", path=where) from None


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------- store

class Store:
    """A losscope store in folder ``path`` (created when absent)."""

    def __init__(self, path, *, create: bool = True):
        self.path = Path(path)
        marker = self.path / MARKER
        if self.path.exists() and not self.path.is_dir():
            raise StoreError("is a file, not a store folder", path=str(self.path))
        if marker.is_file():
            try:
                layout = json.loads(marker.read_text()).get("layout")
            except (OSError, ValueError, AttributeError):
                raise StoreError(f"{MARKER} is unreadable; not a losscope store?", path=str(self.path)) from None
            if layout != LAYOUT:
                raise StoreError(f"store layout {layout!r}; this losscope reads layout {LAYOUT}. "
                                 "Upgrade losscope.", path=str(self.path))
        elif self.path.is_dir() and any(self.path.iterdir()):
            raise StoreError(f"folder is not empty and has no {MARKER}: not a losscope store "
                             "(refusing to write into it)", path=str(self.path))
        elif not create:
            raise StoreError("no store here", path=str(self.path))
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self._write_bytes(marker, json.dumps({"layout": LAYOUT, "tool": "losscope"}).encode())
        (self.path / "curves").mkdir(exist_ok=True)
        self._checked: dict[tuple, None] = {}

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ------------------------------------------------------------------ low-level files

    def _write_bytes(self, target: Path, data: bytes) -> None:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)

    def _write_parquet(self, target: Path, table: pa.Table, *, split_by_metric: bool = False) -> None:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            dict_cols = [c for c in ("run", "metric") if c in table.column_names]
            with pq.ParquetWriter(tmp, table.schema, compression="zstd", use_dictionary=dict_cols or True) as w:
                if split_by_metric and table.num_rows:
                    metric = table.column("metric")
                    # boundaries of the (sorted) metric column
                    codes = pl.from_arrow(metric).rle_id().to_numpy()
                    starts = np.flatnonzero(np.diff(codes, prepend=-1))
                    ends = np.append(starts[1:], table.num_rows)
                    for a, b in zip(starts, ends):
                        w.write_table(table.slice(int(a), int(b - a)), row_group_size=ROW_GROUP)
                else:
                    w.write_table(table, row_group_size=ROW_GROUP)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(target.parent)

    def _check(self, name: str, file: Path) -> None:
        st = file.stat()
        key = (str(file), st.st_mtime_ns, st.st_size)
        if key in self._checked:
            return
        try:
            meta = pq.read_schema(file).metadata
        except (OSError, pa.ArrowException) as e:
            raise StoreError(f"{file.name} is not a readable Parquet file: {e}", path=str(self.path)) from None
        try:
            check_version(name, meta, str(file.relative_to(self.path)))
        except SchemaVersionError as e:
            raise StoreError(str(e), path=str(self.path)) from None
        self._checked[key] = None

    @contextlib.contextmanager
    def _lock(self):
        """Exclusive advisory lock for writers (fcntl.flock on <store>/.lock)."""
        import fcntl
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _table_file(self, name: str) -> Path:
        if name not in TABLES or name == "curves":
            raise StoreError(f"unknown table {name!r}; known: "
                             + ", ".join(t for t in TABLES if t != "curves"), path=str(self.path))
        return self.path / f"{name}.parquet"

    def _curve_file(self, run: str) -> Path:
        return self.path / "curves" / f"{run_key(run)}.parquet"

    # ------------------------------------------------------------------ reads

    def table(self, name: str) -> pl.DataFrame:
        """A whole small table (runs, metrics, events, features, segments, spikes, findings)."""
        if name == "curves":
            return self.curves()
        file = self._table_file(name)
        if not file.is_file():
            return _empty(name)
        self._check(name, file)
        return pl.read_parquet(file)

    def runs(self) -> pl.DataFrame:
        return self.table("runs").sort("run")

    def metrics(self, run: str | None = None) -> pl.DataFrame:
        m = self.table("metrics")
        return (m if run is None else m.filter(pl.col("run") == run)).sort("run", "metric")

    def events(self, run: str | None = None) -> pl.DataFrame:
        e = self.table("events")
        return (e if run is None else e.filter(pl.col("run") == run)).sort("run", "step", "kind")

    def run_names(self) -> list[str]:
        return self.runs()["run"].to_list()

    def curve_files(self, run=None) -> list[Path]:
        """The curves files a query for ``run`` (None, a name or a list of names) reads."""
        if run is None:
            files = sorted((self.path / "curves").glob("*.parquet"))
        else:
            names = [run] if isinstance(run, str) else list(run)
            files = [f for f in (self._curve_file(r) for r in names) if f.is_file()]
        for f in files:
            self._check("curves", f)
        return files

    def scan_curves(self, run=None, metric=None) -> pl.LazyFrame:
        """Lazy scan of the curves of ``run`` and ``metric`` (each None, a name or a list),
        with the run selecting files and the metric pushed down to row groups."""
        files = self.curve_files(run)
        if not files:
            return _empty("curves").lazy()
        lf = pl.scan_parquet(files)
        if run is not None:
            lf = lf.filter(pl.col("run").is_in([run] if isinstance(run, str) else list(run)))
        if metric is not None:
            lf = lf.filter(pl.col("metric").is_in([metric] if isinstance(metric, str) else list(metric)))
        return lf

    def curves(self, run=None, metric=None) -> pl.DataFrame:
        return self.scan_curves(run, metric).collect()

    # ------------------------------------------------------------------ ingest

    def ingest(self, paths, *, run: str | None = None, mapping=None, options: IngestOptions | None = None,
               mods=None, progress=None) -> IngestReport:
        """Read every source under ``paths`` and store it (see the module docstring).

        ``mapping``: a mapping file path or a Mapping. ``progress(done, total, path)`` is
        called after each source is parsed. Raises LosscopeError before any write.
        """
        from engine.ingest import plan

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if run is not None:
            check_name(run)
        if mapping is not None and not isinstance(mapping, Mapping):
            mapping = load_mapping(mapping)
        options = options or IngestOptions()
        report = IngestReport()

        planned = []
        for p in paths:
            pl_ = plan(p, mods=mods)
            planned.extend(pl_.sources)
            report.skipped.extend(str(s) for s in pl_.skipped)

        parsed: list[Parsed] = []
        for i, (src, mod) in enumerate(planned):
            try:
                got = mod.read(src, run=run, options=options)
            except LosscopeError:
                raise
            except (OSError, ValueError, MemoryError, OverflowError) as e:
                raise IngestError(f"{mod.FORMAT} importer failed: {type(e).__name__}: {e}", path=str(src)) from e
            parsed.append(self._validate(got, str(src), mod.FORMAT, run))
            if progress is not None:
                progress(i + 1, len(planned), str(src))

        prepared = self._prepare(parsed, mapping)
        with self._lock():
            old_runs = self.table("runs")
            old_hash = dict(zip(old_runs["run"].to_list(), old_runs["content_hash"].to_list()))
            changed = {r: p for r, p in prepared.items() if old_hash.get(r) != p["hash"]}
            for r, p in prepared.items():
                p["status"] = "unchanged" if r not in changed else ("updated" if r in old_hash else "new")
            if changed:
                self._commit(changed, old_runs)

        for r, p in prepared.items():
            report.runs.append(RunReport(r, p["status"], p["points"], p["replaced"], p["n_metrics"],
                                         p["sources"], len(p["events"])))
        for pr in parsed:
            rs = pl.from_arrow(pr.table.column("run")).unique(maintain_order=True).to_list() if pr.table.num_rows else []
            statuses = {prepared[r]["status"] for r in rs}
            status = statuses.pop() if len(statuses) == 1 else ("mixed" if statuses else "unchanged")
            report.sources.append(SourceReport(pr.source, pr.format, rs, pr.table.num_rows,
                                               sum(prepared[r]["replaced"] for r in rs), status))
        return report

    def _validate(self, parsed: Parsed, src: str, fmt: str, run: str | None) -> Parsed:
        """Check one importer result; return it with a PARSED_SCHEMA table."""
        if not isinstance(parsed, Parsed):
            raise IngestError(f"{fmt} importer returned {type(parsed).__name__}, not Parsed", path=src)
        t = parsed.table
        missing = [n for n in PARSED_SCHEMA.names if n not in t.column_names]
        if missing:
            raise IngestError(f"{fmt} importer gave no column(s) {', '.join(missing)}", path=src)
        t = t.select(PARSED_SCHEMA.names)
        t = self._check_steps(t, src)
        try:
            t = t.cast(PARSED_SCHEMA)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise IngestError(f"{fmt} importer gave columns of the wrong type: {e}", path=src) from None
        if run is not None and t.num_rows:
            t = t.set_column(0, PARSED_SCHEMA.field("run"), pa.array([run] * t.num_rows, pa.string()))
        for col in ("run", "metric", "step", "value"):
            if t.column(col).null_count:
                raise IngestError(f"{fmt} importer gave null {col!r} values", path=src)
        df = pl.from_arrow(t)
        for r in df["run"].unique(maintain_order=True).to_list():
            check_name(r, "run name", path=src)
        for m in df.select("run", "metric").unique(maintain_order=True).iter_rows():
            try:
                check_name(m[1], "metric name", path=src)
            except StoreError as e:
                raise IngestError(e.reason, path=src, run=m[0]) from None
        neg = df.filter(pl.col("step") < 0)
        if neg.height:
            r, m, s = neg.row(0)[:3]
            raise IngestError(f"negative step {s:,} ({neg.height:,} row(s) with a negative step); "
                              "expected a step >= 0", path=src, run=r, metric=m, step=s)
        wt = df["wall_time"]
        bad = df.filter(pl.col("wall_time").is_finite() & (pl.col("wall_time").abs() > _MAX_WALL_S))
        if bad.height:
            r, m, s, _, w = bad.row(0)
            raise IngestError(f"wall_time {w!r} is not seconds since the epoch (milliseconds?)",
                              path=src, run=r, metric=m, step=s)
        del wt
        for ev in parsed.events:
            check_name(ev.run, "run name", path=src)
            if ev.kind not in EVENT_KINDS:
                raise IngestError(f"event kind {ev.kind!r} at step {ev.step}; known: {', '.join(EVENT_KINDS)}",
                                  path=src, run=ev.run)
        return Parsed(format=parsed.format or fmt, source=parsed.source or src, table=t,
                      attributes=dict(parsed.attributes), events=list(parsed.events),
                      content_hash=parsed.content_hash)

    @staticmethod
    def _check_steps(t: pa.Table, src: str) -> pa.Table:
        typ = t.schema.field("step").type
        if typ == pa.int64():
            return t
        col = pl.from_arrow(t.select(["run", "metric", "step"]))
        s = col["step"]
        if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
            sf = s.cast(pl.Float64)
            bad = col.filter(~sf.is_finite() | (sf != sf.floor()) | (sf >= 2.0 ** 63) | (sf < 0))
            if bad.height:
                r, m, v = bad.row(0)
                raise IngestError(f"step {v!r} is not an integer in [0, {_INT64_MAX:,}] "
                                  "(steps past int64 or fractional)", path=src, run=r, metric=m)
            return t.set_column(2, "step", pa.array(s.cast(pl.Int64).to_numpy(), pa.int64()))
        raise IngestError(f"step column has type {typ}; expected integers", path=src)

    def _prepare(self, parsed: list[Parsed], mapping: Mapping | None) -> dict[str, dict]:
        """Merge sources per run, deduplicate, derive events and roles. No writes."""
        by_run: dict[str, dict] = {}
        for pr in parsed:
            df = pl.from_arrow(pr.table)
            chash = pr.content_hash or _table_digest(pr.table)
            for (r,), part in df.partition_by("run", as_dict=True, maintain_order=True).items():
                d = by_run.setdefault(r, {"frames": [], "sources": [], "formats": [], "hashes": [],
                                          "attributes": {}, "log_events": []})
                d["frames"].append(part)
                d["sources"].append(pr.source)
                d["formats"].append(pr.format)
                d["hashes"].append(f"{pr.format}:{chash}")
                d["attributes"].update(pr.attributes.get(r, {}))
            for ev in pr.events:
                if ev.run in by_run:
                    by_run[ev.run]["log_events"].append((ev.run, int(ev.step), ev.kind, ev.detail))
        out = {}
        for r, d in by_run.items():
            raw = pl.concat(d["frames"], how="vertical", rechunk=False) if len(d["frames"]) > 1 else d["frames"][0]
            n_raw = raw.height
            resumes = _events.resume_events(raw)
            cur = (raw.sort(["metric", "step"], maintain_order=True)
                   .filter(~((pl.col("metric") == pl.col("metric").shift(-1))
                             & (pl.col("step") == pl.col("step").shift(-1))).fill_null(False)))
            replaced = n_raw - cur.height
            cur = cur.with_columns(
                pl.when(pl.col("wall_time").is_finite())
                .then((pl.col("wall_time") * 1e6).round().cast(pl.Int64))
                .otherwise(None).cast(pl.Datetime("us", "UTC")).alias("wall_time"))
            names = cur["metric"].unique(maintain_order=True).to_list()
            # Per name, then across the run: plain `loss` next to `eval_loss` is the train split.
            from engine.infer import train_by_partner
            roles = list(train_by_partner(
                {m: (mapping.role(m) if mapping else _infer_cached(m)) for m in names}).items())
            lr = [m for m, ro in roles if ro.kind == "lr"]
            lrs = _events.lr_events(cur.filter(pl.col("metric").is_in(lr)), {r: lr}) if lr else []
            evs = sorted(set(d["log_events"]) | {(a, b, "resume", c) for a, b, c in resumes}
                         | {(a, b, "lr_change", c) for a, b, c in lrs}, key=lambda e: (e[1], e[2], e[3]))
            h = hashlib.sha256("\n".join(d["hashes"] + [mapping.fingerprint if mapping else ""]).encode()).hexdigest()
            uniq = lambda xs: list(dict.fromkeys(xs))  # noqa: E731
            out[r] = dict(curves=cur, roles=roles, events=evs, replaced=replaced, points=cur.height,
                          n_metrics=len(names), hash=h, sources=uniq(d["sources"]),
                          format="+".join(uniq(d["formats"])), attributes=d["attributes"])
        return out

    def _commit(self, changed: dict[str, dict], old_runs: pl.DataFrame) -> None:
        """Write the changed runs (caller holds the lock). Curves first, runs table last."""
        for r, p in changed.items():
            arrow = _to_arrow("curves", p["curves"].with_columns(pl.lit(r).alias("run")), str(self.path))
            self._write_parquet(self._curve_file(r), arrow, split_by_metric=True)
        names = list(changed)
        ev_new = pl.DataFrame(
            [(a, b, c, d, "log") for p in changed.values() for a, b, c, d in p["events"]],
            schema={"run": pl.String, "step": pl.Int64, "kind": pl.String, "detail": pl.String,
                    "source": pl.String}, orient="row")
        ev_old = self.table("events")
        ev_old = ev_old.filter(~(pl.col("run").is_in(names) & (pl.col("source") == "log")))
        self._replace_file("events", pl.concat([ev_old, ev_new]).sort("run", "step", "kind"))
        met_new = pl.DataFrame(
            [(r, m, *ro.as_dict().values()) for r, p in changed.items() for m, ro in p["roles"]],
            schema={"run": pl.String, "metric": pl.String, "split": pl.String, "kind": pl.String,
                    "objective": pl.String, "role": pl.String, "direction": pl.String, "inferred": pl.Boolean},
            orient="row")
        met_old = self.table("metrics").filter(~pl.col("run").is_in(names))
        self._replace_file("metrics", pl.concat([met_old, met_new]).sort("run", "metric"))
        now = _dt.datetime.now(_dt.timezone.utc)
        runs_new = pl.DataFrame(
            [(r, "\n".join(p["sources"]), p["format"], now, p["points"], p["hash"], p["replaced"],
              json.dumps(_json_safe(p["attributes"]), sort_keys=True, default=str))
             for r, p in changed.items()],
            schema={"run": pl.String, "source": pl.String, "format": pl.String,
                    "ingested_at": pl.Datetime("us", "UTC"), "points": pl.Int64, "content_hash": pl.String,
                    "replaced": pl.Int64, "attributes": pl.String}, orient="row")
        runs_old = old_runs.filter(~pl.col("run").is_in(names))
        self._replace_file("runs", pl.concat([runs_old, runs_new]).sort("run"))

    def _replace_file(self, name: str, df: pl.DataFrame) -> None:
        self._write_parquet(self._table_file(name), _to_arrow(name, df, str(self.path)))

    # ------------------------------------------------------------------ other writes

    def write_table(self, name: str, frame: pl.DataFrame, *, runs=None) -> None:
        """Replace the rows of ``runs`` (default: the runs in ``frame``) of table ``name``
        (features, segments, spikes, findings, ...) by ``frame``, atomically."""
        if name in ("curves", "runs"):
            raise StoreError(f"table {name!r} is written by ingest only", path=str(self.path))
        file = self._table_file(name)
        arrow = _to_arrow(name, frame, str(self.path))  # validate before locking
        new = pl.from_arrow(arrow)
        runs = new["run"].unique().to_list() if runs is None else ([runs] if isinstance(runs, str) else list(runs))
        stray = new.filter(~pl.col("run").is_in(runs))
        if stray.height:
            raise StoreError(f"table {name!r}: frame holds run {stray['run'][0]!r}, not among runs= "
                             f"({len(runs)} run(s))", path=str(self.path))
        with self._lock():
            old = self.table(name).filter(~pl.col("run").is_in(runs))
            self._replace_file(name, pl.concat([old, new], how="vertical_relaxed"))

    def add_events(self, frame: pl.DataFrame) -> int:
        """Add user events (columns run, step, kind, detail). Returns the number added."""
        need = ["run", "step", "kind", "detail"]
        miss = [c for c in need if c not in frame.columns]
        if miss:
            raise StoreError(f"events frame lacks column(s) {', '.join(miss)}; expected {', '.join(need)}",
                             path=str(self.path))
        df = frame.select(need).with_columns(pl.col("step").cast(pl.Int64, strict=False), pl.lit("user").alias("source"))
        if df["step"].null_count() or (df["step"] < 0).any():
            raise StoreError("events: every step must be an integer >= 0", path=str(self.path))
        bad = df.filter(~pl.col("kind").is_in(list(EVENT_KINDS)))
        if bad.height:
            raise StoreError(f"events: kind {bad['kind'][0]!r} unknown; known: {', '.join(EVENT_KINDS)}",
                             path=str(self.path), run=bad["run"][0])
        known = set(self.run_names())
        for r in df["run"].unique().to_list():
            check_name(r)
            if r not in known:
                raise StoreError("events: no such run in the store", path=str(self.path), run=r)
        with self._lock():
            old = self.table("events")
            self._replace_file("events", pl.concat([old, df.with_columns(pl.col("detail").fill_null(""))])
                               .sort("run", "step", "kind"))
        return df.height


def _table_digest(t: pa.Table) -> str:
    """Content digest of a parsed table, for importers that gave no content hash."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t.combine_chunks())
    return hashlib.sha256(sink.getvalue()).hexdigest()


_role_cache: dict = {}


def _infer_cached(metric: str):
    from engine.infer import infer
    r = _role_cache.get(metric)
    if r is None:
        r = _role_cache[metric] = infer(metric)
    return r
