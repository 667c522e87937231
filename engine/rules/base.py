"""The rule layer's building blocks: findings, the rule decorator, thresholds, context.

How to add a rule (per-objective or cross-objective alike):

1. Write ``engine/rules/<code_lower>.py`` with one function::

       from engine.rules.base import Finding, RunContext, Thresholds, rule

       @rule(code="OVERFITTING", summary="Validation loss turned upward while training kept falling.",
             scope="cross")
       def overfitting(ctx: RunContext, th: Thresholds) -> list[Finding]:
           # docstring: the four headings Evidence: / Why: / Advice: / Known false alarms:
           out = []
           for pair in ctx.pairs():            # train vs val of one objective
               f = ctx.feature(pair.val)       # dict of the FEATURES row, extra parsed
               ...
               out.append(ctx.finding("OVERFITTING", "warning", 0.8, [pair.train, pair.val],
                                      start, end, message, evidence, advice))
           return out

   The docstring must hold the four headings Evidence:, Why:, Advice:, Known false
   alarms: (a registry test checks). A rule returns a list of Finding (or None).
2. Add a ``[OVERFITTING]`` table to ``engine/thresholds.toml`` with a comment per key;
   read them as ``th.min_rise_rel`` (an unknown name raises).
3. Add the module's function to ``RULES`` in ``engine/rules/__init__.py``.
4. Tests in ``tests/rules/test_<...>.py``: functions named ``test_fires__...`` and
   ``test_quiet__...`` built with data/generate.py scenarios (see tests/rules/helpers.py:
   ``diagnose_scenario(name, seed)`` returns (run, findings)).

A rule is ``(ctx: RunContext, th: Thresholds) -> list[Finding]``. Rules read the
analysis tables (features, segments, spikes), the metric roles and the events of one
run -- never raw curves. Thresholds come from ``engine/thresholds.toml`` (shipped)
overridden by a user TOML file. ``scope`` is "objective" (per metric), "cross" (across
metrics) or "summary" (runs after all others and sees their findings in
``ctx.findings``: HEALTHY).
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


def _defaults() -> dict[str, dict]:
    text = resources.files("engine").joinpath("thresholds.toml").read_text()
    return tomllib.loads(text)


def load_thresholds(user_file: str | Path | None = None) -> dict[str, Thresholds]:
    """Shipped defaults overridden by ``user_file``. An unknown table or key in the user
    file is a ConfigError naming the file, the table and the known keys; so is a value
    of another type than the default's."""
    merged = {code: dict(v) for code, v in _defaults().items()}
    if user_file is None:
        return {code: Thresholds(code, v) for code, v in merged.items()}
    path = Path(user_file)
    try:
        user = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("thresholds file not found", path=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", path=str(path)) from None
    return override_thresholds({c: Thresholds(c, v) for c, v in merged.items()}, user, source=str(path))


def override_thresholds(base: dict[str, Thresholds], user: dict, *, source: str) -> dict[str, Thresholds]:
    """``base`` with the keys of ``user`` ({table: {key: value}}) replaced, checked
    strictly (unknown table or key, or a value of another type: ConfigError)."""
    merged = {code: t.as_dict() for code, t in base.items()}
    for table, values in user.items():
        if table not in merged:
            raise ConfigError(f"unknown table [{table}]; known: {', '.join(sorted(merged))}", path=source)
        if not isinstance(values, dict):
            raise ConfigError(f"[{table}] must be a table of thresholds", path=source)
        for key, value in values.items():
            if key not in merged[table]:
                raise ConfigError(
                    f"[{table}] has unknown key {key!r}; known: {', '.join(sorted(merged[table]))}", path=source)
            default = merged[table][key]
            ok = isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))
            if not ok or isinstance(value, bool) != isinstance(default, bool):
                raise ConfigError(
                    f"[{table}] {key} = {value!r}: expected a {type(default).__name__} like the default {default!r}",
                    path=source)
            merged[table][key] = float(value) if isinstance(default, float) else value
    return {code: Thresholds(code, v) for code, v in merged.items()}


