"""Weights & Biases runs, read offline without an account and without the ``wandb`` package.

Two sources (shared/research/ecosystem.md 1.4):

1. **Run folders** ``wandb/run-<YYYYMMDD_HHMMSS>-<id>/`` (or ``offline-run-...``) with the
   binary transaction log ``run-<id>.wandb``: header ``:W&B`` + magic ``0xBEE1`` + version
   (7 bytes), then LevelDB-log framing: 32 KiB blocks of chunks ``uint32 crc, uint16
   length, uint8 type`` (1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST; a block tail under 7 bytes
   is padding), checksum = ``zlib.crc32(data, zlib.crc32(type byte))``. Each record is
   a protobuf ``Record``: ``history`` (2) -> ``item`` (1) {``key`` 1, ``nested_key`` 2,
   ``value_json`` 16; newer SDKs may write typed ``integer`` 5 / ``number`` 6 instead},
   ``summary`` (3), ``config`` (5), ``run`` (17: ``run_id`` 1, ``project`` 3, ``config``
   4, ``display_name`` 8, ``host`` 13, ``start_time`` 17, ``resumed`` 18), ``exit`` (18).
2. **Exported history**: ``files/wandb-history.jsonl`` of old SDKs, a JSON list of row
   dicts, or a CSV with a ``_step`` column (``run.history().to_csv()``) or the UI's panel
   export (``Step`` + ``<run> - <metric>`` columns; ``__MIN``/``__MAX`` columns skipped).

Step axis: ``_step`` (W&B's row counter) unless every history row of the run that holds
a metric also holds one of ``train/global_step``, ``trainer/global_step``,
``global_step``: then that key is the step (the training step the HF and Lightning
integrations log) and is not itself a metric. The choice is stored in the run's
attributes (``step_key``). Keys starting with ``_`` (``_runtime``, ``_timestamp``,
``_wandb``) are not metrics; ``_timestamp`` is the wall time. Nested dict values are
flattened with ``.`` (``{"a": {"b": 1}}`` -> ``a.b``); media/histogram dicts (with a
``_type``), strings and booleans are skipped; ``"NaN"``/``"Infinity"`` strings are the
non-finite numbers W&B writes.

Run name: the run id (``run_id`` of the run record, else the folder's id). Several
folders with one id (a resumed run) are one run, read in folder order; a step going
backwards between them is an ``Event(kind="resume")``. Config (config records, the run
record's config, else ``files/config.yaml``), the final summary (summary records, else
``files/wandb-summary.json``) and the run record's metadata become run attributes.

Truncation. A ``.wandb`` file without an exit record, whose data stops at zero padding or
inside a record (a run still writing, or killed: two files of the corpus), is read up to
its last complete record and reported: ``Event(kind="note")`` plus attributes
``complete=False``, ``truncated_at`` (byte). A bad chunk checksum, an impossible chunk
type sequence or an unparsable record raises ``IngestError`` naming the file and byte.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import IngestError
from engine.ingest._protobuf import ProtobufError, as_int64, double_from_bits, iter_fields
from engine.ingest.base import Event, IngestOptions, Parsed, hash_files, make_table, parse_float

FORMAT = "wandb"

HEADER = b":W&B"
BLOCK = 32768
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
STEP_KEYS = ("train/global_step", "trainer/global_step", "global_step")
_RUN_DIR = re.compile(r"^(?:offline-)?run-(\d{8}_\d{6})-([A-Za-z0-9]+)$")
_HISTORY_NAMES = ("wandb-history.jsonl",)


# ---------------------------------------------------------------- framing


@dataclass
class LogScan:
    records: list  # (byte offset of the record's first chunk, bytes)
    end: int  # byte where reading stopped
    size: int
    torn: str | None  # why the data stopped early ("zero padding", "inside a record", ...)


def scan_log(path: Path, data: bytes | None = None) -> LogScan:
    """Split a ``.wandb`` file into records. Raises IngestError on corruption."""
    if data is None:
        data = Path(path).read_bytes()
    n = len(data)
    if n < CHUNK_HEADER or data[:4] != HEADER:
        raise IngestError(f"byte 0: not a W&B transaction log (expected the header {HEADER!r}, "
                          f"found {data[:4]!r})", path=str(path))
    magic, version = struct.unpack_from("<HB", data, 4)
    if magic != 0xBEE1:
        raise IngestError(f"byte 4: W&B log magic is {magic:#06x}, expected 0xbee1", path=str(path))
    if version != 0:
        raise IngestError(f"byte 6: W&B log version {version}; this reader knows version 0", path=str(path))
    records = []
    pos = CHUNK_HEADER
    pending: list[bytes] | None = None
    pending_at = 0
    while pos < n:
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < CHUNK_HEADER:
            pos += left_in_block  # block trailer: padding
            continue
        if n - pos < CHUNK_HEADER:
            return LogScan(records, pos, n, "inside a chunk header")
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if crc == 0 and length == 0 and kind == 0:
            # preallocated, never written: the writer stopped here
            rest = data[pos:]
            return LogScan(records, pos, n, "zero padding" if rest.count(0) == len(rest) else
                           "zero chunk header before more data")
        if pos + CHUNK_HEADER + length > n:
            return LogScan(records, pos, n, "inside a record")
        if length > left_in_block - CHUNK_HEADER:
            raise IngestError(f"byte {pos:,}: chunk of {length:,} bytes crosses a 32 KiB block boundary "
                              "(corrupt W&B log)", path=str(path))
        body = data[pos + CHUNK_HEADER:pos + CHUNK_HEADER + length]
        if zlib.crc32(body, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise IngestError(f"byte {pos:,}: chunk checksum does not match (corrupt W&B log); "
                              "nothing was ingested", path=str(path))
        if kind == FULL and pending is None:
            records.append((pos, body))
        elif kind == FIRST and pending is None:
            pending, pending_at = [body], pos
        elif kind == MIDDLE and pending is not None:
            pending.append(body)
        elif kind == LAST and pending is not None:
            pending.append(body)
            records.append((pending_at, b"".join(pending)))
            pending = None
        else:
            raise IngestError(f"byte {pos:,}: chunk type {kind} where "
                              f"{'a MIDDLE or LAST chunk' if pending is not None else 'a FULL or FIRST chunk'} "
                              "was expected (corrupt W&B log)", path=str(path))
        pos += CHUNK_HEADER + length
    if pending is not None:
        return LogScan(records, pending_at, n, "inside a record")
    return LogScan(records, pos, n, None)


# ---------------------------------------------------------------- records


@dataclass
class RunLog:
    path: Path
    run_id: str | None = None
    rows: list = field(default_factory=list)  # (record byte offset, {key: value or None})
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    exit_code: int | None = None
    torn: str | None = None
    torn_at: int | None = None
    n_records: int = 0


def _text(mv) -> str:
    return bytes(mv).decode("utf-8", errors="replace")


def _json_value(text: str):
    try:
        return float(text)  # the common case: a plain number, also NaN/Infinity spellings
    except ValueError:
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def _items(mv, key_field=1, nested_field=2, json_field=16):
    """Decode repeated items {key, nested_key, value_json, typed values}: yield (key, value)."""
    key = None
    nested = []
    value = None
    for f, w, v, _ in iter_fields(mv):
        if f == key_field and w == 2:
            key = _text(v)
        elif f == nested_field and w == 2:
            nested.append(_text(v))
        elif f == json_field and w == 2:
            value = _json_value(_text(v))
        elif f == 5 and w == 0:  # typed integer (newer SDKs)
            value = float(as_int64(v))
        elif f == 6 and w == 1:  # typed number
            value = double_from_bits(v)
    name = ".".join(nested) if nested else key
    return name, value


def _item_list(mv, field_no=1):
    out = []
    for f, w, v, _ in iter_fields(mv):
        if f == field_no and w == 2:
            out.append(_items(v))
    return out


def read_log(path: Path) -> RunLog:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IngestError(f"cannot read the file: {e}", path=str(path)) from e
    scan = scan_log(path, data)
    log = RunLog(path=path, n_records=len(scan.records))
    if scan.torn is not None:
        log.torn, log.torn_at = scan.torn, scan.end
    for offset, rec in scan.records:
        try:
            _record(log, offset, rec)
        except ProtobufError as e:
            raise IngestError(f"byte {offset:,} (record {len(log.rows)}): not a valid W&B Record protobuf: "
                              f"{e.reason} at byte {e.offset} of the record; nothing was ingested",
                              path=str(path)) from e
    return log


def _record(log: RunLog, offset: int, rec: bytes) -> None:
    for f, w, v, _ in iter_fields(rec):
        if w != 2:
            continue
        if f == 2:  # history
            row = {}
            step_num = None
            for f2, w2, v2, _ in iter_fields(v):
                if f2 == 1 and w2 == 2:
                    k, val = _items(v2)
                    if k is not None:
                        row[k] = val
                elif f2 == 2 and w2 == 2:
                    for f3, w3, v3, _ in iter_fields(v2):
                        if f3 == 1 and w3 == 0:
                            step_num = as_int64(v3)
            if "_step" not in row and step_num is not None:
                row["_step"] = float(step_num)
            log.rows.append((offset, row))
        elif f == 3:  # summary
            for k, val in _item_list(v):
                if k is not None:
                    log.summary[k] = val
        elif f == 5:  # config
            for k, val in _item_list(v):
                if k is not None:
                    log.config[k] = val
        elif f == 17:  # run
            for f2, w2, v2, _ in iter_fields(v):
                if w2 == 2 and f2 in (1, 2, 3, 6, 7, 8, 9, 13):
                    name = {1: "run_id", 2: "entity", 3: "project", 6: "group", 7: "job_type", 8: "display_name",
                            9: "notes", 13: "host"}[f2]
                    log.meta[name] = _text(v2)
                elif f2 == 4 and w2 == 2:
                    for k, val in _item_list(v2):
                        if k is not None:
                            log.config.setdefault(k, val)
                elif f2 == 17 and w2 == 2:
                    secs = 0
                    for f3, w3, v3, _ in iter_fields(v2):
                        if f3 == 1 and w3 == 0:
                            secs = as_int64(v3)
                    log.meta["start_time"] = float(secs)
                elif f2 == 18 and w2 == 0:
                    log.meta["resumed"] = bool(v2)
                elif f2 == 14 and w2 == 0:
                    log.meta["starting_step"] = as_int64(v2)
            if log.meta.get("run_id"):
                log.run_id = log.meta["run_id"]
        elif f == 18:  # exit
            code = 0
            for f2, w2, v2, _ in iter_fields(v):
                if f2 == 1 and w2 == 0:
                    code = as_int64(v2) & 0xFFFFFFFF
                    code = code - (1 << 32) if code >= (1 << 31) else code
            log.exit_code = code


# ---------------------------------------------------------------- values -> points


def _numeric_leaves(name: str, value, out: list, text_at: dict | None = None, row: int = 0) -> None:
    """Append (metric, float) for numeric leaves of a history value; note in ``text_at``
    the first text leaf of each name (text under a name that is a number elsewhere is
    an error, see _rows_to_columns)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        out.append((name, float(value)))
    elif isinstance(value, str):
        try:
            out.append((name, parse_float(value)))
        except ValueError:
            if text_at is not None and name not in text_at:
                text_at[name] = (row, value)
            return  # text, not a number
    elif isinstance(value, dict) and "_type" not in value:
        for k, v in value.items():
            _numeric_leaves(f"{name}.{k}", v, out, text_at, row)


