"""Hugging Face Trainer ``trainer_state.json`` (``TrainerState.save_to_json``).

Layout: a JSON object whose ``log_history`` is a list of dicts, one per ``Trainer.log``
call: ``{**logs, "epoch": e, "step": global_step}``. Train entries carry ``loss``,
``grad_norm``, ``learning_rate`` (TRL adds ``rewards/chosen``, ``logps/...``, ...), eval
entries ``eval_*`` (several eval sets give ``eval_<name>_*``). Train and eval entries at
the same step are two metric groups, not a conflict.

Rules (decided here, relied on by tests/ingest/test_hf.py):

- Every numeric key of an entry (other than ``step``) becomes a curve named exactly as
  logged, at ``step``; ``epoch`` is a curve like any other. Values are float64; the
  ``NaN``/``Infinity``/``-Infinity`` literals that Python's json writes are kept, and so
  are the strings "NaN", "nan", "inf", "Infinity", "-Infinity" (W&B-style spellings).
- The train summary entry that ``Trainer.train`` logs at the end (it carries
  ``train_runtime``, ``train_loss``, ``total_flos``, ``train_samples_per_second`` ...) is
  not a curve: its keys go to the run attributes under ``train_summary``.
- Entries without a ``step`` key (e.g. ``predict_*`` metrics logged by custom code after
  training) are skipped; ``ingest_skipped.entries_without_step`` counts them and
  ``ingest_skipped.keys_without_step`` lists their keys. Guessing a step would invent data.
- Values that are not numbers (strings, lists, dicts, null, booleans) under a key that is
  never numeric are skipped and counted per key in ``ingest_skipped.non_numeric``. A key
  that is a number in one entry and a non-number string in another is an error naming the
  entry index: that is a corrupt log, not a label.
- ``step`` must be an integer (an integral float such as ``100.0`` is accepted).
- Every top-level key except ``log_history`` (``global_step``, ``max_steps``,
  ``best_metric``, ``best_model_checkpoint``, ``logging_steps``, ...) is a run attribute.
- Run name: the folder holding the file; when that folder is ``checkpoint-<N>`` the name
  is its parent folder's, so the checkpoints of one run (each a prefix of the final state)
  land in one run and the store's last-wins rule merges them.
- No wall time: the file has none.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from engine.errors import IngestError
from engine.ingest.base import IngestOptions, Parsed, hash_files, make_table

FORMAT = "hf_trainer_state"

FILENAME = "trainer_state.json"
SUMMARY_KEYS = frozenset({"train_runtime", "train_loss", "total_flos", "train_samples_per_second",
                          "train_steps_per_second"})
_NONFINITE_STRINGS = {"nan": math.nan, "+nan": math.nan, "-nan": math.nan, "inf": math.inf,
                      "+inf": math.inf, "infinity": math.inf, "+infinity": math.inf,
                      "-inf": -math.inf, "-infinity": -math.inf}
_CHECKPOINT_DIR = re.compile(r"checkpoint[-_]\d+$")


def sniff(path: Path) -> bool:
    """A file named trainer_state.json, a .json file whose first 8 KiB mention
    "log_history", or a folder that directly holds a trainer_state.json."""
    path = Path(path)
    if path.is_dir():
        return (path / FILENAME).is_file()
    if not path.is_file():
        return False
    if path.name == FILENAME:
        return True
    if path.suffix.lower() != ".json":
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError:
        return False
    return head.lstrip()[:1] == b"{" and b'"log_history"' in head


def default_run_name(path: Path) -> str:
    folder = Path(path).resolve().parent
    if _CHECKPOINT_DIR.match(folder.name) and folder.parent.name:
        return folder.parent.name
    return folder.name or "run"


def _number(v):
    """float for a JSON number or a non-finite spelling; None for anything else."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        return _NONFINITE_STRINGS.get(v.strip().lower())
    return None


