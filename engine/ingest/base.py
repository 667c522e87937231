"""What every importer returns, and the helpers they share.

An importer module in ``engine/ingest/`` exposes:

- ``FORMAT``: a short name ("tensorboard", "hf_trainer_state", ...), stored in the runs table;
- ``sniff(path: Path) -> bool``: cheap check (name, first bytes) whether it reads ``path``
  (a file or a folder);
- ``read(path: Path, *, run: str | None = None, options: IngestOptions) -> Parsed``:
  parse everything, in source order, raising ``IngestError`` that names the file and the
  line/byte/record on bad input. It never writes anything.

The store deduplicates (last value in source order wins per (run, metric, step)),
sorts, validates names and writes atomically; importers only parse.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Column layout of Parsed.table (source order, not deduplicated, not sorted).
PARSED_SCHEMA = pa.schema(
    [
        pa.field("run", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("wall_time", pa.float64(), nullable=True),  # seconds since the epoch, UTC
    ]
)


@dataclass
class Event:
    run: str
    step: int
    kind: str  # lr_change, data_refresh, resume, phase, note
    detail: str


@dataclass
class IngestOptions:
    """Options the user can pass to importers.

    text_patterns: extra regular expressions for text logs; each must have named groups
    ``step`` and either (``key``, ``value``) or named metric groups.
    """

    text_patterns: list[str] = field(default_factory=list)
    # Binary logs (TensorBoard, .wandb): a half-written last record is reported as a
    # note event and in the run's attributes; strict_tail=True refuses such files.
    strict_tail: bool = False
    # TensorBoard: verify the masked CRC-32C of every record (about 1.5 s per 4M events).
    verify_crc: bool = True


@dataclass
class Parsed:
    format: str
    source: str  # the path the user gave (file or folder), as a string
    table: pa.Table  # PARSED_SCHEMA
    attributes: dict[str, dict] = field(default_factory=dict)  # run -> params/config/tags
    events: list[Event] = field(default_factory=list)
    content_hash: str = ""  # sha256 of the bytes read, see hash_files

    @property
    def runs(self) -> list[str]:
        if not self.table.num_rows:
            return []
        return sorted(pc.unique(self.table.column("run")).to_pylist())


def make_table(run, metric, step, value, wall_time=None) -> pa.Table:
    """Build a PARSED_SCHEMA table from columns (lists or arrays).

    ``run`` and ``metric`` may be a single string (broadcast) or a sequence.
    ``wall_time`` None means unknown for every row; NaN entries become null.
    """
    step = np.asarray(step, dtype=np.int64)
    value = np.asarray(value, dtype=np.float64)
    n = len(step)
    if len(value) != n:
        raise ValueError("make_table: step and value lengths differ")

    def col(x):
        if isinstance(x, str):
            return pa.array([x] * n, pa.string()) if n < 1024 else pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, dtype=np.int32)), pa.array([x])).cast(pa.string())
        return pa.array(x, pa.string())

    if wall_time is None:
        wt = pa.nulls(n, pa.float64())
    else:
        w = np.asarray(wall_time, dtype=np.float64)
        wt = pa.array(w, pa.float64(), mask=~np.isfinite(w))
    return pa.Table.from_arrays([col(run), col(metric), pa.array(step), pa.array(value), wt],
                                schema=PARSED_SCHEMA)


def hash_files(paths) -> str:
    """sha256 over the relative names and bytes of ``paths`` (sorted), for idempotent ingest."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(str(p.name).encode())
        h.update(b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def parse_float(text: str) -> float:
    """Parse a logged number, accepting the spellings of NaN/Inf that loggers write
    (nan, NaN, inf, Infinity, -inf, -Infinity). Raises ValueError otherwise."""
    t = text.strip()
    low = t.lower()
    if low in ("nan", "+nan", "-nan"):
        return float("nan")
    if low in ("inf", "+inf", "infinity", "+infinity"):
        return float("inf")
    if low in ("-inf", "-infinity"):
        return float("-inf")
    return float(t)