def _choose_step_key(rows) -> str:
    with_metrics = [r for r in rows if any(not k.startswith("_") for k in r)]
    for key in STEP_KEYS:
        if with_metrics and all(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
                                and math.isfinite(r[key]) and float(r[key]).is_integer() for r in with_metrics):
            return key
    return "_step"


def _rows_to_columns(rows, step_key: str, where):
    """rows: list of dicts. Returns metric, step, value, wall lists. ``where(i)`` names row i."""
    metrics, steps, values, walls = [], [], [], []
    text_at: dict[str, tuple[int, str]] = {}  # first text value of each key: (row, value)
    numeric_keys: set[str] = set()
    for i, row in enumerate(rows):
        points = []
        for k, v in row.items():
            if k.startswith("_") or k == step_key:
                continue
            _numeric_leaves(k, v, points, text_at, i)
        if not points:
            continue
        numeric_keys.update(m for m, _ in points)
        s = row.get(step_key)
        if s is None:
            s = i if step_key == "_step" else None
        if s is None or isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) \
                or not float(s).is_integer():
            raise IngestError(f"{where(i)}: {step_key} is {s!r}; expected an integer step")
        if abs(s) >= 2**63:
            raise IngestError(f"{where(i)}: {step_key} {s!r} does not fit a 64-bit step")
        ts = row.get("_timestamp")
        wall = float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else math.nan
        for m, v in points:
            metrics.append(m)
            steps.append(int(s))
            values.append(v)
            walls.append(wall)
    mixed = [(i, k, v) for k, (i, v) in text_at.items() if k in numeric_keys]
    if mixed:
        i, k, v = min(mixed)
        raise IngestError(f"{where(i)}: {k!r} holds {v!r}, a number in other rows; expected a number "
                          "(a key that is always text is skipped as a label)")
    return metrics, steps, values, walls