# --------------------------------------------------------------------------- the run context

LOSS_KINDS = ("loss", "perplexity")
_ROLE_FIELDS = ("split", "kind", "objective", "role", "direction")


@dataclass(frozen=True)
class TrainValPair:
    """Train and held-out curves of one objective with the same kind (and role)."""
    objective: str
    kind: str
    train: str
    val: str
    direction: str


def _as_dicts(df: pl.DataFrame | None) -> list[dict]:
    return [] if df is None or df.height == 0 else df.to_dicts()


class RunContext:
    """Everything the rules may read about one run.

    Built from the analysis tables of the run (polars frames; rows of other runs are
    ignored): ``features``, ``segments``, ``spikes`` (engine.analyse.analyse_run),
    ``metrics`` (roles: split, kind, objective, role, direction; a metric missing there
    gets the roles engine.infer infers from its name) and ``events`` (run, step, kind,
    detail). Frames may be None (empty).

    Helpers (all return plain Python objects, in metric-name order):

    - ``metric_names()``; ``role(metric)`` -> dict(split, kind, objective, role, direction)
    - ``select(kind=, split=, objective=, role=, direction=)`` -> metric names; each
      filter is a value or a tuple of values
    - ``losses(split=None)``: kind loss/perplexity; ``objectives()`` -> {objective: [metrics]}
    - ``feature(metric)`` -> dict of the FEATURES row with ``extra`` parsed into a dict
      (None when the metric has no row); ``x(metric, key)`` -> a float from the row or
      its extra (NaN when absent or null)
    - ``segments_of(metric)``, ``spikes_of(metric)`` -> lists of dicts sorted by step
    - ``pairs()`` -> [TrainValPair] train vs val (or test) of the same objective and kind
    - ``events_in(start, end, kinds=None)``, ``nearest_event(step, within, kinds=None)``
    - ``finding(code, severity, confidence, metrics, start, end, message, evidence,
      advice)`` -> Finding for this run
    - ``findings``: the findings of the rules run so far (for scope "summary")
    - ``oriented(metric, value)``: value x (-1 for direction max), lower is better
    """

    def __init__(self, run: str, *, features=None, segments=None, spikes=None, metrics=None, events=None):
        self.run = run
        sel = (lambda df: None if df is None else df.filter(pl.col("run") == run))
        self.features = sel(features)
        self.segments = sel(segments)
        self.spikes = sel(spikes)
        self.metrics = sel(metrics)
        self.events = sel(events)
        self.findings: list[Finding] = []
        self._feat = {}
        for row in _as_dicts(self.features):
            extra = row.get("extra")
            try:
                row["extra"] = json.loads(extra) if extra else {}
            except ValueError:
                row["extra"] = {}
            self._feat[row["metric"]] = row
        self._roles = {r["metric"]: {k: (r.get(k) or "") for k in _ROLE_FIELDS} for r in _as_dicts(self.metrics)}
        names = set(self._feat) | set(self._roles)
        for m in names - set(self._roles):
            from engine.infer import infer
            r = infer(m).as_dict()
            self._roles[m] = {k: r[k] for k in _ROLE_FIELDS}
        for r in self._roles.values():
            r["direction"] = r["direction"] or "none"
        self._names = sorted(names)
        self._segs: dict[str, list[dict]] = {}
        for g in sorted(_as_dicts(self.segments), key=lambda g: g["step_start"]):
            self._segs.setdefault(g["metric"], []).append(g)
        self._spk: dict[str, list[dict]] = {}
        for g in sorted(_as_dicts(self.spikes), key=lambda g: g["step"]):
            self._spk.setdefault(g["metric"], []).append(g)
        self._events = sorted(_as_dicts(self.events), key=lambda e: (e["step"], e["kind"]))

    # -- metrics and roles
    def metric_names(self) -> list[str]:
        return list(self._names)

    def role(self, metric: str) -> dict:
        return dict(self._roles.get(metric) or {"split": "none", "kind": "other", "objective": "main",
                                                  "role": "", "direction": "none"})

    def select(self, *, kind=None, split=None, objective=None, role=None, direction=None) -> list[str]:
        want = dict(kind=kind, split=split, objective=objective, role=role, direction=direction)
        out = []
        for m in self._names:
            r = self.role(m)
            ok = True
            for k, v in want.items():
                if v is None:
                    continue
                vals = (v,) if isinstance(v, str) else tuple(v)
                if r[k] not in vals:
                    ok = False
                    break
            if ok:
                out.append(m)
        return out

    def losses(self, split=None) -> list[str]:
        return self.select(kind=LOSS_KINDS, split=split)

    def objectives(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for m in self._names:
            out.setdefault(self.role(m)["objective"], []).append(m)
        return out

    def pairs(self) -> list[TrainValPair]:
        """Train vs val (else test) curves of one objective, same kind and role; the
        kinds with a direction only (loss, perplexity, accuracy, reward)."""
        out = []
        for m in self._names:
            r = self.role(m)
            if r["split"] != "train" or r["direction"] == "none":
                continue
            for held in ("val", "test"):
                cands = [v for v in self._names if v != m and self.role(v)["split"] == held
                         and self.role(v)["objective"] == r["objective"] and self.role(v)["kind"] == r["kind"]
                         and self.role(v)["direction"] == r["direction"]]
                same_role = [v for v in cands if self.role(v)["role"] == r["role"]]
                cands = same_role or cands
                if cands:
                    for v in cands:
                        out.append(TrainValPair(r["objective"], r["kind"], m, v, r["direction"]))
                    break
        return out

    # -- analysis tables
    def feature(self, metric: str) -> dict | None:
        return self._feat.get(metric)

    def x(self, metric: str, key: str) -> float:
        """A number from the features row or its extra; NaN when missing or null."""
        row = self._feat.get(metric)
        if row is None:
            return math.nan
        v = row.get(key) if key in row else row["extra"].get(key)
        if v is None or isinstance(v, (str, list, dict)):
            return math.nan
        return float(v)

    def segments_of(self, metric: str) -> list[dict]:
        return list(self._segs.get(metric, []))

    def spikes_of(self, metric: str) -> list[dict]:
        return list(self._spk.get(metric, []))

    def oriented(self, metric: str, value: float) -> float:
        return -value if self.role(metric)["direction"] == "max" else value

    # -- events
    def events_in(self, start, end, kinds=None) -> list[dict]:
        ks = None if kinds is None else ((kinds,) if isinstance(kinds, str) else tuple(kinds))
        return [e for e in self._events if start <= e["step"] <= end and (ks is None or e["kind"] in ks)]

    def nearest_event(self, step, within, kinds=None) -> dict | None:
        cands = self.events_in(step - within, step + within, kinds)
        return min(cands, key=lambda e: abs(e["step"] - step)) if cands else None

    # -- output
    def finding(self, code, severity, confidence, metrics, start, end, message, evidence, advice) -> Finding:
        return Finding(run=self.run, code=code, severity=severity, confidence=confidence, metrics=list(metrics),
                       step_start=start, step_end=end, message=message, evidence=evidence, advice=advice)


def fmt_step(step) -> str:
    """Steps in messages: 4,200."""
    return "?" if step is None else f"{int(step):,}"


def fmt(x: float, digits: int = 3) -> str:
    """Numbers in messages: 3 significant digits, no exponent for ordinary values."""
    if x is None or not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}" if abs(x) < 1e5 and (abs(x) >= 1e-3 or x == 0) else f"{x:.{digits}e}"


def pct(x: float) -> str:
    return "?" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def logistic(z: float) -> float:
    """1 / (1 + e^-z), safe for large |z| and NaN (-> 0.5)."""
    if z is None or math.isnan(z):
        return 0.5
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-min(z, 700)))
    e = math.exp(max(z, -700))
    return e / (1.0 + e)