def _decode_error(path: Path, text: str, nbytes: int, err: json.JSONDecodeError) -> IngestError:
    pos = err.pos
    inside = " inside log_history" if text.rfind('"log_history"', 0, pos) >= 0 else ""
    # An unterminated string can only run into the end of the file (json refuses raw
    # newlines inside strings), so it is a truncation like an error at the last byte.
    if pos >= len(text.rstrip()) or err.msg.startswith("Unterminated string"):
        return IngestError(f"JSON ends at byte {nbytes:,}{inside} (truncated?); nothing was ingested.",
                           path=str(path), line=text.count("\n", 0, len(text.rstrip())) + 1)
    return IngestError(f"invalid JSON at byte {len(text[:pos].encode()):,} (column {err.colno}){inside}: "
                       f"{err.msg}; nothing was ingested.", path=str(path), line=err.lineno)


def read(path: Path, *, run: str | None = None, options: IngestOptions = IngestOptions()) -> Parsed:
    given = path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IngestError(f"cannot read the file: {e.strerror or e}", path=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise IngestError(f"byte {e.start:,} is not UTF-8; a trainer_state.json is UTF-8 JSON.",
                          path=str(path)) from None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as e:
        raise _decode_error(path, text, len(raw), e) from None
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise IngestError("expected a JSON object with a \"log_history\" list (a Hugging Face "
                          "trainer_state.json).", path=str(path))
    history = state["log_history"]
    run = run or default_run_name(path)

    numeric_keys = None  # keys that are a number somewhere: computed on the first non-number

    def is_numeric_key(key):
        nonlocal numeric_keys
        if numeric_keys is None:
            numeric_keys = {k for e in history if isinstance(e, dict) for k, v in e.items()
                            if type(v) is int or type(v) is float}
        return key in numeric_keys

    metrics: list[str] = []
    steps: list[int] = []
    values: list[float] = []
    summary: dict = {}
    no_step = 0
    no_step_keys: dict[str, int] = {}
    non_numeric: dict[str, int] = {}
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            raise IngestError(f"log_history entry {i:,} is {type(entry).__name__}, expected an "
                              "object.", path=str(path))
        if SUMMARY_KEYS.intersection(entry):
            for k, v in entry.items():
                summary[k] = v
            continue
        if "step" not in entry:
            no_step += 1
            for k in entry:
                no_step_keys[k] = no_step_keys.get(k, 0) + 1
            continue
        s = entry["step"]
        if isinstance(s, bool) or not isinstance(s, (int, float)) or \
                (isinstance(s, float) and not (math.isfinite(s) and s.is_integer())):
            raise IngestError(f"log_history entry {i:,} has step {s!r}; expected an integer step.",
                              path=str(path))
        s = int(s)
        if not -(2**63) <= s < 2**63:
            raise IngestError(f"log_history entry {i:,} has step {s:,}, beyond int64.",
                              path=str(path))
        for k, v in entry.items():
            tv = type(v)
            if tv is float or tv is int:  # the common case, kept cheap (bool is not int here)
                if k != "step":
                    metrics.append(k)
                    steps.append(s)
                    values.append(v)
                continue
            x = _number(v)
            if x is None:
                if isinstance(v, str) and is_numeric_key(k):
                    raise IngestError(
                        f"log_history entry {i:,} (step {s:,}): key {k!r} holds {v!r}; it is a "
                        "number in other entries, expected a number.", path=str(path), metric=k)
                non_numeric[k] = non_numeric.get(k, 0) + 1
                continue
            metrics.append(k)
            steps.append(s)
            values.append(x)

    attrs = {k: v for k, v in state.items() if k != "log_history"}
    attrs["log_history_entries"] = len(history)
    if summary:
        attrs["train_summary"] = summary
    skipped = {}
    if no_step:
        skipped["entries_without_step"] = no_step
        skipped["keys_without_step"] = sorted(no_step_keys)
    if non_numeric:
        skipped["non_numeric"] = non_numeric
    if skipped:
        attrs["ingest_skipped"] = skipped

    table = make_table(run, metrics, steps, values)
    return Parsed(format=FORMAT, source=str(given), table=table, attributes={run: attrs},
                  content_hash=hash_files([path]))