# ---------------------------------------------------------------- discovery


def _is_history_export(path: Path) -> bool:
    if path.name in _HISTORY_NAMES:
        return True
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json", ".jsonl"):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    first = head.lstrip("\ufeff").splitlines()[0] if head else ""
    if suffix == ".csv":
        cols = [c.strip().strip('"') for c in first.split(",")]
        return "_step" in cols or (bool(cols) and cols[0] == "Step" and any(" - " in c for c in cols[1:]))
    return '"_step"' in head


def sniff(path: Path) -> bool:
    path = Path(path)
    if path.is_file():
        if path.suffix == ".wandb":
            try:
                with open(path, "rb") as f:
                    return f.read(4) == HEADER
            except OSError:
                return False
        return _is_history_export(path)
    if path.is_dir():
        depth0 = len(path.parts)
        for dirpath, dirnames, filenames in os.walk(path):
            if any(f.endswith(".wandb") or f in _HISTORY_NAMES for f in filenames):
                return True
            if len(Path(dirpath).parts) - depth0 >= 3:
                dirnames[:] = []
    return False


def _find(root: Path) -> tuple[list[Path], list[Path]]:
    logs, histories = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            if f.endswith(".wandb"):
                logs.append(Path(dirpath) / f)
            elif f in _HISTORY_NAMES:
                histories.append(Path(dirpath) / f)
    return logs, histories


