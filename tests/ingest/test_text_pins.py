"""The fast text reader gives exactly what the line-by-line reader gave.

Two guards, written before the speed rewrite of engine/ingest/text.py:
- text_pins.json: per real text log, the row count and per (run, metric) the count, first
  row, steps and values at start/middle/end, step sum, non-finite count and finite-value
  sum, plus events and run attributes, as the line-by-line reader produced them (commit
  445850e; regenerate only for an intended change of output, and say so in the commit);
- text_ref.py (the line-by-line reader kept as a slow twin): identical tables, events and
  attributes on every real log and on generated logs that mix every line profile.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import IngestError
from engine.ingest import text
from engine.ingest.base import IngestOptions
from tests.ingest import text_ref

PINS = json.loads((Path(__file__).parent / "text_pins.json").read_text())


def summary(p):
    t = p.table
    run = t.column("run").to_pylist()
    met = t.column("metric").to_pylist()
    step = t.column("step").to_numpy()
    val = t.column("value").to_numpy()
    per = {}
    for i, key in enumerate(zip(run, met)):
        per.setdefault(key, []).append(i)
    out = {}
    for (r, m), idx in per.items():
        idx = np.array(idx)
        v, s = val[idx], step[idx]
        fin = np.isfinite(v)
        out[f"{r}|{m}"] = {"n": len(idx), "first_row": int(idx[0]),
                           "steps": [int(s[0]), int(s[len(s) // 2]), int(s[-1])], "step_sum": int(s.sum()),
                           "values": [repr(float(v[0])), repr(float(v[len(v) // 2])), repr(float(v[-1]))],
                           "nonfinite": int((~fin).sum()), "value_sum": repr(float(v[fin].sum()))}
    return {"rows": t.num_rows, "curves": out, "events": [[e.run, e.step, e.kind, e.detail] for e in p.events],
            "attributes": json.loads(json.dumps(p.attributes))}


def same(a, b):
    """Parsed a and b hold the same rows in the same order (NaN equal to NaN, -0.0 kept)."""
    assert a.table.schema == b.table.schema
    for c in ("run", "metric", "step"):
        assert a.table.column(c).to_pylist() == b.table.column(c).to_pylist(), c
    va, vb = a.table.column("value").to_numpy(), b.table.column("value").to_numpy()
    assert va.tobytes() == vb.tobytes() or np.array_equal(va, vb, equal_nan=True)
    assert np.array_equal(np.signbit(va), np.signbit(vb))
    assert a.table.column("wall_time").null_count == a.table.num_rows
    assert [(e.run, e.step, e.kind, e.detail) for e in a.events] == [(e.run, e.step, e.kind, e.detail)
                                                                      for e in b.events]
    assert json.dumps(a.attributes) == json.dumps(b.attributes)  # NaN equal to NaN, key order kept
    assert a.runs == b.runs and a.format == b.format and a.content_hash == b.content_hash


EPOCH_BLOCK_LOG = "rlhf/toy-ppo-rlhf-systems-kit/runs/run_20250828_211717/logs/train.log"


def test_pins_cover_every_real_text_log(real_dir):
    found = sorted(str(f.relative_to(real_dir)) for f in real_dir.rglob("*") if f.is_file() and text.sniff(f))
    # The epoch-block log came after the pins (block rule; the slow twin predates it):
    # it is checked by test_text.py::test_toy_ppo_epoch_blocks instead.
    assert found == sorted(set(PINS) | {EPOCH_BLOCK_LOG})
    assert sum(p["rows"] for p in PINS.values()) == 293_429


@pytest.mark.parametrize("rel", sorted(PINS), ids=[r.split("/")[-1][:24] for r in sorted(PINS)])
def test_real_logs_match_pins_and_slow_twin(real_dir, rel):
    p = text.read(real_dir / rel)
    assert summary(p) == PINS[rel]
    same(p, text_ref.read(real_dir / rel))


# ---- generated logs mixing every line profile ------------------------------------------

NUMS = st.one_of(st.floats(-1e6, 1e6).map(lambda v: f"{v:.4f}"), st.floats(1e-12, 1e12).map(lambda v: f"{v:.6e}"),
                 st.integers(-5, 10**6).map(str),
                 st.sampled_from(["nan", "NaN", "-inf", "inf", "Infinity", "+nan", "1.", ".5", "-0.0", "3E+02"]),
                 st.sampled_from(["30ms", "nanms", "0.01%", "12.5s", "abc", "1.2.3", "x", "", "7it/s", "4,"]))
KEYS = st.sampled_from(["trl", "tel", "eval", "lr", "norm", "train_loss", "val_loss", "train_time", "step_avg",
                        "loss", "train loss", "val loss", "lm loss", "grad norm", "mfu", "time", "val", "train",
                        "hella", "tok/sec", "a.b-c", "learning rate", "time (ms)", "é_loss", " lm loss "])
STEP = st.one_of(st.integers(0, 60), st.integers(0, 3 * 10**5))


@st.composite
def log_line(draw):
    kind = draw(st.integers(0, 11))
    step = draw(STEP)
    pairs = draw(st.lists(st.tuples(KEYS, NUMS), min_size=0, max_size=4))
    if kind == 0:
        return f"s:{step} " + " ".join(f"{k.replace(' ', '_')}:{v}" for k, v in pairs)
    if kind == 1:
        return f"step:{step}/{draw(st.integers(1, 10**6))} " + " ".join(f"{k.replace(' ', '_')}:{v}" for k, v in pairs)
    if kind == 2:
        return f"{draw(st.sampled_from(['iter', 'step']))} {step}: " + ", ".join(f"{k} {v}" for k, v in pairs)
    if kind == 3:
        head = draw(st.sampled_from([" iteration", "step", "[2024-01-01 10:00] iteration", "iter", "ITERATION", "Step"]))
        return f"{head} {step:6d}/ 1000 | " + " | ".join(f"{k}{draw(st.sampled_from([': ', ' ']))}{v}"
                                                      for k, v in pairs) + draw(st.sampled_from(["", " |"]))
    if kind == 4:
        k, v = draw(st.tuples(st.sampled_from(["train", "val", "hella", "loss"]), NUMS))
        return f"{step} {k} {v}"
    if kind == 5:
        keys = draw(st.lists(st.sampled_from(["loss", "grad_norm", "learning_rate", "epoch", "eval_loss",
                                              "eval_runtime", "step", "global_step", "train_runtime",
                                              "train_loss"]), min_size=1, max_size=4, unique=True))
        return "{" + ", ".join(f"'{k}': {draw(NUMS) or '0'}" for k in keys) + "}"
    if kind == 6:
        return draw(st.sampled_from(["validation loss: 6.07", "HellaSwag accuracy: 2443/10042=0.2433",
                                     "val loss : nan", "validation loss: 12ms"]))
    if kind == 7:  # progress bars redrawn with carriage returns around a metric line
        return f"progress 10%\rstep:{step} val_loss:{draw(NUMS)}\rdone"
    if kind == 8:
        return draw(st.sampled_from(["import torch", "    print0(f'step:{step} val_loss:{v}')", "=" * 20, "",
                                     "number of parameters: 12", "step 1: we tried", "{'a': b}", "  ",
                                     "s:", "step:12", "iteration 5 |", "s:3 a:1\x1fb:2", "step 4 | x:\x1f1 | y 2"]))
    if kind == 9:  # user pattern
        return f"it={step} L={draw(NUMS)} acc={draw(NUMS)}"
    if kind == 10:
        return f"metric train/loss at {step} = {draw(NUMS)}"
    return f"s:{step} trl:{draw(NUMS)}"


def outcome(read, path, options):
    try:
        return read(path, options=options), None
    except IngestError as e:
        return None, type(e)


@settings(max_examples=int(os.environ.get("TEXT_TWIN_EXAMPLES", 150)), deadline=None)
@given(lines=st.lists(log_line(), min_size=0, max_size=40), user=st.booleans(),
       newline=st.sampled_from(["\n", "\r\n"]))
def test_generated_logs_match_slow_twin(tmp_path_factory, lines, user, newline):
    path = tmp_path_factory.mktemp("gen") / "gen.log"
    path.write_bytes(newline.join(lines).encode())
    opts = IngestOptions(text_patterns=[r"it=(?P<step>\d+) L=(?P<loss>\S+) acc=(?P<acc>\S+)",
                                        r"metric (?P<key>\S+) at (?P<step>\d+) = (?P<value>\S+)"] if user else [])
    fast, fast_err = outcome(text.read, path, opts)
    slow, slow_err = outcome(text_ref.read, path, opts)
    assert fast_err == slow_err
    if fast is not None:
        same(fast, slow)
    assert text.sniff(path) == text_ref.sniff(path)
