"""The format registry: which importer reads a file or folder, and the walk over folders.

Importers are listed explicitly, in sniff priority order (folder formats and specific
file formats before the generic table and text readers). They are imported lazily, on
first use, and an importer that fails to import is an error, never silently skipped.

Walk rules (``plan``):

- a file the user names directly must be recognised, else UnknownFormatError naming it;
- a folder is first offered whole to every importer (mlruns/, a TensorBoard run folder
  with train/ and validation/, a W&B run folder, lightning_logs/): the first whose
  ``sniff`` accepts it reads it as one source;
- otherwise its entries are walked in natural order (``checkpoint-500`` before
  ``checkpoint-1000``), hidden entries (``.name``) and symlinked folders skipped; each
  file goes to the first importer that accepts it, and files nobody reads are listed in
  ``Plan.skipped``, not errors;
- a folder the user names that holds no source at all is UnknownFormatError.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from engine.errors import IngestError, UnknownFormatError
from engine.ingest.base import IngestOptions, Parsed

# Sniff priority order. Folder formats first (an mlruns tree holds plain files that the
# text reader would accept), the generic table and text readers last.
IMPORTERS: tuple[str, ...] = (
    "engine.ingest.mlflow",
    "engine.ingest.wandb",
    "engine.ingest.tensorboard",
    "engine.ingest.lightning",
    "engine.ingest.hf",
    "engine.ingest.table",
    "engine.ingest.text",
)

_loaded: list[ModuleType] | None = None


def importers() -> list[ModuleType]:
    """The importer modules, imported on first call. Any import failure propagates."""
    global _loaded
    if _loaded is None:
        mods = []
        for name in IMPORTERS:
            mod = importlib.import_module(name)
            for attr in ("FORMAT", "sniff", "read"):
                if not hasattr(mod, attr):
                    raise ImportError(f"importer {name} has no {attr}; see engine/ingest/base.py")
            mods.append(mod)
        _loaded = mods
    return _loaded


@dataclass
class Plan:
    sources: list[tuple[Path, ModuleType]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _first(path: Path, mods) -> ModuleType | None:
    for mod in mods:
        if mod.sniff(path):
            return mod
    return None


def detect(path, *, mods=None) -> ModuleType:
    """The importer module that reads ``path`` (file or folder); UnknownFormatError if none."""
    path = Path(path)
    if not path.exists():
        raise IngestError("no such file or folder", path=str(path))
    mod = _first(path, importers() if mods is None else mods)
    if mod is None:
        raise UnknownFormatError(
            "no importer recognises this " + ("folder" if path.is_dir() else "file")
            + "; known formats: " + ", ".join(m.FORMAT for m in (importers() if mods is None else mods)),
            path=str(path))
    return mod


def plan(path, *, mods=None) -> Plan:
    """Find the sources under ``path`` and the importer of each (see the module docstring)."""
    mods = importers() if mods is None else mods
    path = Path(path)
    if not path.exists():
        raise IngestError("no such file or folder", path=str(path))
    out = Plan()
    if path.is_file():
        out.sources.append((path, detect(path, mods=mods)))
        return out
    _walk(path, mods, out)
    if not out.sources:
        shown = ", ".join(p.name for p in out.skipped[:5]) + (f" and {len(out.skipped) - 5} more"
                                                             if len(out.skipped) > 5 else "")
        raise UnknownFormatError(
            "no importer recognises any file in this folder"
            + (f" (looked at {shown})" if shown else " (it is empty)")
            + "; known formats: " + ", ".join(m.FORMAT for m in mods), path=str(path))
    return out


def _walk(folder: Path, mods, out: Plan) -> None:
    mod = _first(folder, mods)
    if mod is not None:
        out.sources.append((folder, mod))
        return
    try:
        entries = sorted(folder.iterdir(), key=_natural_key)
    except OSError as e:
        raise IngestError(f"cannot list folder: {e.strerror}", path=str(folder)) from None
    for entry in entries:
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            if entry.is_symlink():
                out.skipped.append(entry)
                continue
            _walk(entry, mods, out)
        elif entry.is_file():
            m = _first(entry, mods)
            if m is None:
                out.skipped.append(entry)
            else:
                out.sources.append((entry, m))


def read_source(path, *, run: str | None = None, options: IngestOptions | None = None,
                mods=None) -> list[Parsed]:
    """Parse every source under ``path`` (nothing is written)."""
    options = options or IngestOptions()
    return [mod.read(p, run=run, options=options) for p, mod in plan(path, mods=mods).sources]