def _run_dir_of(path: Path) -> Path:
    d = path.parent
    return d.parent if d.name == "files" else d


def _folder_id(run_dir: Path) -> str | None:
    m = _RUN_DIR.match(run_dir.name)
    return m.group(2) if m else None


def _side_files(run_dir: Path) -> tuple[dict, dict]:
    """config.yaml (if PyYAML is importable) and wandb-summary.json of a run folder."""
    config, summary = {}, {}
    files = run_dir / "files"
    summ = files / "wandb-summary.json"
    if summ.is_file():
        try:
            summary = json.loads(summ.read_text())
        except ValueError:
            summary = {}
    cfg = files / "config.yaml"
    if cfg.is_file():
        try:
            import yaml  # optional: the .wandb log carries the config itself
            raw = yaml.safe_load(cfg.read_text()) or {}
            config = {k: (v.get("value") if isinstance(v, dict) and "value" in v else v)
                      for k, v in raw.items() if k not in ("wandb_version",)}
        except Exception:  # noqa: BLE001 - a side file we can do without
            config = {}
    return config, summary


def _clean(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "_wandb"}


# ---------------------------------------------------------------- read


def read(path: Path, *, run: str | None = None, options: IngestOptions = IngestOptions()) -> Parsed:
    path = Path(path)
    if path.is_file():
        if path.suffix == ".wandb":
            logs, histories = [path], []
        elif _is_history_export(path):
            return _read_export(path, run)
        else:
            raise IngestError("not a W&B file (.wandb log, wandb-history.jsonl, or a history CSV/JSON "
                              "with a _step column)", path=str(path))
    elif path.is_dir():
        logs, histories = _find(path)
        if not logs and not histories:
            raise IngestError("no W&B run (run-*/run-<id>.wandb or wandb-history.jsonl) under this folder",
                              path=str(path))
    else:
        raise IngestError("no such file or folder", path=str(path))

    if not logs:  # old-style folders with only wandb-history.jsonl
        parts = [_read_export(h, run if len(histories) == 1 else None) for h in histories]
        return _merge(path, parts, histories)

    strict_tail = bool(getattr(options, "strict_tail", False))
    parsed_logs = []
    for lp in logs:
        log = read_log(lp)
        if log.torn is not None and strict_tail:
            raise IngestError(f"byte {log.torn_at:,}: the log stops ({log.torn}) without an exit record; "
                              "nothing was ingested (strict_tail is set)", path=str(lp))
        if log.run_id is None:
            log.run_id = _folder_id(_run_dir_of(lp)) or lp.stem.removeprefix("run-")
        parsed_logs.append(log)
    groups: dict[str, list[RunLog]] = {}
    for log in parsed_logs:
        groups.setdefault(log.run_id, []).append(log)

    metric, step, value, wall, runs = [], [], [], [], []
    events: list[Event] = []
    attributes: dict[str, dict] = {}
    for run_id in sorted(groups):
        logs_of_run = sorted(groups[run_id], key=lambda lg: _run_dir_of(lg.path).name)
        name = run if (run is not None and len(groups) == 1) else (f"{run}.{run_id}" if run else run_id)
        step_key = _choose_step_key([r for lg in logs_of_run for _, r in lg.rows])
        attrs = attributes.setdefault(name, {"files": [], "history_rows": 0})
        config, summary, meta = {}, {}, {}
        prev_max = None
        for lg in logs_of_run:
            rel = _rel(lg.path, path)
            side_cfg, side_sum = _side_files(_run_dir_of(lg.path))
            config.update(side_cfg)
            config.update(lg.config)
            summary.update(side_sum)
            summary.update(lg.summary)
            meta.update(lg.meta)
            rows = [r for _, r in lg.rows]
            offsets = [o for o, _ in lg.rows]
            try:
                m, s, v, w = _rows_to_columns(
                    rows, step_key, lambda i, offsets=offsets: f"history row {i + 1:,} (record at byte {offsets[i]:,})")
            except IngestError as e:
                raise IngestError(e.reason, path=str(lg.path)) from None
            if s and prev_max is not None:
                back = s[0] <= prev_max
                events.append(Event(run=name, step=s[0], kind="resume",
                                    detail=f"{rel}: resumed run (same id {run_id}) continues at step {s[0]:,} "
                                           f"after step {prev_max:,}" + ("; later values win" if back else "")))
            if s:
                prev_max = max(s) if prev_max is None else max(prev_max, max(s))
            metric += m
            step += s
            value += v
            wall += w
            runs += [name] * len(m)
            attrs["files"].append(rel)
            attrs["history_rows"] += len(rows)
            if lg.torn is not None or lg.exit_code is None:
                where = f"stops at byte {lg.torn_at:,} ({lg.torn})" if lg.torn else "ends cleanly"
                events.append(Event(run=name, step=s[-1] if s else 0, kind="note",
                                    detail=f"{rel}: no exit record; the log {where} after {lg.n_records:,} "
                                           f"complete records ({len(rows):,} history rows): the run was still "
                                           "writing or was killed"))
                attrs.setdefault("truncated", []).append(
                    {"file": rel, "byte": lg.torn_at, "reason": lg.torn or "no exit record"})
            if lg.exit_code is not None:
                attrs["exit_code"] = lg.exit_code
        attrs["complete"] = all(lg.exit_code is not None and lg.torn is None for lg in logs_of_run)
        attrs["step_key"] = step_key
        attrs["config"] = _clean(config)
        attrs["summary"] = _clean(summary)
        attrs["run"] = meta
    table = make_table(runs, metric, step, value, np.asarray(wall, dtype=np.float64) if wall else None)
    return Parsed(format=FORMAT, source=str(path), table=table, attributes=attributes, events=events,
                  content_hash=hash_files(logs))


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.relative_to(root if root.is_dir() else root.parent))
    except ValueError:
        return p.name


