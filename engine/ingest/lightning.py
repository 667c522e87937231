"""PyTorch Lightning ``CSVLogger`` folders: ``<save_dir>/<name>/version_<N>/metrics.csv``
plus ``hparams.yaml``.

``metrics.csv`` is wide and sparse: a ``step`` column, usually ``epoch``, one column per
logged key (``x_step``/``x_epoch`` for ``on_step``/``on_epoch`` logging), empty cells
elsewhere. Each non-empty cell is a point at that row's ``step``; ``epoch`` is a curve
like any other (the table rules of ``engine.ingest.table`` apply: NaN spellings kept,
empty cells missing, bad cells are errors naming the line and column).

What a path may be: one ``metrics.csv``, one ``version_N`` folder, or the experiment
folder holding ``version_*`` sub-folders (e.g. ``lightning_logs/``).

Runs and resumes (decided here): versions are taken in numeric order; a version whose
first step is larger than the last step of an earlier run (and whose first epoch is not
below that run's last epoch) continues that run: it is a resume, recorded as a
``resume`` event at its first step (when several runs qualify, the one that ended
closest below). Any other version starts a new run. A run is named
``<experiment>-v<N>`` with N its first version, and ``<experiment>`` the folder holding
the versions, or the folder above it when that one is the default ``lightning_logs``.
So in the corpus version_0 + version_5 (steps 49-140,739 then 140,749-197,035) are one
run ``slm-training-wikitext103-v0`` with a resume at step 140,749, and version_7
(restarting at step 49) is the run ``slm-training-wikitext103-v7``. A single file read
alone is named the same way from its own version.

Attributes: ``hparams`` (of the latest version of the run, from ``hparams.yaml``, read
by a small line parser: flat ``key: value`` lines, nested blocks as dotted keys, scalars
typed as YAML would, anything else kept as text; no PyYAML dependency) and ``versions``
(per version: first/last step, rows, hparams).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import IngestError
from engine.ingest import table as _table
from engine.ingest.base import PARSED_SCHEMA, Event, IngestOptions, Parsed, hash_files

FORMAT = "lightning_csv"

_VERSION = re.compile(r"version_(\d+)$")
_INT = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$")


def _scalar(text: str):
    t = text.strip()
    if t == "" or t in ("null", "Null", "NULL", "~"):
        return None
    if t in ("true", "True", "TRUE"):
        return True
    if t in ("false", "False", "FALSE"):
        return False
    if _INT.match(t):
        return int(t)
    if _FLOAT.match(t):
        low = t.lower().lstrip("+")
        if low in (".inf", "-.inf", ".nan"):
            return float(low.replace(".", ""))
        return float(t)
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    return t


def parse_simple_yaml(text: str) -> dict:
    """Flat ``key: value`` YAML as Lightning and MLflow write it. Nested mappings become
    dotted keys; list items (``- x``) are collected into lists; anything fancier is kept
    as its text. Never executes or resolves tags."""
    out: dict = {}
    stack: list[tuple[int, str]] = []  # (indent, key prefix)
    last_key = None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#") or raw.strip() in ("---", "..."):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        while stack and indent <= stack[-1][0]:
            stack.pop()
        prefix = stack[-1][1] + "." if stack else ""
        if line.startswith("- "):
            if last_key is not None:
                cur = out.get(last_key)
                if not isinstance(cur, list):
                    cur = [] if cur is None else [cur]
                cur.append(_scalar(line[2:]))
                out[last_key] = cur
            continue
        key, sep, rest = line.partition(":")
        if not sep or (rest and not rest.startswith(" ")):
            continue
        key = prefix + key.strip().strip("'\"")
        rest = rest.strip()
        if rest.startswith("!!"):  # a python object tag: keep the text, do not interpret
            out[key] = rest
            last_key = key
            continue
        if rest == "":
            out[key] = None
            stack.append((indent, key))
            last_key = key
        else:
            out[key] = _scalar(rest)
            last_key = key
    return out


def _version_dirs(path: Path) -> list[Path]:
    """The version folders a path stands for, in numeric order."""
    if path.is_file():
        return [path.parent]
    if (path / "metrics.csv").is_file():
        return [path]
    found = [d for d in path.iterdir() if d.is_dir() and _VERSION.match(d.name) and (d / "metrics.csv").is_file()]
    if not found and (path / "lightning_logs").is_dir():
        return _version_dirs(path / "lightning_logs")
    return sorted(found, key=lambda d: int(_VERSION.match(d.name).group(1)))


def _experiment_name(version_dir: Path) -> str:
    exp = version_dir.resolve().parent
    if exp.name == "lightning_logs" and exp.parent.name:
        return exp.parent.name
    return exp.name or "lightning"


def sniff(path: Path) -> bool:
    path = Path(path)
    if path.is_file():
        return path.name == "metrics.csv" and _VERSION.match(path.parent.name) is not None
    if not path.is_dir():
        return False
    try:
        return bool(_version_dirs(path)) and (
            _VERSION.match(path.name) is not None or any(_VERSION.match(d.name) for d in _version_dirs(path)))
    except OSError:
        return False


def _version_label(d: Path) -> str:
    m = _VERSION.match(d.name)
    return f"v{m.group(1)}" if m else d.name


def read(path: Path, *, run: str | None = None, options: IngestOptions = IngestOptions()) -> Parsed:
    path = Path(path)
    versions = _version_dirs(path) if path.exists() else []
    if not versions:
        raise IngestError("no Lightning version folder with a metrics.csv here (expected version_N/metrics.csv).",
                          path=str(path))
    chains: list[dict] = []  # run name, last step, last epoch, version names
    tables = []
    events: list[Event] = []
    attributes: dict[str, dict] = {}
    files: list[Path] = []
    for vdir in versions:
        csv = vdir / "metrics.csv"
        files.append(csv)
        df, where = _table._read_csv(csv)
        if df.width == 0 or df.height == 0:
            continue
        if _table._find(df.columns, ("step",)) is None:
            raise IngestError(f"no \"step\" column (columns: {', '.join(df.columns[:12])}); a Lightning "
                              "metrics.csv always has one.", path=str(csv))
        parsed = _table.frame_to_parsed(df, csv, where, run="?", source=str(csv), fmt=FORMAT, step_names=("step",))
        t = parsed.table
        if t.num_rows == 0:
            continue
        steps = t.column("step").to_numpy()
        first, last = int(steps.min()), int(steps.max())
        # first/last epoch from the epoch column of the rows at the first/last step
        ep = t.filter(pc.equal(t.column("metric"), "epoch")).column("value").to_numpy()
        first_epoch = float(ep[0]) if ep.size else None
        last_epoch = float(np.nanmax(ep)) if ep.size else None
        hp_file = vdir / "hparams.yaml"
        hparams = {}
        if hp_file.is_file():
            files.append(hp_file)
            hparams = parse_simple_yaml(hp_file.read_text(encoding="utf-8", errors="replace"))
        target = None
        candidates = [c for c in chains if c["last"] < first and
                      (first_epoch is None or c["last_epoch"] is None or first_epoch >= c["last_epoch"])]
        if candidates:
            target = max(candidates, key=lambda c: c["last"])
        if target is None:
            name = run if run and not chains else (f"{run}-{_version_label(vdir)}" if run else
                                                   f"{_experiment_name(vdir)}-{_version_label(vdir)}")
            target = {"run": name, "last": last, "last_epoch": last_epoch, "versions": []}
            chains.append(target)
            attributes[name] = {"versions": {}}
        else:
            events.append(Event(run=target["run"], step=first, kind="resume",
                                detail=f"{vdir.name} continues at step {first:,} after step {target['last']:,} "
                                       f"of {target['versions'][-1]}"))
            target["last"] = last
            target["last_epoch"] = last_epoch
        target["versions"].append(vdir.name)
        a = attributes[target["run"]]
        a["hparams"] = hparams
        a["versions"][vdir.name] = {"first_step": first, "last_step": last, "rows": df.height,
                                    "points": t.num_rows, "hparams": hparams}
        run_col = pa.DictionaryArray.from_arrays(pa.array(np.zeros(t.num_rows, np.int32)),
                                                 pa.array([target["run"]])).cast(pa.string())
        tables.append(pa.Table.from_arrays([run_col] + t.columns[1:], schema=PARSED_SCHEMA))
    if not tables:
        raise IngestError("the metrics.csv files hold no data rows.", path=str(path))
    return Parsed(format=FORMAT, source=str(path), table=pa.concat_tables(tables), attributes=attributes,
                  events=events, content_hash=hash_files(files))
