"""Slow twin of engine/ingest/text.py: the line-by-line importer as it was before the
speed rewrite (commit 445850e), kept verbatim as the reference the fast reader must equal.

Original docstring follows.

Built-in line profiles (tried in this order on every line; a line that matches none is
skipped, so a log may start with a whole Python script, a banner or model samples):

- ``user``: the regular expressions of ``IngestOptions.text_patterns`` (tried first). Each
  needs a named group ``step`` and either groups ``key`` and ``value`` or one named group
  per metric (the group name is the metric name); groups that did not match are ignored.
- ``colon`` (llm.c, modded-nanogpt): ``s:125 trl:4.51 lr:0.0006 norm:0.31`` and
  ``step:125/1750 val_loss:4.5 train_time:3200ms step_avg:25.6ms``: every ``key:value``
  token after the step.
- ``nanogpt``: ``iter 425: loss nan, time 1440.31ms, mfu 0.01%`` and ``step 1000: train
  loss 4.12, val loss 4.20``: comma-separated ``key value`` pairs after ``iter N:`` /
  ``step N:``.
- ``pipe`` (Megatron, build-nanogpt stdout): ``iteration 100/ 1000 | lm loss: 7.1E+00 |
  grad norm: 1.2 | learning rate: 1.0E-04 |`` and ``step     5 | loss: 10.7 | lr 2.5e-06 |
  norm: 21.4 | dt: 708ms``: ``|``-separated ``key: value`` or ``key value`` fields.
- ``columns`` (build-nanogpt ``log.txt``): ``<step> <name> <value>``, e.g. ``250 val 6.07``.
- ``dict`` (Hugging Face Trainer stdout): ``{'loss': 0.69, 'grad_norm': 0.27,
  'learning_rate': 9.6e-07, 'epoch': 0.02}``. These lines carry no step. A ``step`` or
  ``global_step`` key is used when present; otherwise the step is the ordinal of the
  train dict (1, 2, 3 ...): the true step is that times ``logging_steps``, which the log
  does not state, and ``epoch`` is kept as a curve for the true position. A dict whose
  keys all start with ``eval_`` takes the ordinal of the last train dict (HF evaluates
  right after logging at the same step). The final ``{'train_runtime': ...}`` dict goes
  to the run attributes (``train_summary``), not to curves.
- ``stepless`` (build-nanogpt): ``validation loss: 6.07`` and ``HellaSwag accuracy:
  2443/10042=0.2433`` carry no step; they are printed just before the step line of the
  step they belong to, so they take the step of the next step-bearing line (the last
  step seen when none follows).

Names: as logged, with runs of whitespace replaced by ``_`` (``train loss`` ->
``train_loss``, ``lm loss`` -> ``lm_loss``), except the terse names of known trainers,
which engine/infer.py could not read (it would call them kind ``other`` and the run
would have no loss). They are renamed per line profile, so a word is expanded only
where that trainer writes it:

==========  ==========  ===============  ==================================================
profile     logged      stored as        source of the convention
==========  ==========  ===============  ==================================================
colon       ``trl``     ``train_loss``   llm.c ``logger_log_train`` (``s:%d trl:%.4f ...``)
colon       ``tel``     ``val_loss``     llm.c ``logger_log_val``: "test/evaluation loss",
                                         the loss on the held-out val split
colon       ``eval``    ``hellaswag_acc`` llm.c ``logger_log_eval`` (``s:%d eval:%.4f``, the
                                         HellaSwag acc_norm); only on ``s:`` lines
columns     ``train``   ``train_loss``   build-nanogpt ``log.txt`` (``f"{step} train {loss}"``)
columns     ``val``     ``val_loss``     build-nanogpt ``log.txt`` (``f"{step} val {loss}"``)
columns     ``hella``   ``hellaswag_acc`` build-nanogpt ``log.txt`` (HellaSwag acc_norm)
==========  ==========  ===============  ==================================================

Names that are already descriptive stay as logged (``norm`` is read as a grad norm,
``validation_loss``, ``HellaSwag_accuracy``, ``val_loss``). Each run's attributes record
the renaming under ``metric_aliases`` (``{"train_loss": "trl", ...}``, stored name to
logged name), so the raw name is never lost. Values: plain numbers and the NaN/Inf spellings
(``nan`` is a value: nanoGPT's ``loss nan`` is kept as NaN). Values with a unit
(``74701ms``, ``0.01%``, ``nanms``) are timing annotations, not curves: skipped and
counted in the run attributes.

Restarts: when a metric's step goes back to (or below) the first step of the current
segment, a new run starts (``<name>``, ``<name>-run2``, ``<name>-run3`` ...): several
seeds concatenated in one file are separate runs. When it goes back to a step inside
the segment, the log was resumed from a checkpoint: same run, a ``resume`` event at that
step, and the store's last-wins rule replaces the rewritten steps.

sniff claims a ``.log``/``.txt``/``.out`` file only when at least 3 lines of its first
MiB match a built-in profile (or a user pattern cannot be known at sniff time).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from engine.errors import IngestError
from engine.ingest.base import Event, IngestOptions, Parsed, hash_files, make_table
from engine.ingest.table import default_run_name

FORMAT = "text_log"

TEXT_EXTS = {".log", ".txt", ".out"}
SNIFF_BYTES = 1 << 20
SNIFF_MIN_LINES = 3

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NONFINITE = {"nan": math.nan, "+nan": math.nan, "-nan": math.nan, "inf": math.inf, "+inf": math.inf,
              "infinity": math.inf, "+infinity": math.inf, "-inf": -math.inf, "-infinity": -math.inf}
_UNIT = re.compile(rf"^(?:{_NUM}|nan|inf)\s*(?:ms|s|us|µs|ns|min|h|%|it/s|s/it|tok/s|GB|MB|KB|G|M|K|x)$",
                   re.IGNORECASE)

COLON = re.compile(r"^\s*(s|step):(\d+)(?:/\d+)?(?:\s+(.*))?$")
COLON_TOKEN = re.compile(r"(?:^|\s)([A-Za-z_][\w/.\-]*):(\S+)")
NANOGPT = re.compile(r"^\s*(?:iter|step)\s+(\d+):\s*(.*)$")
NANOGPT_PAIR = re.compile(r"^\s*([A-Za-z_][\w/.\- ]*?)\s+(\S+)\s*$")
PIPE = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(?:iteration|iter|step)\s+(\d+)\s*(?:/\s*\d+\s*)?\|(.*)$", re.IGNORECASE)
PIPE_FIELD = re.compile(r"^\s*([A-Za-z_][\w/.\-() ]*?)\s*(?::\s*|\s+)(\S+)\s*$")
COLUMNS = re.compile(r"^\s*(\d+)\s+([A-Za-z_][\w/.\-]*)\s+(\S+)\s*$")
DICT = re.compile(r"^\s*\{'[^']+':\s.*\}\s*$")
DICT_PAIR = re.compile(r"'([^']+)':\s*([^,}]+)")
STEPLESS = re.compile(r"^\s*(validation loss|val loss|HellaSwag accuracy)\s*:\s*(?:\d+\s*/\s*\d+\s*=\s*)?(\S+)\s*$",
                      re.IGNORECASE)
_WS = re.compile(r"\s+")
# Terse names of known trainers -> names engine/infer.py reads (see the module docstring).
ALIASES = {
    "colon": {"trl": "train_loss", "tel": "val_loss"},
    "colon_llmc": {"trl": "train_loss", "tel": "val_loss", "eval": "hellaswag_acc"},
    "columns": {"train": "train_loss", "val": "val_loss", "hella": "hellaswag_acc"},
}
DICT_SUMMARY = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}


_NAMES: dict[str, str] = {}


def _name(key: str) -> str:
    name = _NAMES.get(key)
    if name is None:
        name = _WS.sub("_", key.strip())
        if len(_NAMES) < 100_000:
            _NAMES[key] = name
    return name


def _value(token: str):
    """float, or the string 'unit' / 'text' saying why the token is not a value."""
    t = token.strip().rstrip(",;")
    if t[-1:].isdigit():  # the common case; a unit or a word never ends in a digit
        try:
            return float(t)
        except ValueError:
            return "text"
    try:
        return float(t)
    except ValueError:
        pass
    v = _NONFINITE.get(t.lower())
    if v is not None:
        return v
    return "unit" if _UNIT.match(t) else "text"


def _compile_user(patterns):
    out = []
    for p in patterns:
        try:
            rx = re.compile(p)
        except re.error as e:
            raise IngestError(f"text pattern {p!r} is not a valid regular expression: {e}") from None
        groups = set(rx.groupindex)
        if "step" not in groups:
            raise IngestError(f"text pattern {p!r} has no named group 'step'; each pattern needs (?P<step>...) "
                              "and either (?P<key>...)(?P<value>...) or one named group per metric.")
        kv = {"key", "value"} <= groups
        metrics = [] if kv else [g for g in rx.groupindex if g != "step"]
        if not kv and not metrics:
            raise IngestError(f"text pattern {p!r} names no metric: add (?P<key>...) and (?P<value>...) "
                              "or a named group per metric.")
        out.append((rx, kv, metrics))
    return out


def _parse_line(line: str, user):
    """(profile, step or None, [(metric, token)]) for a metric line, else None."""
    for rx, kv, metrics in user:
        m = rx.search(line)
        if m:
            if kv:
                pairs = [(m.group("key"), m.group("value"))]
            else:
                pairs = [(g, m.group(g)) for g in metrics if m.group(g) is not None]
            return "user", m.group("step"), pairs
    m = COLON.match(line)
    if m:
        return ("colon_llmc" if m.group(1) == "s" else "colon"), m.group(2), COLON_TOKEN.findall(m.group(3) or "")
    m = NANOGPT.match(line)
    if m:
        pairs = []
        for field in m.group(2).split(","):
            f = NANOGPT_PAIR.match(field)
            if f:
                pairs.append((f.group(1), f.group(2)))
        if pairs:
            return "nanogpt", m.group(1), pairs
    m = PIPE.match(line)
    if m:
        pairs = []
        for field in m.group(2).split("|"):
            f = PIPE_FIELD.match(field)
            if f:
                pairs.append((f.group(1), f.group(2)))
        if pairs:
            return "pipe", m.group(1), pairs
    m = COLUMNS.match(line)
    if m:
        return "columns", m.group(1), [(m.group(2), m.group(3))]
    if line.lstrip().startswith("{'") and DICT.match(line):
        return "dict", None, DICT_PAIR.findall(line)
    m = STEPLESS.match(line)
    if m:
        return "stepless", None, [(m.group(1), m.group(2))]
    return None


def sniff(path: Path) -> bool:
    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in TEXT_EXTS:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return False
    if b"\0" in head[:4096]:
        return False
    hits = 0
    for line in head.decode("utf-8", "replace").splitlines():
        r = _parse_line(line, ())
        if r is not None and any(isinstance(_value(tok), float) for _, tok in r[2]):
            hits += 1
            if hits >= SNIFF_MIN_LINES:
                return True
    return False


def read(path: Path, *, run: str | None = None, options: IngestOptions = IngestOptions()) -> Parsed:
    path = Path(path)
    user = _compile_user(options.text_patterns)
    base = run or default_run_name(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IngestError(f"cannot read the file: {e.strerror or e}", path=str(path)) from None
    text = raw.decode("utf-8", "replace")

    runs: list[str] = []
    metrics: list[str] = []
    steps: list[int] = []
    values: list[float] = []
    events: list[Event] = []
    run_names = [base]
    attrs: dict[str, dict] = {base: {}}
    counts: dict[str, int] = {}
    skipped_unit: dict[str, int] = {}
    skipped_text: dict[str, int] = {}
    # segment state
    current = base
    seg_first: int | None = None
    last: dict[str, int] = {}
    pending: list[tuple[str, float]] = []
    last_step: int | None = None
    dict_count = 0
    summary: dict = {}
    aliases: dict[str, str] = {}

    def emit(metric, step, value):
        nonlocal current, seg_first
        prev = last.get(metric)
        if prev is not None and step < prev:
            if seg_first is not None and step <= seg_first:
                current = f"{base}-run{len(run_names) + 1}"
                run_names.append(current)
                attrs[current] = {}
                last.clear()
                seg_first = step
            else:
                if not events or events[-1].run != current or events[-1].step != step:
                    events.append(Event(run=current, step=step, kind="resume",
                                        detail=f"{metric} went back from step {prev:,} to {step:,} "
                                               f"({path.name}, line {lineno:,})"))
        if seg_first is None or step < seg_first:
            seg_first = step
        last[metric] = step
        runs.append(current)
        metrics.append(metric)
        steps.append(step)
        values.append(value)

    lineno = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        # tqdm and friends redraw with carriage returns: the last redraw is what a reader sees,
        # but a metric line may sit before or after them, so every piece is tried.
        pieces = line.split("\r") if "\r" in line else (line,)
        for piece in pieces:
            r = _parse_line(piece, user)
            if r is None:
                continue
            profile, step_text, pairs = r
            amap = ALIASES.get(profile)
            if profile == "colon_llmc":
                profile = "colon"
            parsed_pairs = []
            for key, tok in pairs:
                name = _name(key)
                if amap is not None and name in amap:
                    aliases[amap[name]] = name
                    name = amap[name]
                v = _value(tok)
                if isinstance(v, float):
                    parsed_pairs.append((name, v))
                elif v == "unit":
                    skipped_unit[name] = skipped_unit.get(name, 0) + 1
                else:
                    skipped_text[name] = skipped_text.get(name, 0) + 1
            if profile == "stepless":
                pending.extend(parsed_pairs)
                counts[profile] = counts.get(profile, 0) + 1
                continue
            if profile == "dict":
                keys = {k for k, _ in parsed_pairs}
                if keys & DICT_SUMMARY and not any(k.startswith("eval_") for k in keys):
                    summary.update(parsed_pairs)
                    counts[profile] = counts.get(profile, 0) + 1
                    continue
                given = dict(parsed_pairs).get("step", dict(parsed_pairs).get("global_step"))
                if given is not None and math.isfinite(given) and given.is_integer():
                    step = int(given)
                    parsed_pairs = [(k, v) for k, v in parsed_pairs if k not in ("step", "global_step")]
                elif keys and all(k.startswith("eval_") or k == "epoch" for k in keys) and dict_count:
                    step = dict_count
                else:
                    dict_count += 1
                    step = dict_count
            else:
                step = int(step_text)
            if step >= 2**63:
                raise IngestError(f"step {step_text} is beyond int64.", path=str(path), line=lineno)
            if not parsed_pairs and not pending:
                continue
            counts[profile] = counts.get(profile, 0) + 1
            for name, v in pending:
                emit(name, step, v)
            pending.clear()
            for name, v in parsed_pairs:
                emit(name, step, v)
            last_step = step
    if pending:
        for name, v in pending:
            emit(name, last_step if last_step is not None else 0, v)

    if not metrics:
        raise IngestError("no metric line found (none of the built-in line profiles nor the given text_patterns "
                          "matched a line with a number); pass IngestOptions.text_patterns for this log.",
                          path=str(path))
    info = {"line_profiles": counts, "lines": lineno}
    if skipped_unit or skipped_text:
        info["ingest_skipped"] = {k: v for k, v in (("values_with_unit", skipped_unit),
                                                    ("non_numeric", skipped_text)) if v}
    if summary:
        info["train_summary"] = summary
    if aliases:
        info["metric_aliases"] = aliases
    if len(run_names) > 1:
        info["segments_in_file"] = len(run_names)
    for r in run_names:
        attrs[r] = dict(info)
    table = make_table(runs, metrics, steps, values)
    return Parsed(format=FORMAT, source=str(path), table=table, attributes=attrs, events=events,
                  content_hash=hash_files([path]))