def _merge(path: Path, parts: list[Parsed], files) -> Parsed:
    import pyarrow as pa
    table = pa.concat_tables([p.table for p in parts]) if parts else make_table([], [], [], [])
    attrs, events = {}, []
    for p in parts:
        attrs.update(p.attributes)
        events.extend(p.events)
    return Parsed(format=FORMAT, source=str(path), table=table, attributes=attrs, events=events,
                  content_hash=hash_files(files))


# ---------------------------------------------------------------- exports


def _read_export(path: Path, run: str | None) -> Parsed:
    run_dir = _run_dir_of(path)
    default_run = run or _folder_id(run_dir) or (run_dir.name if path.name in _HISTORY_NAMES else path.stem)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise IngestError(f"cannot read the file as UTF-8 text: {e}", path=str(path)) from e
    suffix = path.suffix.lower()
    attrs: dict = {}
    if suffix == ".csv":
        reader = csv.reader(io.StringIO(text))
        try:
            header = next(reader)
        except StopIteration:
            raise IngestError("line 1: empty CSV file", path=str(path)) from None
        header = [h.strip() for h in header]
        if "_step" in header:
            return _csv_history(path, header, reader, default_run)
        return _csv_panel(path, header, reader, run)
    rows: list[dict] = []
    where_line: list[int] = []
    if suffix == ".json" and text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise IngestError(f"invalid JSON ({e}); nothing was ingested", path=str(path)) from e
        for i, r in enumerate(data):
            if not isinstance(r, dict):
                raise IngestError(f"item {i + 1:,} of the JSON list is {type(r).__name__}, expected an object",
                                  path=str(path))
            rows.append(r)
            where_line.append(i + 1)
        label = "item"
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError as e:
                raise IngestError(f"invalid JSON ({e.args[0] if e.args else e}); nothing was ingested",
                                  path=str(path), line=lineno) from e
            if not isinstance(r, dict):
                raise IngestError(f"a {type(r).__name__} where a history row object was expected",
                                  path=str(path), line=lineno)
            rows.append(r)
            where_line.append(lineno)
        label = "line"
    step_key = _choose_step_key(rows)
    try:
        m, s, v, w = _rows_to_columns(rows, step_key, lambda i: f"{label} {where_line[i]:,}")
    except IngestError as e:
        raise IngestError(e.reason, path=str(path)) from None
    config, summary = _side_files(run_dir) if path.name in _HISTORY_NAMES else ({}, {})
    attrs = {"step_key": step_key, "history_rows": len(rows)}
    if config:
        attrs["config"] = _clean(config)
    if summary:
        attrs["summary"] = _clean(summary)
    table = make_table(default_run, m, s, v, np.asarray(w, dtype=np.float64) if w else None)
    return Parsed(format=FORMAT, source=str(path), table=table, attributes={default_run: attrs},
                  content_hash=hash_files([path]))


