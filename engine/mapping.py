"""User mapping file: overrides the inferred roles of metrics.

TOML, one table per metric name or glob pattern (``fnmatch`` rules, case-sensitive)::

    [metrics."val/loss"]
    split = "val"
    kind = "loss"
    objective = "lm"

    [metrics."eval_*_loss"]
    split = "val"
    role = "heldout"

An exact name wins over patterns; among patterns the first in file order wins. Keys not
given keep their inferred value; a changed ``kind`` without ``direction`` takes the
direction of the new kind. Unknown tables, keys or values are a ConfigError naming the
file and what is known.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ConfigError
from engine.infer import DIRECTIONS, KINDS, SPLITS, MetricRole, infer, override

KNOWN_KEYS = ("split", "kind", "objective", "role", "direction")
_ALLOWED = {"split": SPLITS, "kind": KINDS, "direction": DIRECTIONS}


@dataclass
class Mapping:
    exact: dict[str, dict] = field(default_factory=dict)
    patterns: list[tuple[str, dict]] = field(default_factory=list)
    source: str = ""
    fingerprint: str = ""

    def fields_for(self, metric: str) -> dict:
        if metric in self.exact:
            return self.exact[metric]
        for pattern, fields in self.patterns:
            if fnmatch.fnmatchcase(metric, pattern):
                return fields
        return {}

    def role(self, metric: str) -> MetricRole:
        return override(infer(metric), self.fields_for(metric))


def load_mapping(path) -> Mapping:
    """Read and validate a mapping file."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the mapping file: {e.strerror}", path=str(path)) from None
    try:
        doc = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"not valid TOML: {e}", path=str(path)) from None
    return mapping_from_dict(doc, source=str(path), fingerprint=__import__("hashlib").sha256(text).hexdigest())


def mapping_from_dict(doc: dict, *, source: str = "<mapping>", fingerprint: str = "") -> Mapping:
    unknown = sorted(set(doc) - {"metrics"})
    if unknown:
        raise ConfigError(f"unknown table(s) {', '.join(map(repr, unknown))}; known: metrics", path=source)
    metrics = doc.get("metrics", {})
    if not isinstance(metrics, dict):
        raise ConfigError("[metrics] must be a table of metric names", path=source)
    m = Mapping(source=source, fingerprint=fingerprint)
    for name, fields in metrics.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"[metrics.{name!r}] must be a table with keys {', '.join(KNOWN_KEYS)}",
                              path=source)
        bad = sorted(set(fields) - set(KNOWN_KEYS))
        if bad:
            raise ConfigError(f"[metrics.{name!r}] has unknown key(s) {', '.join(map(repr, bad))}; "
                              f"known: {', '.join(KNOWN_KEYS)}", path=source)
        for key, value in fields.items():
            if not isinstance(value, str):
                raise ConfigError(f"[metrics.{name!r}] {key} must be a string, got {value!r}", path=source)
            if key in _ALLOWED and value not in _ALLOWED[key]:
                raise ConfigError(f"[metrics.{name!r}] {key} = {value!r}; expected one of "
                                  f"{', '.join(_ALLOWED[key])}", path=source)
        if any(c in name for c in "*?["):
            m.patterns.append((name, dict(fields)))
        else:
            m.exact[name] = dict(fields)
    if not fingerprint:
        import hashlib
        import json
        m.fingerprint = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return m
