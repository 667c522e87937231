"""A tiny private importer for store tests: JSON lines ``{"run","metric","step","value"[, "wall_time"]}``
in files ending ``.fj``; a folder holding a file ``FAKE_RUN`` is one source (all its .fj files)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import IngestError
from engine.ingest.base import Event, IngestOptions, Parsed, hash_files, make_table

FORMAT = "fake"


def sniff(path) -> bool:
    path = Path(path)
    if path.is_dir():
        return (path / "FAKE_RUN").is_file()
    return path.suffix == ".fj"


def read(path, *, run=None, options=IngestOptions()) -> Parsed:
    path = Path(path)
    files = sorted(path.glob("*.fj")) if path.is_dir() else [path]
    cols = {k: [] for k in ("run", "metric", "step", "value", "wall_time")}
    events = []
    for f in files:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise IngestError(f"not JSON: {e.msg}", path=str(f), line=i) from None
            if "event" in rec:
                events.append(Event(run or rec["run"], rec["step"], rec["event"], rec.get("detail", "")))
                continue
            v = rec["value"]
            if not isinstance(v, (int, float)):
                try:
                    v = float(v)
                except ValueError:
                    raise IngestError(f"value {v!r} is not a number", path=str(f), line=i) from None
            cols["run"].append(run or rec["run"])
            cols["metric"].append(rec["metric"])
            cols["step"].append(rec["step"])
            cols["value"].append(v)
            cols["wall_time"].append(rec.get("wall_time", float("nan")))
    big = any(s >= 2**63 for s in cols["step"])
    steps = [0 if big else s for s in cols["step"]]
    table = make_table(cols["run"], cols["metric"], steps, cols["value"], cols["wall_time"])
    if big:  # like a reader of unsigned steps: the store must refuse what int64 cannot hold
        import pyarrow as pa
        table = table.set_column(2, "step", pa.array(cols["step"], pa.uint64()))
    return Parsed(FORMAT, str(path), table, events=events, content_hash=hash_files(files))
