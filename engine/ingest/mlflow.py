"""MLflow file-store folders (``mlruns/``), read without the mlflow package.

Layout: ``mlruns/<experiment_id>/meta.yaml`` (experiment name) and
``mlruns/<experiment_id>/<run_id>/{meta.yaml, metrics/, params/, tags/, artifacts/}``.
Each metric is one file whose path under ``metrics/`` is the key (a key with ``/`` is a
sub-folder: ``metrics/train/loss`` is ``train/loss``); each line is
``<timestamp_ms> <value> <step>``, or ``<timestamp_ms> <value>`` in old files (step 0,
as MLflow itself reads them), or 5 fields with dataset name and digest (step = third
field; MLflow's own reader returns 0 there). Values are ``float`` spellings (``nan``,
``inf``, ``-inf`` kept). Wall time = timestamp / 1000 (seconds since the epoch).

A path may be an ``mlruns`` folder, a folder holding one, one experiment folder or one
run folder: every run found under it is ingested (``.trash`` and the model registry's
``models`` folder are skipped). The ``artifacts/`` folder is not required (archives in
git lose empty folders; MLflow's API then says "Run not found").

Run name: the ``mlflow.runName`` tag, else ``run_name`` of ``meta.yaml``, else its
``name``, else the run id; when two runs of one ingest share a name, each becomes
``<name>-<first 8 characters of the run id>``. Attributes: ``params`` and ``tags`` (text,
as stored), and ``meta`` (run id, experiment id and name, status, start/end time,
user, lifecycle stage). ``meta.yaml`` is read with the small line parser of
``engine.ingest.lightning`` (no PyYAML dependency).

Source order: runs by experiment then run folder name, metric files by key, lines as
written (repeated steps are kept; the store keeps the last).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from engine.errors import IngestError
from engine.ingest.base import PARSED_SCHEMA, IngestOptions, Parsed, hash_files, parse_float
from engine.ingest.lightning import parse_simple_yaml

FORMAT = "mlflow"

SKIP_DIRS = {".trash", "models", ".git"}


def _read_bytes(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError as e:
        raise IngestError(f"cannot read the file: {e.strerror or e}", path=str(p)) from None


def _read_text(p: Path) -> str:
    return _read_bytes(p).decode("utf-8", "replace")


def _is_run_dir(d: Path) -> bool:
    return d.is_dir() and (d / "metrics").is_dir() and ((d / "meta.yaml").is_file() or (d / "params").is_dir())


def _is_experiment_dir(d: Path) -> bool:
    return d.is_dir() and d.name not in SKIP_DIRS and not (d / "metrics").is_dir() \
        and any(_is_run_dir(c) for c in d.iterdir())


def _run_dirs(path: Path) -> list[Path]:
    if _is_run_dir(path):
        return [path]
    if _is_experiment_dir(path):
        return sorted((c for c in path.iterdir() if _is_run_dir(c)), key=lambda c: c.name)
    if path.is_dir():
        root = path / "mlruns" if (path / "mlruns").is_dir() else path
        exps = [c for c in root.iterdir() if c.name not in SKIP_DIRS and _is_experiment_dir(c)]
        exps.sort(key=lambda c: (0, int(c.name), "") if c.name.isdigit() else (1, 0, c.name))
        return [r for e in exps for r in sorted((c for c in e.iterdir() if _is_run_dir(c)), key=lambda c: c.name)]
    return []


def sniff(path: Path) -> bool:
    path = Path(path)
    if not path.is_dir():
        return False
    try:
        return bool(_run_dirs(path))
    except OSError:
        return False


def _parse_metric_python(path: Path, text: str):
    ts, vals, steps = [], [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (2, 3, 5):
            raise IngestError(f"has {len(parts)} fields; expected 'timestamp value step' (2, 3 or 5 fields).",
                              path=str(path), line=lineno)
        try:
            t = int(parts[0])
        except ValueError:
            raise IngestError(f"timestamp {parts[0]!r} is not an integer (milliseconds).",
                              path=str(path), line=lineno) from None
        try:
            v = parse_float(parts[1])
        except ValueError:
            raise IngestError(f"value {parts[1]!r} is not a number.", path=str(path), line=lineno) from None
        if len(parts) == 2:
            s = 0
        else:
            try:
                s = int(parts[2])
            except ValueError:
                raise IngestError(f"step {parts[2]!r} is not an integer; expected an integer step.",
                                  path=str(path), line=lineno) from None
        if not -(2**63) <= s < 2**63:
            raise IngestError(f"step {s:,} is beyond int64.", path=str(path), line=lineno)
        ts.append(t)
        vals.append(v)
        steps.append(s)
    return np.array(ts, np.float64) / 1e3, np.array(vals, np.float64), np.array(steps, np.int64)


def _parse_metric(path: Path):
    """(wall seconds, values, steps) of one metric file. polars for the common 3-field
    layout; the line-by-line parser for anything else and to name a bad line."""
    raw = _read_bytes(path)
    if raw.strip() and raw.count(b"\n") > 1000:
        try:
            df = pl.read_csv(raw, separator=" ", has_header=False, infer_schema=False,
                             new_columns=["t", "v", "s"])
            t = df["t"].cast(pl.Int64, strict=False)
            v = df["v"].str.strip_chars().cast(pl.Float64, strict=False)
            s = df["s"].cast(pl.Int64, strict=False)
            if not (t.null_count() or v.null_count() or s.null_count()):
                return (t.cast(pl.Float64) / 1e3).to_numpy(), v.to_numpy(), s.to_numpy()
        except pl.exceptions.PolarsError:
            pass
    return _parse_metric_python(path, raw.decode("utf-8", "replace"))


def _read_kv_dir(d: Path) -> dict:
    out = {}
    if d.is_dir():
        for f in sorted(p for p in d.rglob("*") if p.is_file()):
            out[f.relative_to(d).as_posix()] = _read_text(f).rstrip("\n")
    return out


def read(path: Path, *, run: str | None = None, options: IngestOptions = IngestOptions()) -> Parsed:
    path = Path(path)
    runs = _run_dirs(path) if path.is_dir() else []
    if not runs:
        raise IngestError("no MLflow run here (expected mlruns/<experiment>/<run>/metrics/).", path=str(path))
    files: list[Path] = []
    per_run = []
    for rdir in runs:
        meta = {}
        if (rdir / "meta.yaml").is_file():
            files.append(rdir / "meta.yaml")
            meta = parse_simple_yaml(_read_text(rdir / "meta.yaml"))
        exp_meta = {}
        if (rdir.parent / "meta.yaml").is_file():
            files.append(rdir.parent / "meta.yaml")
            exp_meta = parse_simple_yaml(_read_text(rdir.parent / "meta.yaml"))
        params = _read_kv_dir(rdir / "params")
        tags = _read_kv_dir(rdir / "tags")
        files += [p for sub in ("params", "tags") for p in (rdir / sub).rglob("*") if p.is_file()]
        run_id = str(meta.get("run_id") or meta.get("run_uuid") or rdir.name)
        name = tags.get("mlflow.runName") or meta.get("run_name") or meta.get("name") or run_id
        name = str(name).strip() or run_id
        # a dangling link is a metric file that cannot be read: an error, not a silent gap
        metric_files = sorted((p for p in (rdir / "metrics").rglob("*") if p.is_file() or p.is_symlink()),
                              key=lambda p: p.relative_to(rdir / "metrics").as_posix())
        files += metric_files
        attrs = {"params": params, "tags": tags, "meta": {
            "run_id": run_id, "experiment_id": str(meta.get("experiment_id", rdir.parent.name)),
            "experiment_name": exp_meta.get("name"), "status": meta.get("status"),
            "start_time": meta.get("start_time"), "end_time": meta.get("end_time"),
            "user_id": meta.get("user_id"), "lifecycle_stage": meta.get("lifecycle_stage")}}
        per_run.append([name, run_id, metric_files, rdir, attrs])

    if run is not None:
        for r in per_run:
            r[0] = run if len(per_run) == 1 else f"{run}-{r[1][:8]}"
    else:
        seen: dict[str, int] = {}
        for r in per_run:
            seen[r[0]] = seen.get(r[0], 0) + 1
        for r in per_run:
            if seen[r[0]] > 1:
                r[0] = f"{r[0]}-{r[1][:8]}"

    tables = []
    attributes = {}
    for name, run_id, metric_files, rdir, attrs in per_run:
        attributes[name] = attrs
        for mf in metric_files:
            key = mf.relative_to(rdir / "metrics").as_posix()
            wall, values, steps = _parse_metric(mf)
            n = len(values)
            if n == 0:
                continue
            const = lambda s: pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),  # noqa: E731
                                                             pa.array([s])).cast(pa.string())
            tables.append(pa.Table.from_arrays(
                [const(name), const(key), pa.array(steps, pa.int64()), pa.array(values, pa.float64()),
                 pa.array(wall, pa.float64(), mask=~np.isfinite(wall))], schema=PARSED_SCHEMA))
    table = pa.concat_tables(tables) if tables else PARSED_SCHEMA.empty_table()
    return Parsed(format=FORMAT, source=str(path), table=table, attributes=attributes,
                  content_hash=hash_files(files))

