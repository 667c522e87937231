"""The rule layer's building blocks: findings, the rule decorator, thresholds, context.

A rule is a function ``(ctx: RunContext, th: Thresholds) -> list[Finding]`` decorated
with :func:`rule`, one per module in ``engine/rules/``, listed explicitly in
``engine/rules/__init__.py``. Rules read the analysis tables (features, segments,
spikes), the metric roles and the events of one run -- never raw curves. Thresholds
come from ``engine/thresholds.toml`` (shipped) overridden by a user TOML file.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import polars as pl

from engine.errors import ConfigError

SEVERITIES = ("info", "warning", "critical")
DOC_HEADINGS = ("Evidence:", "Why:", "Advice:", "Known false alarms:")


@dataclass
class Finding:
    run: str
    code: str
    severity: str
    confidence: float
    metrics: list[str]
    step_start: int | None
    step_end: int | None
    message: str
    evidence: dict = field(default_factory=dict)
    advice: str = ""

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"finding {self.code}: severity {self.severity!r} not in {SEVERITIES}")
        c = float(self.confidence)
        self.confidence = 0.0 if math.isnan(c) else min(1.0, max(0.0, c))

    def as_row(self) -> dict:
        return {
            "run": self.run, "code": self.code, "severity": self.severity,
            "confidence": round(self.confidence, 3), "metrics": list(self.metrics),
            "step_start": None if self.step_start is None else int(self.step_start),
            "step_end": None if self.step_end is None else int(self.step_end),
            "message": self.message, "evidence": json.dumps(_jsonable(self.evidence), sort_keys=True),
            "advice": self.advice,
        }


def _jsonable(x):
    """Evidence as JSON: non-finite floats become strings ("nan", "inf") so the output stays valid JSON."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float):
        if math.isfinite(x):
            return round(x, 6) if abs(x) >= 1e-3 or x == 0 else float(f"{x:.6g}")
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if hasattr(x, "item"):  # numpy scalars
        return _jsonable(x.item())
    return x


@dataclass
class Rule:
    code: str
    summary: str
    fn: Callable
    scope: str  # "objective" (per metric / objective) or "cross" (across objectives)

    @property
    def doc(self) -> str:
        return self.fn.__doc__ or ""

    def __call__(self, ctx, th):
        return self.fn(ctx, th)


def rule(*, code: str, summary: str, scope: str = "objective"):
    """Declare a rule. The code must be UPPER_SNAKE and have a table in thresholds.toml."""
    def wrap(fn):
        fn.rule = Rule(code=code, summary=summary, fn=fn, scope=scope)
        return fn
    return wrap


class Thresholds:
    """Read-only view of one rule's thresholds: ``th.min_rise_rel``. Unknown names raise."""

    def __init__(self, code: str, values: dict):
        self._code = code
        self._values = dict(values)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"[{self._code}] has no threshold {name!r}; known: {', '.join(sorted(self._values))}") from None

    def as_dict(self) -> dict:
        return dict(self._values)


def load_thresholds(user_file: str | Path | None = None) -> dict[str, Thresholds]:
    """Shipped defaults overridden by ``user_file``. An unknown table or key in the user
    file is a ConfigError naming the file, the table and the known keys; so is a value
    of another type than the default's."""
    text = resources.files("engine").joinpath("thresholds.toml").read_text()
    defaults = tomllib.loads(text)
    merged = {code: dict(v) for code, v in defaults.items()}
    if user_file is not None:
        path = Path(user_file)
        try:
            user = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError("thresholds file not found", path=str(path)) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"not valid TOML: {e}", path=str(path)) from None
        for table, values in user.items():
            if table not in merged:
                raise ConfigError(f"unknown table [{table}]; known: {', '.join(sorted(merged))}", path=str(path))
            if not isinstance(values, dict):
                raise ConfigError(f"[{table}] must be a table of thresholds", path=str(path))
            for key, value in values.items():
                if key not in merged[table]:
                    raise ConfigError(
                        f"[{table}] has unknown key {key!r}; known: {', '.join(sorted(merged[table]))}", path=str(path))
                default = merged[table][key]
                ok = isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))
                if not ok or isinstance(value, bool) != isinstance(default, bool):
                    raise ConfigError(
                        f"[{table}] {key} = {value!r}: expected a {type(default).__name__} like the default {default!r}",
                        path=str(path))
                merged[table][key] = float(value) if isinstance(default, float) else value
    return {code: Thresholds(code, v) for code, v in merged.items()}
