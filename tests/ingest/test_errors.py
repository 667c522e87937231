"""Bad input across every importer: a step past int64, a non-numeric value, an unreadable
file. Each must raise IngestError (never a bare OverflowError/ValueError/OSError) whose
message names the file and the place (line, entry or record) and, for steps, the step."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.errors import IngestError
from engine.ingest import hf, lightning, mlflow, table, tensorboard, text, wandb
from engine.ingest.base import IngestOptions

BIG = 2**63  # one past int64
BIG_TEXT = "9223372036854775808"


def _mlflow_run(root: Path, lines: str) -> Path:
    run = root / "mlruns" / "0" / "abcdef0123456789"
    (run / "metrics").mkdir(parents=True)
    (run / "meta.yaml").write_text("run_id: abcdef0123456789\nexperiment_id: '0'\nstatus: 3\n")
    (root / "mlruns" / "0" / "meta.yaml").write_text("experiment_id: '0'\nname: exp\n")
    (run / "metrics" / "loss").write_text(lines)
    return root / "mlruns"


def _lightning(root: Path, rows: list[str]) -> Path:
    v = root / "lightning_logs" / "version_0"
    v.mkdir(parents=True)
    (v / "metrics.csv").write_text("epoch,step,train_loss\n" + "\n".join(rows) + "\n")
    return root / "lightning_logs"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _tb_event(step_varint: bytes, tag: str, value: float) -> bytes:
    """Event{wall_time=1.7e9 (1), step (2, raw varint), summary (5){value (1){tag (1), simple_value (2)}}}."""
    val = b"\x0a" + _varint(len(tag)) + tag.encode() + b"\x15" + struct.pack("<f", value)
    summ = b"\x0a" + _varint(len(val)) + val
    return b"\x09" + struct.pack("<d", 1.7e9) + b"\x10" + step_varint + b"\x2a" + _varint(len(summ)) + summ


def _tb_file(root: Path, events: list[bytes]) -> Path:
    from engine.ingest._protobuf import masked_crc32c_bytes

    root.mkdir(parents=True, exist_ok=True)
    p = root / "events.out.tfevents.1700000000.host.1.0"
    data = b""
    for ev in events:
        head = struct.pack("<Q", len(ev))
        data += head + struct.pack("<I", masked_crc32c_bytes(head)) + ev + struct.pack("<I", masked_crc32c_bytes(ev))
    p.write_bytes(data)
    return p


def _tb_string_tensor_event(step: int, tag: str) -> bytes:
    """A scalars-plugin value whose tensor is a DT_STRING (7): not a number."""
    tensor = b"\x08\x07" + b"\x42\x03abc"  # dtype=7, string_val (8) 'abc'
    plugin = b"\x0a\x07scalars"
    meta = b"\x0a" + _varint(len(plugin)) + plugin
    val = (b"\x0a" + _varint(len(tag)) + tag.encode() + b"\x42" + _varint(len(tensor)) + tensor
           + b"\x4a" + _varint(len(meta)) + meta)
    summ = b"\x0a" + _varint(len(val)) + val
    return b"\x09" + struct.pack("<d", 1.7e9) + b"\x10" + _varint(step) + b"\x2a" + _varint(len(summ)) + summ


# each builder writes a file whose second point has step 2**63; returns (path to read, reader,
# file name the message must contain, place the message must contain)
def big_hf(d):
    p = d / "run" / "trainer_state.json"
    p.parent.mkdir()
    p.write_text('{"log_history": [{"loss": 1.0, "step": 1}, {"loss": 0.5, "step": %d}]}' % BIG)
    return p, hf.read, "trainer_state.json", "entry 1"


def big_csv(d):
    p = d / "m.csv"
    p.write_text(f"step,loss\n1,0.5\n{BIG_TEXT},0.4\n")
    return p, table.read, "m.csv", "line 3"


def big_jsonl(d):
    p = d / "m.jsonl"
    p.write_text('{"step": 1, "loss": 0.5}\n{"step": %d, "loss": 0.4}\n' % BIG)
    return p, table.read, "m.jsonl", "line 2"


def big_parquet(d):
    p = d / "m.parquet"
    pq.write_table(pa.table({"step": pa.array([1, BIG], pa.uint64()), "loss": [0.5, 0.4]}), p)
    return p, table.read, "m.parquet", "row 2"


def big_text(d):
    p = d / "train.log"
    p.write_text(f"s:1 trl:0.5\ns:{BIG_TEXT} trl:0.4\n")
    return p, text.read, "train.log", "line 2"


def big_text_dict(d):
    p = d / "stdout.log"
    p.write_text("{'loss': 0.5, 'step': 1}\n{'loss': 0.4, 'step': 1e19}\n")
    return p, text.read, "stdout.log", "line 2"


def big_lightning(d):
    return _lightning(d, ["0,1,0.5", f"0,{BIG_TEXT},0.4"]), lightning.read, "metrics.csv", "line 3"


def big_mlflow(d):
    return _mlflow_run(d, f"1000 0.5 1\n2000 0.4 {BIG_TEXT}\n"), mlflow.read, "metrics/loss", "line 2"


def big_tensorboard(d):
    # an Event's step is a protobuf int64: the varint of 2**63 reads as -2**63
    p = _tb_file(d / "tb", [_tb_event(_varint(1), "loss", 0.5), _tb_event(_varint(BIG), "loss", 0.4)])
    return p, tensorboard.read, p.name, "record 2"


def big_wandb_csv(d):
    p = d / "export.csv"
    p.write_text(f"_step,loss\n0,2.5\n{BIG_TEXT},2.4\n")
    return p, wandb.read, "export.csv", "line 3"


def big_wandb_jsonl(d):
    f = d / "run-20240101_000000-abc1" / "files"
    f.mkdir(parents=True)
    p = f / "wandb-history.jsonl"
    p.write_text('{"_step": 0, "loss": 2.5}\n{"_step": %d, "loss": 2.4}\n' % BIG)
    return p, wandb.read, "wandb-history.jsonl", "line 2"


BIG_CASES = [big_hf, big_csv, big_jsonl, big_parquet, big_text, big_text_dict, big_lightning, big_mlflow,
             big_tensorboard, big_wandb_csv, big_wandb_jsonl]


@pytest.mark.parametrize("build", BIG_CASES, ids=[b.__name__ for b in BIG_CASES])
def test_step_past_int64_names_file_place_and_step(tmp_path, build):
    path, read, name, place = build(tmp_path)
    with pytest.raises(IngestError) as e:
        read(path)
    msg = str(e.value)
    assert name in msg and place in msg, msg
    assert any(s in msg.replace(",", "") for s in (BIG_TEXT, "1e+19", "-9223372036854775808")), msg


# ---- a non-numeric value ---------------------------------------------------------------

def bad_hf(d):
    p = d / "run" / "trainer_state.json"
    p.parent.mkdir()
    p.write_text('{"log_history": [{"loss": 1.0, "step": 1}, {"loss": "1.2.3", "step": 2}]}')
    return p, hf.read, "trainer_state.json", "entry 1"


def bad_csv(d):
    p = d / "m.csv"
    p.write_text("step,loss\n1,0.5\n2,1.2.3\n")
    return p, table.read, "m.csv", "line 3"


def bad_jsonl(d):
    p = d / "m.jsonl"
    p.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": "1.2.3"}\n')
    return p, table.read, "m.jsonl", "line 2"


def bad_parquet(d):
    p = d / "m.parquet"
    pq.write_table(pa.table({"step": [1, 2], "loss": ["0.5", "1.2.3"]}), p)
    return p, table.read, "m.parquet", "row 2"


def bad_text_step(d):
    p = d / "custom.log"
    p.write_text("it=1 L=0.5\nit=two L=0.4\n")
    read = lambda path: text.read(path, options=IngestOptions(text_patterns=[r"it=(?P<step>\S+) L=(?P<loss>\S+)"]))
    return p, read, "custom.log", "line 2"


def bad_lightning(d):
    return _lightning(d, ["0,1,0.5", "0,2,1.2.3"]), lightning.read, "metrics.csv", "line 3"


def bad_mlflow(d):
    return _mlflow_run(d, "1000 0.5 1\n2000 1.2.3 2\n"), mlflow.read, "metrics/loss", "line 2"


def bad_tensorboard(d):
    p = _tb_file(d / "tb", [_tb_event(_varint(1), "loss", 0.5), _tb_string_tensor_event(2, "loss")])
    return p, tensorboard.read, p.name, "record 2"


def bad_wandb_csv(d):
    p = d / "export.csv"
    p.write_text("_step,loss\n0,2.5\n1,1.2.3\n")
    return p, wandb.read, "export.csv", "line 3"


def bad_wandb_jsonl(d):
    f = d / "run-20240101_000000-abc1" / "files"
    f.mkdir(parents=True)
    p = f / "wandb-history.jsonl"
    p.write_text('{"_step": 0, "loss": 2.5}\n{"_step": 1, "loss": "1.2.3"}\n')
    return p, wandb.read, "wandb-history.jsonl", "line 2"


BAD_CASES = [bad_hf, bad_csv, bad_jsonl, bad_parquet, bad_text_step, bad_lightning, bad_mlflow, bad_tensorboard,
             bad_wandb_csv, bad_wandb_jsonl]


@pytest.mark.parametrize("build", BAD_CASES, ids=[b.__name__ for b in BAD_CASES])
def test_non_numeric_value_names_file_and_place(tmp_path, build):
    path, read, name, place = build(tmp_path)
    with pytest.raises(IngestError) as e:
        read(path)
    msg = str(e.value)
    assert name in msg and place in msg, msg
    assert "1.2.3" in msg or "'two'" in msg or "string" in msg, msg


def test_text_logs_skip_non_numeric_tokens_and_count_them(tmp_path):
    # text logs interleave metrics with any other text: a word is not a value, by design
    p = tmp_path / "train.log"
    p.write_text("s:1 trl:0.5\ns:2 trl:1.2.3\ns:3 trl:0.25\n")
    parsed = text.read(p)
    assert parsed.table.column("step").to_pylist() == [1, 3]
    assert parsed.attributes[parsed.runs[0]]["ingest_skipped"]["non_numeric"] == {"train_loss": 1}


# ---- unreadable files ------------------------------------------------------------------

UNREADABLE = [
    ("trainer_state.json", hf.read), ("m.csv", table.read), ("m.jsonl", table.read), ("m.parquet", table.read),
    ("train.log", text.read), ("metrics.csv", lightning.read), ("export.csv", wandb.read),
    ("events.out.tfevents.1.host", tensorboard.read),
]


@pytest.mark.parametrize("name,read", UNREADABLE, ids=[u[0] for u in UNREADABLE])
def test_unreadable_file_is_an_ingest_error_naming_it(tmp_path, name, read):
    # a directory where a file is expected: reading it fails with an OSError even as root
    p = tmp_path / name
    p.mkdir()
    with pytest.raises(IngestError) as e:
        read(p)
    assert name in str(e.value)


def test_mlflow_unreadable_metric_file(tmp_path):
    root = _mlflow_run(tmp_path, "1000 0.5 1\n")
    bad = root / "0" / "abcdef0123456789" / "metrics" / "acc"
    os.symlink(tmp_path / "missing", bad)  # a dangling link: open() raises FileNotFoundError
    with pytest.raises(IngestError) as e:
        mlflow.read(root)
    assert "metrics/acc" in str(e.value)


def test_tensorboard_small_negative_steps_are_kept(tmp_path):
    # a signed int64 field: -1 is a step TensorBoard shows; only the wrap-around range is refused
    p = _tb_file(tmp_path / "tb", [_tb_event(_varint(2**64 - 1), "loss", 0.5), _tb_event(_varint(0), "loss", 0.25)])
    parsed = tensorboard.read(p)
    assert parsed.table.column("step").to_pylist() == [-1, 0]