def _cell(path, lineno, col, text):
    t = text.strip()
    if t == "":
        return None
    try:
        return parse_float(t)
    except ValueError:
        raise IngestError(f"column {col!r} holds {t!r}; expected a number (or empty)",
                          path=str(path), line=lineno) from None


_INT = re.compile(r"[-+]?\d+")


def _step_cell(path, lineno, col, text):
    """An integer step from a CSV cell (``12``, ``12.0``, ``1.2e3``), exact beyond 2**53;
    None for an empty cell; IngestError for anything else or a step past int64."""
    t = text.strip()
    if t == "":
        return None
    if _INT.fullmatch(t):
        step = int(t)
    else:
        try:
            f = parse_float(t)
        except ValueError:
            f = math.nan
        if not math.isfinite(f) or not f.is_integer():
            raise IngestError(f"column {col!r} holds {text!r}; expected an integer step", path=str(path), line=lineno)
        step = int(f)
    if not -(2**63) <= step < 2**63:
        raise IngestError(f"column {col!r} holds {text.strip()!r}: step {step} is beyond int64", path=str(path),
                          line=lineno, step=None)
    return step


def _csv_history(path, header, reader, run_name) -> Parsed:
    step_i = header.index("_step")
    ts_i = header.index("_timestamp") if "_timestamp" in header else None
    metric_cols = [(i, h) for i, h in enumerate(header) if not h.startswith("_") and h]
    step_col = next((h for h in STEP_KEYS if h in header), None)
    data_rows = list(enumerate(reader, 2))
    # a training-step column is the step when every row with a metric has one (see module doc)
    if step_col is not None:
        si = header.index(step_col)
        if all(r[si].strip() for _, r in data_rows if any(r[i].strip() for i, h in metric_cols if h != step_col)):
            step_i = si
            metric_cols = [(i, h) for i, h in metric_cols if h != step_col]
        else:
            step_col = None
    # text columns (no numeric cell at all) are skipped, not errors
    numeric = []
    for i, h in metric_cols:
        cells = [r[i].strip() for _, r in data_rows if i < len(r) and r[i].strip()]
        ok = 0
        for c in cells:
            try:
                parse_float(c)
                ok += 1
            except ValueError:
                pass
        if ok:
            numeric.append((i, h))
    m, s, v, w = [], [], [], []
    for lineno, r in data_rows:
        if len(r) != len(header):
            raise IngestError(f"{len(r)} fields where the header has {len(header)}", path=str(path), line=lineno)
        wall = _cell(path, lineno, "_timestamp", r[ts_i]) if ts_i is not None else None
        step = ...
        for i, h in numeric:
            val = _cell(path, lineno, h, r[i])
            if val is None:
                continue
            if step is ...:
                step = _step_cell(path, lineno, header[step_i], r[step_i])
            if step is None:
                raise IngestError(f"column {header[step_i]!r} holds {r[step_i]!r}; expected an integer step",
                                  path=str(path), line=lineno)
            m.append(h)
            s.append(step)
            v.append(val)
            w.append(math.nan if wall is None else wall)
    table = make_table(run_name, m, s, v, np.asarray(w, dtype=np.float64) if w else None)
    attrs = {"step_key": step_col or "_step", "history_rows": len(data_rows)}
    return Parsed(format=FORMAT, source=str(path), table=table, attributes={run_name: attrs},
                  content_hash=hash_files([path]))


