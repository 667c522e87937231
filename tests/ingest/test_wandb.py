"""W&B importer: .wandb transaction logs (real corpus and synthetic), history exports.

The reference decoder here uses the ``protobuf`` runtime with a descriptor built from
wandb's ``wandb_internal.proto`` field numbers (Record/HistoryRecord/HistoryItem/
RunRecord/RunExitRecord), so record decoding is checked against Google's parser, not
against our own hand-written wire decoder.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from engine.errors import IngestError
from engine.ingest import wandb as wb
from engine.ingest.base import PARSED_SCHEMA, IngestOptions

descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
from google.protobuf import descriptor_pool, message_factory  # noqa: E402

# ---------------------------------------------------------------- reference protobuf classes

_F = descriptor_pb2.FieldDescriptorProto


def _classes():
    fd = descriptor_pb2.FileDescriptorProto(name="wb_test.proto", package="wbt", syntax="proto3")

    def msg(name, fields):
        m = fd.message_type.add(name=name)
        for fname, num, ftype, label, tname in fields:
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                f.type_name = ".wbt." + tname

    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    msg("HistoryItem", [("key", 1, _F.TYPE_STRING, opt, None), ("nested_key", 2, _F.TYPE_STRING, rep, None),
                        ("value_json", 16, _F.TYPE_STRING, opt, None)])
    msg("HistoryStep", [("num", 1, _F.TYPE_INT64, opt, None)])
    msg("HistoryRecord", [("item", 1, _F.TYPE_MESSAGE, rep, "HistoryItem"),
                          ("step", 2, _F.TYPE_MESSAGE, opt, "HistoryStep")])
    msg("ConfigRecord", [("update", 1, _F.TYPE_MESSAGE, rep, "HistoryItem")])
    msg("RunRecord", [("run_id", 1, _F.TYPE_STRING, opt, None), ("project", 3, _F.TYPE_STRING, opt, None),
                      ("config", 4, _F.TYPE_MESSAGE, opt, "ConfigRecord"),
                      ("display_name", 8, _F.TYPE_STRING, opt, None)])
    msg("RunExitRecord", [("exit_code", 1, _F.TYPE_INT32, opt, None), ("runtime", 2, _F.TYPE_INT32, opt, None)])
    msg("OutputRecord", [("line", 3, _F.TYPE_STRING, opt, None)])
    msg("Record", [("num", 1, _F.TYPE_INT64, opt, None), ("history", 2, _F.TYPE_MESSAGE, opt, "HistoryRecord"),
                   ("summary", 3, _F.TYPE_MESSAGE, opt, "ConfigRecord"),
                   ("output", 4, _F.TYPE_MESSAGE, opt, "OutputRecord"),
                   ("config", 5, _F.TYPE_MESSAGE, opt, "ConfigRecord"),
                   ("run", 17, _F.TYPE_MESSAGE, opt, "RunRecord"),
                   ("exit", 18, _F.TYPE_MESSAGE, opt, "RunExitRecord")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("wbt.Record"))


Record = _classes()


def reference_history(path: Path) -> list[dict]:
    """History rows {key: value_json} of a .wandb file: framing read block by block
    (LevelDB log layout), records parsed by the protobuf runtime."""
    data = path.read_bytes()
    rows, buf = [], b""
    for block_start in range(0, len(data), 32768):
        block = data[block_start:block_start + 32768]
        i = 7 if block_start == 0 else 0
        while i + 7 <= len(block):
            crc, n, t = struct.unpack_from("<IHB", block, i)
            if t == 0 or i + 7 + n > len(block):
                break
            frag = block[i + 7:i + 7 + n]
            assert zlib.crc32(frag, zlib.crc32(bytes([t]))) & 0xFFFFFFFF == crc
            buf = frag if t in (1, 2) else buf + frag
            if t in (1, 4):
                r = Record()
                r.ParseFromString(buf)
                if r.HasField("history"):
                    rows.append({(".".join(it.nested_key) if it.nested_key else it.key): it.value_json
                                 for it in r.history.item})
            i += 7 + n
    return rows


# ---------------------------------------------------------------- a .wandb writer for tests


def frame_log(records: list[bytes], *, pad_to: int | None = None) -> bytes:
    out = bytearray(wb.HEADER + struct.pack("<HB", 0xBEE1, 0))
    for data in records:
        first = True
        while True:
            left = wb.BLOCK - len(out) % wb.BLOCK
            if left < 7:
                out += b"\0" * left
                continue
            frag, data = data[:left - 7], data[left - 7:]
            end = not data
            t = (1 if end else 2) if first else (4 if end else 3)
            out += struct.pack("<IHB", zlib.crc32(frag, zlib.crc32(bytes([t]))) & 0xFFFFFFFF, len(frag), t) + frag
            first = False
            if end:
                break
    if pad_to is not None:
        out += b"\0" * (pad_to - len(out))
    return bytes(out)


def history(num, **items) -> bytes:
    r = Record(num=num)
    for k, v in items.items():
        it = r.history.item.add()
        if "." in k:
            it.nested_key.extend(k.split("."))
        else:
            it.key = k
        it.value_json = v if isinstance(v, str) else json.dumps(v)
    return r.SerializeToString()


def run_record(run_id, **config) -> bytes:
    r = Record(num=0)
    r.run.run_id = run_id
    r.run.project = "proj"
    r.run.display_name = "bright-sun-1"
    for k, v in config.items():
        r.run.config.update.add(key=k, value_json=json.dumps(v))
    return r.SerializeToString()


def exit_record(code=0) -> bytes:
    r = Record(num=99)
    r.exit.exit_code = code
    return r.SerializeToString()


def output_record(line) -> bytes:
    r = Record(num=1)
    r.output.line = line
    return r.SerializeToString()


def write_run(folder: Path, run_id: str, records: list[bytes], stamp="20240101_000000", **kw) -> Path:
    d = folder / f"run-{stamp}-{run_id}"
    d.mkdir(parents=True)
    p = d / f"run-{run_id}.wandb"
    p.write_bytes(frame_log(records, **kw))
    return p


def points(parsed):
    t = parsed.table
    return list(zip(t.column("run").to_pylist(), t.column("metric").to_pylist(), t.column("step").to_pylist(),
                    t.column("value").to_pylist()))


# ---------------------------------------------------------------- synthetic logs


def test_synthetic_log_values_nested_nonfinite_and_long_records(tmp_path):
    recs = [run_record("abc123", lr=0.001, optimizer={"name": "adam"})]
    recs.append(output_record("x" * 70_000))  # spans three 32 KiB blocks: FIRST, MIDDLE, LAST
    for i in range(50):
        recs.append(history(i + 2, **{"loss": 1.0 / (i + 1), "acc": i / 50, "_step": i,
                                      "_timestamp": 1.7e9 + i, "opt.grad.norm": i * 2.0,
                                      "media": {"_type": "image-file", "path": "a.png"}, "note": "text",
                                      "flag": True}))
    recs.append(history(60, loss="NaN", _step=50))
    recs.append(history(61, loss="Infinity", acc="-Infinity", _step=51))
    recs.append(exit_record(0))
    path = write_run(tmp_path / "wandb", "abc123", recs)
    parsed = wb.read(tmp_path / "wandb")
    assert parsed.table.schema == PARSED_SCHEMA
    assert parsed.runs == ["abc123"]
    pts = points(parsed)
    assert len(pts) == 50 * 3 + 1 + 2
    assert {m for _, m, _, _ in pts} == {"loss", "acc", "opt.grad.norm"}
    assert pts[:3] == [("abc123", "loss", 0, 1.0), ("abc123", "acc", 0, 0.0), ("abc123", "opt.grad.norm", 0, 0.0)]
    assert math.isnan(pts[-3][3]) and pts[-2][3] == math.inf and pts[-1][3] == -math.inf
    walls = parsed.table.column("wall_time").to_pylist()
    assert walls[0] == 1.7e9 and walls[3] == 1.7e9 + 1
    a = parsed.attributes["abc123"]
    assert a["complete"] is True and a["exit_code"] == 0 and a["history_rows"] == 52
    assert a["config"] == {"lr": 0.001, "optimizer": {"name": "adam"}}
    assert a["run"]["display_name"] == "bright-sun-1" and a["step_key"] == "_step"
    assert parsed.events == []
    # the reference decoder agrees row by row
    ref = reference_history(path)
    assert len(ref) == 52 and json.loads(ref[0]["loss"]) == 1.0


def test_global_step_key_becomes_the_step(tmp_path):
    recs = [run_record("hf1")] + [history(i, **{"train/loss": 2.0 - i / 10, "train/global_step": 10 * (i + 1),
                                                "_step": i}) for i in range(5)] + [exit_record()]
    write_run(tmp_path, "hf1", recs)
    parsed = wb.read(tmp_path)
    assert [(m, s) for _, m, s, _ in points(parsed)] == [("train/loss", 10 * (i + 1)) for i in range(5)]
    assert parsed.attributes["hf1"]["step_key"] == "train/global_step"


def test_truncated_log_keeps_complete_records_and_reports(tmp_path):
    recs = [run_record("t1")] + [history(i, loss=float(i), _step=i) for i in range(200)]
    full = frame_log(recs)
    cut = full[:-25]  # inside the last record
    d = tmp_path / "run-20240101_000000-t1"
    d.mkdir()
    (d / "run-t1.wandb").write_bytes(cut)
    parsed = wb.read(d / "run-t1.wandb")
    assert [s for _, _, s, _ in points(parsed)] == list(range(199))
    (note,) = parsed.events
    assert note.kind == "note" and "no exit record" in note.detail and f"{len(full) - len(frame_log([recs[-1]])) + 7:,}" in note.detail
    assert parsed.attributes["t1"]["complete"] is False
    opts = IngestOptions()
    opts.strict_tail = True
    with pytest.raises(IngestError, match="strict_tail"):
        wb.read(d / "run-t1.wandb", options=opts)
    # zero-padded preallocation after the last complete record
    (d / "run-t1.wandb").write_bytes(frame_log(recs, pad_to=65536))
    parsed = wb.read(d)
    assert parsed.table.num_rows == 200
    assert "zero padding" in parsed.events[0].detail


def test_resumed_run_in_two_folders_is_one_run(tmp_path):
    write_run(tmp_path, "r9", [run_record("r9")] + [history(i, loss=1.0, _step=i) for i in range(10)]
              + [exit_record(1)], stamp="20240101_000000")
    write_run(tmp_path, "r9", [run_record("r9")] + [history(i, loss=2.0, _step=s) for i, s in enumerate(range(8, 15))]
              + [exit_record(0)], stamp="20240102_000000")
    parsed = wb.read(tmp_path)
    assert parsed.runs == ["r9"]
    assert [s for _, _, s, _ in points(parsed)] == list(range(10)) + list(range(8, 15))
    (ev,) = parsed.events
    assert ev.kind == "resume" and ev.step == 8 and "after step 9" in ev.detail
    assert parsed.attributes["r9"]["exit_code"] == 0


def test_corrupt_chunk_names_the_byte(tmp_path):
    data = bytearray(frame_log([run_record("c1")] + [history(i, loss=float(i), _step=i) for i in range(20)]))
    # the 6th chunk's body
    pos = 7
    for _ in range(5):
        pos += 7 + struct.unpack_from("<H", data, pos + 4)[0]
    data[pos + 9] ^= 0x55
    p = tmp_path / "run-c1.wandb"
    p.write_bytes(bytes(data))
    with pytest.raises(IngestError, match=rf"byte {pos:,}: chunk checksum") as ei:
        wb.read(p)
    assert ei.value.path == str(p)


def test_bad_header_and_garbage_record(tmp_path):
    p = tmp_path / "run-x.wandb"
    p.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    assert not wb.sniff(p)
    with pytest.raises(IngestError, match="byte 0: not a W&B transaction log"):
        wb.read(p)
    p.write_bytes(frame_log([run_record("g"), b"\x12\xff\xff\xff\x0f"]))  # history field, absurd length
    with pytest.raises(IngestError, match="not a valid W&B Record protobuf") as ei:
        wb.read(p)
    assert "byte" in str(ei.value)


def test_sniff(tmp_path):
    p = write_run(tmp_path, "s1", [run_record("s1"), exit_record()])
    assert wb.sniff(p) and wb.sniff(p.parent) and wb.sniff(tmp_path)
    (tmp_path / "plain.csv").write_text("step,loss\n1,2\n")
    assert not wb.sniff(tmp_path / "plain.csv")


# ---------------------------------------------------------------- exports


def test_history_jsonl_export(tmp_path):
    d = tmp_path / "run-20200101_000000-old1" / "files"
    d.mkdir(parents=True)
    lines = [{"_step": i, "_runtime": i, "_timestamp": 1.6e9 + i, "loss": 1 / (i + 1), "eval": {"acc": i / 10}}
             for i in range(10)]
    lines[4]["loss"] = "NaN"
    (d / "wandb-history.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    (d / "wandb-summary.json").write_text(json.dumps({"loss": 0.1, "_wandb": {"runtime": 3}}))
    assert wb.sniff(d / "wandb-history.jsonl") and wb.sniff(tmp_path)
    parsed = wb.read(tmp_path)
    assert parsed.runs == ["old1"]
    pts = points(parsed)
    assert len(pts) == 20 and {m for _, m, _, _ in pts} == {"loss", "eval.acc"}
    assert math.isnan([v for _, m, s, v in pts if m == "loss" and s == 4][0])
    assert parsed.attributes["old1"]["summary"] == {"loss": 0.1}
    (d / "wandb-history.jsonl").write_text(json.dumps(lines[0]) + "\n{\"_step\": 1, \"loss\": \n")
    with pytest.raises(IngestError) as ei:
        wb.read(d / "wandb-history.jsonl")
    assert ei.value.line == 2 and ei.value.path.endswith("wandb-history.jsonl")


def test_history_csv_export(tmp_path):
    p = tmp_path / "export.csv"
    p.write_text("_step,_runtime,loss,acc,name\n0,1.0,2.5,,a\n1,2.0,2.25,0.5,b\n2,3.0,nan,0.75,c\n")
    assert wb.sniff(p)
    parsed = wb.read(p, run="myrun")
    pts = points(parsed)
    assert [(m, s) for _, m, s, _ in pts] == [("loss", 0), ("loss", 1), ("acc", 1), ("loss", 2), ("acc", 2)]
    assert math.isnan(pts[3][3]) and pts[0] == ("myrun", "loss", 0, 2.5)
    p.write_text("_step,loss\n0,2.5\n1,2.4x\n")
    with pytest.raises(IngestError, match=r"column 'loss' holds '2.4x'") as ei:
        wb.read(p)
    assert ei.value.line == 3


def test_panel_csv_export(tmp_path):
    p = tmp_path / "wandb_export.csv"
    p.write_text('"Step","run-a - train/loss","run-a - train/loss__MIN","run-a - train/loss__MAX",'
                 '"run-b - train/loss"\n0,1.5,1.4,1.6,2.5\n10,1.25,1.2,1.3,\n')
    assert wb.sniff(p)
    assert points(wb.read(p)) == [("run-a", "train/loss", 0, 1.5), ("run-b", "train/loss", 0, 2.5),
                                  ("run-a", "train/loss", 10, 1.25)]


# ---------------------------------------------------------------- the real corpus


LION = "lion-imdb-verysimpletransformer/wandb"


def _check_against_reference(path: Path, parsed, step_key="_step"):
    ref = reference_history(path)
    assert parsed.attributes[parsed.runs[0]]["history_rows"] == len(ref)
    expect = []
    for row in ref:
        step = int(float(row.get(step_key, "nan")))
        for k, v in row.items():
            if k.startswith("_") or k == step_key:
                continue
            expect.append((k, step, float(json.loads(v))))
    got = [(m, s, v) for _, m, s, v in points(parsed)]
    assert got == expect
    return got


@pytest.mark.parametrize("folder,run_id,rows,byte,lr", [
    ("run-20230329_045808-2brlp5wd", "2brlp5wd", 3898, 1_310_291, 0.0003),
    ("run-20230329_123313-6a0em794", "6a0em794", 4059, 1_310_685, 3e-05)])
def test_real_truncated_lion_runs(real_dir, folder, run_id, rows, byte, lr):
    path = real_dir / "wandb" / LION / folder / f"run-{run_id}.wandb"
    parsed = wb.read(path)
    assert parsed.runs == [run_id]
    assert parsed.table.num_rows == 3 * rows
    got = _check_against_reference(path, parsed)
    assert {m for m, _, _ in got} == {"lr", "train_loss_local", "grad_norm_square"}
    assert [s for m, s, _ in got if m == "lr"] == list(range(rows))
    assert all(v == lr for m, _, v in got if m == "lr")
    a = parsed.attributes[run_id]
    assert a["complete"] is False and a["truncated"][0]["byte"] == byte
    assert a["truncated"][0]["reason"] == "inside a record"
    (note,) = parsed.events
    assert note.kind == "note" and f"byte {byte:,}" in note.detail and note.step == rows - 1
    # summary written at the end of the run: _step 62509, far past the truncated history
    assert a["summary"]["_step"] == 62509 and a["config"]["optimizer"]["lr"] == lr
    assert a["config"]["dataset"] == "IMDB" and a["run"]["project"] == "Lion and Adam"


def test_real_lion_first_values(real_dir):
    parsed = wb.read(real_dir / "wandb" / LION / "run-20230329_045808-2brlp5wd")
    first = points(parsed)[:3]
    assert first == [("2brlp5wd", "lr", 0, 0.0003), ("2brlp5wd", "train_loss_local", 0, 0.8450157046318054),
                     ("2brlp5wd", "grad_norm_square", 0, 127.37881077080876)]
    loss = np.array([v for _, m, _, v in points(parsed) if m == "train_loss_local"])
    # SOURCES.md: collapses to ~0.69 = ln 2 and stays there
    assert abs(np.median(loss[-1000:]) - math.log(2)) < 0.01


def test_real_alpaca_complete_run(real_dir):
    folder = real_dir / "wandb" / "stanford-alpaca-kaikai" / "wandb" / "run-20231102_033502-v7i3k2p0"
    path = folder / "run-v7i3k2p0.wandb"
    parsed = wb.read(path)
    assert parsed.runs == ["v7i3k2p0"]
    a = parsed.attributes["v7i3k2p0"]
    assert a["complete"] is True and a["exit_code"] == 0 and parsed.events == []
    assert a["step_key"] == "train/global_step" and a["history_rows"] == 1219
    got = _check_against_reference(path, parsed, step_key="train/global_step")
    counts = {}
    for m, _, _ in got:
        counts[m] = counts.get(m, 0) + 1
    assert counts == {"train/loss": 1218, "train/learning_rate": 1218, "train/epoch": 1219,
                      "train/train_runtime": 1, "train/train_samples_per_second": 1,
                      "train/train_steps_per_second": 1, "train/total_flos": 1, "train/train_loss": 1}
    loss = [(s, v) for m, s, v in got if m == "train/loss"]
    assert loss[0] == (1, 1.5994) and loss[-1] == (1218, 0.313)
    # the last history values equal wandb-summary.json (an independent file)
    summary = json.loads((folder / "files" / "wandb-summary.json").read_text())
    assert loss[-1][1] == summary["train/loss"] and a["summary"]["train/train_loss"] == summary["train/train_loss"]
    assert a["config"]["num_hidden_layers"] == 32


def test_real_folder_of_three_runs(real_dir):
    parsed = wb.read(real_dir / "wandb")
    assert parsed.runs == ["2brlp5wd", "6a0em794", "v7i3k2p0"]
    assert parsed.table.num_rows == 3 * 3898 + 3 * 4059 + 1218 * 2 + 1219 + 5
    assert sorted(e.kind for e in parsed.events) == ["note", "note"]
