"""Text logs that trainers print: metric lines among arbitrary other text.

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

- ``block`` (Python ``logging`` summaries): a header alone on its line, ``Epoch 3
  complete:`` / ``Epoch 3:`` / ``Step 200:`` (epoch|step|iteration|iter, a number, an
  optional ``/total`` and one optional word, a trailing colon), after nothing or a log
  prefix ending in whitespace (``2025-08-28 21:17:26,780 - INFO - ``), sets the step of
  the following ``Name With Spaces: value`` lines: indented after a bare header, or
  carrying a prefix of the header's shape (same text, any digits). The block ends at the
  first other line (the next header, a non-number value, another prefix). Names are lower
  case with ``_`` for spaces (``Avg Reward`` -> ``avg_reward``, the raw name kept in
  ``metric_aliases``). When every block header says ``Epoch``, the run attributes say
  ``step_unit: epoch`` (``block_step_unit`` when other step lines share the file). Tried
  after user patterns and before the other profiles; sniff wants 2 blocks.

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

import hashlib
import math
import re
from operator import itemgetter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import IngestError
from engine.ingest.base import PARSED_SCHEMA, Event, IngestOptions, Parsed
from engine.ingest.table import default_run_name

FORMAT = "text_log"

TEXT_EXTS = {".log", ".txt", ".out"}
SNIFF_BYTES = 1 << 20
SNIFF_MIN_LINES = 3
SNIFF_MIN_BLOCKS = 2

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
# block rule (see the module docstring): a header alone on its line after an optional log
# prefix, then "Name: value" lines
BLOCK_HEADER = re.compile(r"(?im)(?<!\w)(epoch|step|iteration|iter)[^\S\n]+(\d+)(?:[^\S\n]*/[^\S\n]*\d+)?"
                          r"(?:[^\S\n]+[A-Za-z]+)?[^\S\n]*:[^\S\n]*$")
BLOCK_LINE = re.compile(r"^[^\S\n]*([A-Za-z][\w/.\-() ]*?)[^\S\n]*:[^\S\n]*(\S+)[^\S\n]*$")
_HEADER_WORD = re.compile(r"(?i)^(?:epoch|step|iteration|iter)\s+\d")
_DIGIT = re.compile(r"\d")
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


def _blocks(text: str):
    """Block lines of a text whose line breaks are all "\\n": ({offset of a metric line: (step,
    name, token)}, {header words of the blocks, lower case}, number of blocks with a metric line).

    A header (``Epoch 3 complete:``, ``Epoch 3:``, ``Step 200:``) is preceded on its line by
    nothing or by a prefix ending in whitespace (``2025-08-28 21:17:26,780 - INFO - ``). The
    block is the run of following lines that carry a prefix of the same shape (the header's,
    digits being any digits) or, after a bare header, are indented, and then read
    ``Name: value`` with a number (NaN/Inf spellings included) or a number with a unit as
    value. It ends at the first other line (the next header included)."""
    out: dict[int, tuple] = {}
    words: set[str] = set()
    n_blocks = 0
    n = len(text)
    for m in BLOCK_HEADER.finditer(text):
        start = text.rfind("\n", 0, m.start()) + 1
        prefix = text[start:m.start()]
        if prefix and not prefix[-1].isspace():
            continue
        step = int(m.group(2))
        if step > MAX_STEP:
            continue
        shape = _DIGIT.sub("0", prefix)
        pos, got = m.end(), 0
        while pos < n:
            pos += 1  # past the line break
            end = text.find("\n", pos)
            if end < 0:
                end = n
            line = text[pos:end]
            if prefix:
                if _DIGIT.sub("0", line[:len(prefix)]) != shape:
                    break
                rest = line[len(prefix):]
            elif line[:1].isspace():
                rest = line
            else:
                break
            b = BLOCK_LINE.match(rest)
            if b is None or _HEADER_WORD.match(b.group(1)) or _value(b.group(2)) == "text":
                break
            out[pos] = (step, b.group(1), b.group(2))
            got += 1
            pos = end
        if got:
            n_blocks += 1
            words.add(m.group(1).lower())
    return out, words, n_blocks


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
    text = head.decode("utf-8", "replace")
    if not BLOCK_HEADER.search(text):
        return False
    text = _LINE_BREAKS_RE.sub("\n", text.replace("\r\n", "\n"))
    return _blocks(text)[2] >= SNIFF_MIN_BLOCKS


# ---- the reader ----------------------------------------------------------------------
#
# Shape (why): a per-line, per-token Python loop read 0.04 M points/s, 7x slower than one
# regex pass over the file. The reader now (1) finds metric lines with one compiled
# alternation of the built-in profiles, applied by re.findall to the whole text (lines
# that match nothing cost no Python; colon and column lines give their step and tokens
# as strings); (2) splits colon-line tokens, classifies and converts all value tokens at
# once in Arrow (regex + cast for plain numbers and number+unit tokens; the exact Python
# rules of _value, once per distinct token, for the few others); (3) resolves step-less
# lines, line counts and names with numpy over the lines; (4) runs the restart/resume
# bookkeeping point by point only when some metric's step goes back. Lines of the rarer
# profiles (nanogpt, pipe, dict, step-less) and user patterns still go through
# _parse_line one by one. tests/ingest/text_ref.py keeps the line-by-line reader;
# test_text_pins.py checks both give identical tables, events and attributes.

_H = r"[^\S\n]"  # \s without the line break: no alternative may run into the next line
_FAST = re.compile(
    "^(?:"
    rf"{_H}*(s|step):(\d+)(?:/\d+)?(?:{_H}+(.*))?$"  # colon: 1 prefix, 2 step, 3 rest
    rf"|{_H}*(\d+){_H}+([A-Za-z_][\w/.\-]*){_H}+(\S+){_H}*$"  # columns: 4 step, 5 key, 6 token
    # pipe: 7 step, 8 fields (no line matches both this and nanogpt: ':' vs '|' after the number)
    rf"|{_H}*(?:\[[^\]\n]*\]{_H}*)?(?i:iteration|iter|step){_H}+(\d+){_H}*(?:/{_H}*\d+{_H}*)?\|(.*)$"
    "|("  # 9: a line of another profile, read by _parse_line
    rf"{_H}*(?:iter|step){_H}+\d+:{_H}*.*"  # nanogpt
    rf"|{_H}*\{{'[^'\n]+':{_H}.*\}}{_H}*"  # dict
    rf"|{_H}*(?i:validation loss|val loss|HellaSwag accuracy){_H}*:{_H}*"
    rf"(?:\d+{_H}*/{_H}*\d+{_H}*={_H}*)?\S+{_H}*"  # step-less
    ")$)", re.MULTILINE)
# splitlines() breaks lines at these too; they become "\n" so that line numbers agree
_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_LINE_BREAKS_RE = re.compile(f"[{_LINE_BREAKS}]")
# colon tokens in Arrow (RE2): ASCII \w; used only on ASCII text without \x1f (which
# Python's \s counts as a space and Arrow's ASCII whitespace does not)
_KEY_TOKEN = r"^[A-Za-z_][A-Za-z0-9_/.\-]*:."
_PIPE_FIELD_RE2 = r"^\s*(?P<k>[A-Za-z_][A-Za-z0-9_/.\-() ]*?)\s*(?::\s*|\s+)(?P<v>\S+)\s*$"
# Tokens these match are classified without Python: a plain ASCII number (float() reads it,
# and so does Arrow's cast, to the same double) or a number with a unit (never a float).
_FAST_NUM = r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"
_FAST_UNIT = (r"^(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|nan|inf)"
              r"(?:ms|s|us|ns|min|h|%|it/s|s/it|tok/s|GB|MB|KB|G|M|K|x)$")

# profiles as codes; what each does: 0 a step line, 1 step-less, 2 a train-summary dict,
# 3 nothing (a line that looked like a profile but holds no pair)
_PROFILES = ("user", "colon", "colon", "nanogpt", "pipe", "columns", "dict", "dict", "stepless", "none", "block")
(_P_USER, _P_COLON, _P_LLMC, _P_NANOGPT, _P_PIPE, _P_COLUMNS, _P_DICT, _P_SUMMARY, _P_STEPLESS, _P_NONE,
 _P_BLOCK) = range(11)
_P_CODE = {"user": _P_USER, "colon": _P_COLON, "colon_llmc": _P_LLMC, "nanogpt": _P_NANOGPT,
           "pipe": _P_PIPE, "columns": _P_COLUMNS, "stepless": _P_STEPLESS}
_P_TYPE = np.array([0, 0, 0, 0, 0, 0, 0, 2, 1, 3, 0], dtype=np.int8)
_LOWER: dict = {}  # alias table of block lines: the stored name is the lower-cased logged name
_ALIAS_TABLES = ({}, ALIASES["colon"], ALIASES["colon_llmc"], ALIASES["columns"], _LOWER)
_P_ALIAS = np.array([0, 1, 2, 0, 0, 3, 0, 0, 0, 0, 4], dtype=np.int64)
MAX_STEP = 2**63 - 1


def _classify(tokens: pa.Array):
    """(values float64, code int8: 0 a number, 1 a value with a unit, 2 text) per token,
    exactly as _value decides."""
    n = len(tokens)
    values = np.full(n, np.nan)
    code = np.full(n, 2, dtype=np.int8)
    if not n:
        return values, code
    num = pc.match_substring_regex(tokens, _FAST_NUM).to_numpy(zero_copy_only=False)
    unit = pc.match_substring_regex(tokens, _FAST_UNIT, ignore_case=True).to_numpy(zero_copy_only=False)
    if num.any():
        values[num] = pc.cast(tokens.filter(pa.array(num)), pa.float64()).to_numpy()
        code[num] = 0
    code[unit] = 1
    rest = np.flatnonzero(~(num | unit))
    if len(rest):
        memo: dict[str, object] = {}
        for i, t in zip(rest.tolist(), tokens.take(pa.array(rest)).to_pylist()):
            v = memo.get(t)
            if v is None:
                v = memo[t] = _value(t) if t else "text"
            if isinstance(v, float):
                values[i] = v
                code[i] = 0
            elif v == "unit":
                code[i] = 1
    return values, code


def _ordered_counts(codes: np.ndarray, names: list[str]) -> dict[str, int]:
    """{name: count} in order of first appearance (as a dict filled point by point would be)."""
    if not len(codes):
        return {}
    uniq, first, counts = np.unique(codes, return_index=True, return_counts=True)
    out: dict[str, int] = {}
    for j in np.argsort(first, kind="stable").tolist():
        out[names[uniq[j]]] = out.get(names[uniq[j]], 0) + int(counts[j])
    return out


def _colon_tokens_arrow(idx, rests: pa.Array):
    chunks = pc.ascii_split_whitespace(rests)
    flat = pc.list_flatten(chunks)
    parent = pc.list_parent_indices(chunks).to_numpy(zero_copy_only=False)
    ok = pc.match_substring_regex(flat, _KEY_TOKEN)
    kv = pc.split_pattern(flat.filter(ok), ":", max_splits=1)
    return idx[parent[ok.to_numpy(zero_copy_only=False)]], pc.list_element(kv, 0), pc.list_element(kv, 1)


def _colon_tokens_py(i, rest):
    return COLON_TOKEN.findall(rest)


def _pipe_tokens_arrow(idx, fields: pa.Array):
    pieces = pc.split_pattern(fields, "|")
    flat = pc.list_flatten(pieces)
    parent = pc.list_parent_indices(pieces).to_numpy(zero_copy_only=False)
    kv = pc.extract_regex(flat, _PIPE_FIELD_RE2)
    ok = kv.is_valid().to_numpy(zero_copy_only=False)
    kv = kv.filter(pa.array(ok))
    return idx[parent[ok]], kv.field("k"), kv.field("v")


def _pipe_tokens_py(i, rest):
    out = []
    for field in rest.split("|"):
        f = PIPE_FIELD.match(field)
        if f:
            out.append((f.group(1), f.group(2)))
    return out


def _tokens_of(idx: np.ndarray, rests: list[str], arrow_fn, py_fn) -> list[tuple]:
    """(record index array, keys, tokens) parts for the lines ``idx`` whose token text is
    ``rests``: in Arrow where its regexes (RE2: ASCII \\w and \\s) agree with Python's
    (ASCII text without \\x1f, which Python's \\s takes as a space), in Python otherwise."""
    arr = pa.array(rests, pa.string())
    ok = pc.string_is_ascii(arr)
    if any("\x1f" in r for r in rests):
        ok = pc.and_(ok, pc.invert(pc.match_substring(arr, "\x1f")))
    ok = ok.to_numpy(zero_copy_only=False)
    parts = []
    if ok.any():
        parts.append(arrow_fn(idx[ok], arr.filter(pa.array(ok)) if not ok.all() else arr))
    if not ok.all():
        recs, ks, ts = [], [], []
        for i, rest in zip(idx[~ok].tolist(), arr.filter(pa.array(~ok)).to_pylist()):
            for k, t in py_fn(i, rest):
                recs.append(i)
                ks.append(k)
                ts.append(t)
        parts.append((np.array(recs, dtype=np.int64), pa.array(ks, pa.string()), pa.array(ts, pa.string())))
    return parts


def _column(found: list[tuple], j: int, idx: np.ndarray, n: int) -> list[str]:
    """Group j of the matches idx (all n of them: one C-level pass)."""
    if len(idx) == n:
        return list(map(itemgetter(j), found))
    return [found[i][j] for i in idx.tolist()]


def _merge(parts: list[tuple]):
    """One (record index array, keys, tokens) from several, in record order."""
    if len(parts) == 1:
        return parts[0]
    rec = np.concatenate([p[0] for p in parts])
    order = np.argsort(rec, kind="stable")
    take = pa.array(order)
    keys = pa.concat_arrays([_plain(p[1]) for p in parts]).take(take)
    toks = pa.concat_arrays([_plain(p[2]) for p in parts]).take(take)
    return rec[order], keys, toks


def _plain(a):
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


class _Lines:
    """Stage 1: the metric lines of one text, in order.

    Result, one record per matched line: ``prof`` (profile code), ``step`` (int64, 0 for
    step-less lines), ``positions()`` (offset of the line in the text); one entry per
    (key, token) pair, in line order: ``tok_rec`` (its record), ``keys``, ``tokens``."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.text = text
        self.summary: dict = {}
        self.dict_count = 0
        self._pos = None
        self.error = None  # (record, IngestError) of the first bad step among the Python-read lines

    def line_of(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def positions(self) -> np.ndarray:
        if self._pos is None:
            self._pos = np.fromiter((m.start() for m in _FAST.finditer(self.text)), dtype=np.int64)
        return self._pos

    def bad_step(self, step_text, pos: int) -> IngestError:
        return IngestError(f"step {step_text} is beyond int64 (at most {MAX_STEP:,}).",
                           path=str(self.path), line=self.line_of(pos))

    def step_of(self, step_text, pos: int, profile: str) -> int:
        try:
            step = int(step_text)
        except (TypeError, ValueError):
            raise IngestError(f"the {profile} line pattern captured step {step_text!r}; expected an integer step.",
                              path=str(self.path), line=self.line_of(pos)) from None
        if step > MAX_STEP:
            raise self.bad_step(step_text, pos)
        return step

    def parse_other(self, profile: str, step_text, pairs):
        """(profile code, step, pairs) of a line read in Python; raises on a bad step."""
        if profile == "dict":
            return self.parse_dict(pairs)
        if profile == "stepless":
            return _P_STEPLESS, 0, pairs
        pairs = [(k, t) for k, t in pairs if k is not None and t is not None]
        return _P_CODE[profile], int(step_text), pairs

    def parse_dict(self, pairs):
        parsed = []
        floats = []
        for key, tok in pairs:
            v = _value(tok)
            f = isinstance(v, float)
            floats.append(f)
            if f:
                parsed.append((_name(key), v))
        keys = {k for k, _ in parsed}
        if keys & DICT_SUMMARY and not any(k.startswith("eval_") for k in keys):
            self.summary.update(parsed)
            # non-numbers still count as skipped values
            return _P_SUMMARY, 0, [p for p, f in zip(pairs, floats) if not f]
        d = dict(parsed)
        given = d.get("step", d.get("global_step"))
        drop = False
        if given is not None and math.isfinite(given) and given.is_integer():
            step, drop = int(given), True
        elif keys and all(k.startswith("eval_") or k == "epoch" for k in keys) and self.dict_count:
            step = self.dict_count
        else:
            self.dict_count += 1
            step = self.dict_count
        if drop:
            pairs = [p for p, f in zip(pairs, floats) if not (f and _name(p[0]) in ("step", "global_step"))]
        return _P_DICT, step, pairs

    def scan_builtin(self):
        """Every built-in profile, by one findall over the whole text."""
        text = self.text
        found = _FAST.findall(text)
        n = len(found)
        colon_step = list(map(itemgetter(1), found))
        is_colon = np.fromiter(map(bool, colon_step), dtype=bool, count=n)
        col_step = list(map(itemgetter(3), found))
        is_columns = np.fromiter(map(bool, col_step), dtype=bool, count=n)
        prof = np.full(n, _P_NONE, dtype=np.int64)
        steps = np.zeros(n, dtype=np.int64)
        parts = []  # (record index array, keys, tokens) per source, merged in line order below
        first_bad = None  # (record, step text)

        def int_steps(idx, texts):
            nonlocal first_bad
            try:
                steps[idx] = pa.array(texts, pa.string()).cast(pa.int64()).to_numpy()
                return
            except (pa.ArrowInvalid, OverflowError):
                pass
            for i, t in zip(idx.tolist(), texts):  # unicode digits, or a step past int64
                v = int(t)
                if v > MAX_STEP:
                    if first_bad is None or i < first_bad[0]:
                        first_bad = (i, t)
                    return
                steps[i] = v

        if is_colon.any():
            idx = np.flatnonzero(is_colon)
            prefix = _column(found, 0, idx, n)
            llmc = pc.equal(pa.array(prefix, pa.string()), "s").to_numpy(zero_copy_only=False)
            prof[idx] = np.where(llmc, _P_LLMC, _P_COLON)
            int_steps(idx, colon_step if len(idx) == n else [colon_step[i] for i in idx.tolist()])
            parts.extend(_tokens_of(idx, _column(found, 2, idx, n), _colon_tokens_arrow,
                                    _colon_tokens_py))
        if is_columns.any():
            idx = np.flatnonzero(is_columns)
            prof[idx] = _P_COLUMNS
            int_steps(idx, col_step if len(idx) == n else [col_step[i] for i in idx.tolist()])
            parts.append((idx, pa.array(_column(found, 4, idx, n), pa.string()),
                          pa.array(_column(found, 5, idx, n), pa.string())))
        pipe_step = list(map(itemgetter(6), found))
        is_pipe = np.fromiter(map(bool, pipe_step), dtype=bool, count=n)
        if is_pipe.any():
            idx = np.flatnonzero(is_pipe)
            recs, ks, ts = _merge(_tokens_of(idx, _column(found, 7, idx, n), _pipe_tokens_arrow,
                                             _pipe_tokens_py))
            with_pairs = np.unique(recs)  # a pipe line without a field is no metric line (its step unread)
            prof[with_pairs] = _P_PIPE
            int_steps(with_pairs, [pipe_step[i] for i in with_pairs.tolist()])
            parts.append((recs, ks, ts))
        other = np.flatnonzero(~(is_colon | is_columns | is_pipe))
        if len(other):
            recs, ks, ts = [], [], []
            for i in other.tolist():
                r = _parse_line(found[i][8], ())  # as the line-by-line reader would
                if r is None:
                    continue
                if r[0] not in ("dict", "stepless"):
                    v = int(r[1])
                    if v > MAX_STEP:
                        if first_bad is None or i < first_bad[0]:
                            first_bad = (i, r[1])
                        break
                code, step, pairs = self.parse_other(*r)
                if step > MAX_STEP:
                    if first_bad is None or i < first_bad[0]:
                        first_bad = (i, repr(float(step)))
                    break
                prof[i] = code
                steps[i] = step
                for k, t in pairs:
                    recs.append(i)
                    ks.append(k)
                    ts.append(t)
            parts.append((np.array(recs, dtype=np.int64), pa.array(ks, pa.string()), pa.array(ts, pa.string())))
        if first_bad is not None:
            raise self.bad_step(first_bad[1], int(self.positions()[first_bad[0]]))
        self._finish(prof, steps, parts)

    def _finish(self, prof, steps, parts):
        self.prof, self.step = prof, steps
        if not parts:
            parts = [(np.zeros(0, dtype=np.int64), pa.array([], pa.string()), pa.array([], pa.string()))]
        rec, keys, toks = _merge(parts)
        self.tok_rec, self.keys, self.tokens = rec, _plain(keys), _plain(toks)

    def scan_lines(self, user, blocks=None):
        """Line by line, for user patterns (tried first on every line) and for texts with
        block lines (``blocks``: ``_blocks(text)[0]``; tried after the user patterns)."""
        text = self.text
        lines = text.split("\n") if text else []
        if text.endswith("\n"):
            lines.pop()
        pos = 0
        positions, prof, steps, recs, ks, ts = [], [], [], [], [], []
        for line in lines:
            b = blocks.get(pos) if blocks else None
            if b is not None and not any(rx.search(line) for rx, _, _ in user):
                recs.append(len(prof))
                positions.append(pos)
                prof.append(_P_BLOCK)
                steps.append(b[0])
                ks.append(b[1])
                ts.append(b[2])
                pos += len(line) + 1
                continue
            r = _parse_line(line, user)
            if r is not None:
                if r[0] not in ("dict", "stepless"):
                    self.step_of(r[1], pos, r[0])
                code, step, pairs = self.parse_other(*r)
                if step > MAX_STEP:
                    raise self.bad_step(repr(float(step)), pos)
                i = len(prof)
                positions.append(pos)
                prof.append(code)
                steps.append(step)
                for k, t in pairs:
                    recs.append(i)
                    ks.append(k)
                    ts.append(t)
            pos += len(line) + 1
        self._pos = np.array(positions, dtype=np.int64)
        self._finish(np.array(prof, dtype=np.int64), np.array(steps, dtype=np.int64),
                     [(np.array(recs, dtype=np.int64), pa.array(ks, pa.string()), pa.array(ts, pa.string()))])


def read(path: Path, *, run: str | None = None, options: IngestOptions = IngestOptions()) -> Parsed:
    path = Path(path)
    user = _compile_user(options.text_patterns)
    base = run or default_run_name(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IngestError(f"cannot read the file: {e.strerror or e}", path=str(path)) from None
    text = raw.decode("utf-8", "replace")
    if any(c in text for c in _LINE_BREAKS):
        text = _LINE_BREAKS_RE.sub("\n", text.replace("\r\n", "\n"))
    n_lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)

    # ---- stage 1: metric lines ----------------------------------------------------------
    lines = _Lines(path, text)
    blocks, block_words, _ = _blocks(text)
    if user or blocks:
        lines.scan_lines(user, blocks)
    else:
        lines.scan_builtin()
    prof, rec_step, tok_rec = lines.prof, lines.step, lines.tok_rec
    nrec = len(prof)

    # ---- stage 2: names and values ------------------------------------------------------
    if len(lines.keys):
        enc = lines.keys.dictionary_encode()
        kcode = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        kdict = enc.dictionary.to_pylist()
    else:
        kcode, kdict = np.zeros(0, np.int64), []
    combo = kcode * len(_ALIAS_TABLES) + _P_ALIAS[prof][tok_rec]
    uniq, first_at, inverse = np.unique(combo, return_index=True, return_inverse=True)
    names: list[str] = []
    name_code: dict[str, int] = {}
    combo_name = np.empty(len(uniq), dtype=np.int64)
    renamed = []  # (first token, last token, stored name, logged name)
    for j, c in enumerate(uniq.tolist()):
        logged = _name(kdict[c // len(_ALIAS_TABLES)])
        table = _ALIAS_TABLES[c % len(_ALIAS_TABLES)]
        if table is _LOWER:  # block lines: lower case, the raw name (spaces and all) recorded
            raw_name = kdict[c // len(_ALIAS_TABLES)].strip()
            stored = logged.lower()
            if stored != raw_name:
                renamed.append((int(first_at[j]), j, stored, raw_name))
        else:
            stored = table.get(logged, logged)
            if logged in table:
                renamed.append((int(first_at[j]), j, stored, logged))
        combo_name[j] = name_code.setdefault(stored, len(names))
        if combo_name[j] == len(names):
            names.append(stored)
    mcode = combo_name[inverse.reshape(-1)] if len(combo) else np.zeros(0, np.int64)
    aliases: dict[str, str] = {}
    if renamed:  # as a dict filled token by token: first renamed token orders, last one's name wins
        _, last_rev = np.unique(combo[::-1], return_index=True)
        last_at = len(combo) - 1 - last_rev
        for _, j, stored, logged in sorted(renamed):
            aliases.setdefault(stored, logged)
        for _, j, stored, logged in sorted(renamed, key=lambda r: last_at[r[1]]):
            aliases[stored] = logged
    values, vcode = _classify(lines.tokens)
    is_float = vcode == 0

    # ---- stage 3: steps of step-less lines, line counts ---------------------------------
    floats_per_rec = np.bincount(tok_rec[is_float], minlength=nrec)
    rtype = _P_TYPE[prof]
    step_recs = np.flatnonzero(rtype == 0)
    pending_cum = np.cumsum((rtype == 1) & (floats_per_rec > 0))
    at = pending_cum[step_recs]
    pending = at - np.concatenate(([0], at[:-1])) > 0
    accepted = step_recs[(floats_per_rec[step_recs] > 0) | pending]
    last_step = int(rec_step[accepted[-1]]) if len(accepted) else None
    # a step-less value takes the step of the next step line (which always takes it);
    # after the last one, the last step emitted
    emit_rec = np.arange(nrec)
    stepless = np.flatnonzero(rtype == 1)
    if len(stepless):
        k = np.searchsorted(step_recs, stepless)
        emit_rec[stepless] = -1
        if len(step_recs):
            has_next = k < len(step_recs)
            emit_rec[stepless[has_next]] = step_recs[k[has_next]]
    rec_emit_step = rec_step[np.maximum(emit_rec, 0)] if nrec else rec_step
    rec_emit_step = np.where(emit_rec >= 0, rec_emit_step, last_step if last_step is not None else 0)
    counted = np.zeros(nrec, dtype=bool)
    counted[(rtype == 1) | (rtype == 2)] = True
    counted[accepted] = True
    profile_counts = _ordered_counts(prof[counted], list(_PROFILES))

    # ---- points -------------------------------------------------------------------------
    pidx = np.flatnonzero(is_float)
    if not len(pidx):
        raise IngestError("no metric line found (none of the built-in line profiles nor the given text_patterns "
                          "matched a line with a number); pass IngestOptions.text_patterns for this log.",
                          path=str(path))
    p_rec = tok_rec[pidx]
    p_metric = mcode[pidx]
    p_step = rec_emit_step[p_rec]
    p_value = values[pidx]
    run_names = [base]
    events: list[Event] = []
    p_run = None
    order = np.argsort(p_metric, kind="stable")
    sm, ss = p_metric[order], p_step[order]
    if np.any((sm[1:] == sm[:-1]) & (ss[1:] < ss[:-1])):
        p_run, events = _segments(path, text, base, run_names, names, p_metric, p_step,
                                  emit_rec[p_rec], lines.positions(), n_lines)

    info: dict = {"line_profiles": profile_counts, "lines": n_lines}
    skipped = {k: v for k, v in (("values_with_unit", _ordered_counts(mcode[vcode == 1], names)),
                                 ("non_numeric", _ordered_counts(mcode[vcode == 2], names))) if v}
    if skipped:
        info["ingest_skipped"] = skipped
    if lines.summary:
        info["train_summary"] = lines.summary
    if aliases:
        info["metric_aliases"] = aliases
    if len(run_names) > 1:
        info["segments_in_file"] = len(run_names)
    if block_words == {"epoch"} and np.any(floats_per_rec[prof == _P_BLOCK] > 0):
        other_steps = np.any((rtype == 0) & (prof != _P_BLOCK) & (floats_per_rec > 0))
        info["block_step_unit" if other_steps else "step_unit"] = "epoch"
    attrs = {r: dict(info) for r in run_names}

    n = len(pidx)
    run_col = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, np.int32) if p_run is None else p_run.astype(np.int32)),
        pa.array(run_names, pa.string())).cast(pa.string())
    metric_col = pa.DictionaryArray.from_arrays(pa.array(p_metric.astype(np.int32)),
                                                pa.array(names, pa.string())).cast(pa.string())
    table = pa.Table.from_arrays([run_col, metric_col, pa.array(p_step, pa.int64()),
                                  pa.array(p_value, pa.float64()), pa.nulls(n, pa.float64())],
                                 schema=PARSED_SCHEMA)
    h = hashlib.sha256()  # as hash_files([path]), without reading the file again
    h.update(path.name.encode())
    h.update(b"\0")
    h.update(raw)
    return Parsed(format=FORMAT, source=str(path), table=table, attributes=attrs, events=events,
                  content_hash=h.hexdigest())


def _segments(path, text, base, run_names, names, p_metric, p_step, p_emit_rec, rec_pos, n_lines):
    """Restarts and resumes, point by point (only for logs where some metric's step goes back).

    A metric whose step goes back to (or below) the first step of the current segment starts
    a new run; back to a step inside the segment is a resume (an event, same run)."""
    # line of each record, and of the final flush of step-less values (the last line)
    rec_line = np.empty(len(rec_pos), dtype=np.int64)
    line, prev = 1, 0
    for i, p in enumerate(rec_pos.tolist()):
        line += text.count("\n", prev, p)
        prev = p
        rec_line[i] = line
    p_line = np.where(p_emit_rec >= 0, rec_line[np.maximum(p_emit_rec, 0)], n_lines).tolist()
    p_run = np.zeros(len(p_metric), dtype=np.int64)
    events: list[Event] = []
    current = 0
    seg_first = None
    last: dict[int, int] = {}
    for i, (metric, step) in enumerate(zip(p_metric.tolist(), p_step.tolist())):
        prev = last.get(metric)
        if prev is not None and step < prev:
            if seg_first is not None and step <= seg_first:
                run_names.append(f"{base}-run{len(run_names) + 1}")
                current = len(run_names) - 1
                last.clear()
                seg_first = step
            elif not events or events[-1].run != run_names[current] or events[-1].step != step:
                events.append(Event(run=run_names[current], step=step, kind="resume",
                                    detail=f"{names[metric]} went back from step {prev:,} to {step:,} "
                                           f"({path.name}, line {p_line[i]:,})"))
        if seg_first is None or step < seg_first:
            seg_first = step
        last[metric] = step
        p_run[i] = current
    return p_run, events