def _csv_panel(path, header, reader, run) -> Parsed:
    """W&B UI panel export: ``Step``, ``<run> - <metric>``, ``<run> - <metric>__MIN/__MAX``."""
    cols = []
    for i, h in enumerate(header[1:], 1):
        if " - " not in h or h.endswith("__MIN") or h.endswith("__MAX"):
            continue
        r, metric = h.split(" - ", 1)
        cols.append((i, (run + "." + r) if run else r, metric))
    runs, m, s, v = [], [], [], []
    for lineno, row in enumerate(reader, 2):
        if len(row) != len(header):
            raise IngestError(f"{len(row)} fields where the header has {len(header)}", path=str(path), line=lineno)
        step = ...
        for i, r, metric in cols:
            val = _cell(path, lineno, header[i], row[i])
            if val is None:
                continue
            if step is ...:
                step = _step_cell(path, lineno, "Step", row[0])
            if step is None:
                raise IngestError(f"column 'Step' holds {row[0]!r}; expected an integer step",
                                  path=str(path), line=lineno)
            runs.append(r)
            m.append(metric)
            s.append(step)
            v.append(val)
    table = make_table(runs, m, s, v)
    return Parsed(format=FORMAT, source=str(path), table=table,
                  attributes={r: {"step_key": "Step"} for r in sorted(set(runs))},
                  content_hash=hash_files([path]))
