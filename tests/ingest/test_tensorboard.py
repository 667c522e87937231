"""TensorBoard importer: our numba reader against tensorboard's own EventFileLoader,
on synthetic files written by tensorboard's EventFileWriter and on the real corpus."""

from __future__ import annotations

import json
import math
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from engine.errors import IngestError
from engine.ingest import tensorboard as tb
from engine.ingest._protobuf import masked_crc32c_bytes
from engine.ingest.base import PARSED_SCHEMA, IngestOptions

event_pb2 = pytest.importorskip("tensorboard.compat.proto.event_pb2")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # noqa: E402
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2  # noqa: E402
from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

# ---------------------------------------------------------------- fixture writers


def simple_event(step, tag, value, wall=1.7e9):
    ev = event_pb2.Event(wall_time=wall + step * 0.25, step=step)
    ev.summary.value.add(tag=tag, simple_value=value)
    return ev


def tensor_event(step, tag, value, *, dtype="float", first=True, via="content", plugin="scalars",
                 shape=(), wall=1.7e9):
    """A TF2-style scalar tensor. ``first``: carry the plugin metadata (writers put it on
    a tag's first event only)."""
    ev = event_pb2.Event(wall_time=wall + step * 0.25, step=step)
    v = ev.summary.value.add(tag=tag)
    if first and plugin:
        v.metadata.plugin_data.plugin_name = plugin
    t = v.tensor
    np_dtype, tf_dtype = {"float": (np.float32, 1), "double": (np.float64, 2), "half": (np.float16, 19),
                          "int32": (np.int32, 3), "int64": (np.int64, 9)}[dtype]
    t.dtype = tf_dtype
    for d in shape:
        t.tensor_shape.dim.add(size=d)
    arr = np.full(shape, value, dtype=np_dtype)
    if via == "content":
        t.tensor_content = arr.tobytes()
    elif dtype == "float":
        t.float_val.extend(arr.ravel().tolist())
    elif dtype == "double":
        t.double_val.extend(arr.ravel().tolist())
    elif dtype == "half":
        t.half_val.extend(arr.ravel().view(np.uint16).tolist())
    elif dtype == "int32":
        t.int_val.extend(arr.ravel().tolist())
    else:
        t.int64_val.extend(arr.ravel().tolist())
    return ev


def write_events(folder: Path, events, suffix="") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.iterdir())
    w = EventFileWriter(str(folder), filename_suffix=suffix)
    for ev in events:
        w.add_event(ev)
    w.close()
    (path,) = set(folder.iterdir()) - before
    return path


def frame(data: bytes) -> bytes:
    """One TFRecord around ``data`` (for hand-made corrupt files)."""
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", masked_crc32c_bytes(head)) + data + struct.pack("<I", masked_crc32c_bytes(data))


# ---------------------------------------------------------------- reference reader


def reference_points(path: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in record order, by tensorboard's EventFileLoader
    (which migrates simple_value to tensors) and its tensor_util; a tag is a scalar when
    its first metadata names the "scalars" plugin."""
    plugin: dict[str, str] = {}
    out = []
    for ev in EventFileLoader(str(path)).Load():
        for v in ev.summary.value:
            if v.HasField("metadata") and v.tag not in plugin:
                plugin[v.tag] = v.metadata.plugin_data.plugin_name
            if plugin.get(v.tag) == "scalars" and v.HasField("tensor"):
                arr = tensor_util.make_ndarray(v.tensor)
                if arr.size == 1:
                    out.append((v.tag, ev.step, float(arr.reshape(()).item())))
    return out


def ours_points(parsed, run=None, strip_prefix="") -> list[tuple[str, int, float]]:
    t = parsed.table
    runs = t.column("run").to_pylist()
    rows = zip(runs, t.column("metric").to_pylist(), t.column("step").to_pylist(), t.column("value").to_pylist())
    return [(m[len(strip_prefix):], s, v) for r, m, s, v in rows if run is None or r == run]


def same_points(a, b) -> bool:
    if len(a) != len(b):
        return False
    for (ta, sa, va), (tb_, sb, vb) in zip(a, b):
        if ta != tb_ or sa != sb:
            return False
        if not (va == vb or (math.isnan(va) and math.isnan(vb))):
            return False
    return True


# ---------------------------------------------------------------- synthetic files


def test_synthetic_simple_and_tensor_scalars_match_event_file_loader(tmp_path):
    rng = np.random.default_rng(7)
    events = []
    for step in range(300):
        events.append(simple_event(step, "train/loss", float(rng.normal(2.0, 0.5))))
        if step % 10 == 0:
            events.append(tensor_event(step, "val/loss", float(rng.normal(1.0, 0.1)), first=step == 0))
            events.append(tensor_event(step, "val/acc", float(rng.uniform()), dtype="double",
                                       via="list", first=step == 0))
    # non-finite values are data
    events.append(simple_event(300, "train/loss", float("nan")))
    events.append(simple_event(301, "train/loss", float("inf")))
    events.append(tensor_event(302, "val/loss", float("-inf"), first=False))
    # things that are not scalars: a histogram tensor, a text summary, a graph_def
    h = tensor_event(5, "weights/hist", 0.5, dtype="double", shape=(30, 3), plugin="histograms")
    events.append(h)
    txt = event_pb2.Event(step=0, wall_time=1.7e9)
    tv = txt.summary.value.add(tag="args/text_summary")
    tv.metadata.plugin_data.plugin_name = "text"
    tv.tensor.dtype = 7
    tv.tensor.string_val.append(b"hello")
    events.append(txt)
    events.append(event_pb2.Event(step=0, wall_time=1.7e9, graph_def=b"\x0a\x03abc"))
    path = write_events(tmp_path / "run", events)

    parsed = tb.read(tmp_path / "run")
    assert parsed.table.schema == PARSED_SCHEMA
    assert parsed.runs == ["run"]
    ref = reference_points(path)
    ours = ours_points(parsed)
    assert len(ref) == 300 + 30 + 30 + 3
    assert same_points(ours, ref), (ours[:5], ref[:5])
    assert {m for m, _, _ in ours} == {"train/loss", "val/loss", "val/acc"}
    # wall times: exactly the Event's double
    walls = parsed.table.column("wall_time").to_numpy(zero_copy_only=False)
    assert walls[0] == 1.7e9 + 0 * 0.25 and walls[1] == 1.7e9 + 0.0
    assert parsed.events == []


@pytest.mark.parametrize("dtype,via", [("float", "content"), ("float", "list"), ("double", "content"),
                                       ("double", "list"), ("half", "content"), ("half", "list"),
                                       ("int32", "list"), ("int64", "content")])
def test_tensor_dtypes(tmp_path, dtype, via):
    vals = [0.5, -3.25, 1024.0, 0.0, 7.0] if not dtype.startswith("int") else [1.0, -3.0, 1024.0, 0.0, 7.0]
    events = [tensor_event(i, "m", v, dtype=dtype, via=via, first=i == 0) for i, v in enumerate(vals)]
    path = write_events(tmp_path / "r", events)
    ours = ours_points(tb.read(path))
    ref = reference_points(path)
    assert same_points(ours, ref), (dtype, via, ours, ref)
    assert [v for _, _, v in ours] == vals  # all exactly representable in every dtype used


def test_shape_one_tensor_and_plugin_free_tensor(tmp_path):
    events = [tensor_event(0, "a", 1.5, shape=(1,)), tensor_event(1, "a", 2.5, shape=(1,), first=False),
              tensor_event(0, "b", 3.5, plugin=""), tensor_event(0, "c", 9.0, dtype="int32", plugin="")]
    parsed = tb.read(write_events(tmp_path / "r", events))
    # shape [1] with the scalars plugin counts; a float tensor with no plugin counts;
    # an int tensor with no plugin does not (it could be anything)
    assert ours_points(parsed) == [("a", 0, 1.5), ("a", 1, 2.5), ("b", 0, 3.5)]


def test_many_values_grow_outputs_and_many_tags_grow_table(tmp_path):
    # 3 values per event and short records: more values than the first allocation guess
    events = []
    for step in range(4000):
        ev = event_pb2.Event(wall_time=1.0, step=step)
        for tag in ("a", "b", "c"):
            ev.summary.value.add(tag=tag, simple_value=step * 0.5)
        events.append(ev)
    # 1,500 distinct tags: more than the first tag-table capacity (1,024)
    events += [simple_event(1, f"tag_{i:04d}", float(i)) for i in range(1500)]
    path = write_events(tmp_path / "r", events)
    parsed = tb.read(path)
    assert parsed.table.num_rows == 12000 + 1500
    assert same_points(ours_points(parsed), reference_points(path))


def test_event_accumulator_agrees_on_simple_values(tmp_path):
    events = [simple_event(s, "loss", 1.0 / (s + 1)) for s in range(500)]
    write_events(tmp_path / "r", events)
    acc = EventAccumulator(str(tmp_path / "r"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    ref = [(s.step, s.value) for s in acc.Scalars("loss")] if "loss" in acc.Tags()["scalars"] else [
        (t.step, float(tensor_util.make_ndarray(t.tensor_proto))) for t in acc.Tensors("loss")]
    ours = [(s, v) for _, s, v in ours_points(tb.read(tmp_path / "r"))]
    assert ours == ref and len(ours) == 500


# ---------------------------------------------------------------- runs, splits, resumes


def test_split_folders_become_metric_prefixes(tmp_path):
    run = tmp_path / "mymodel"
    write_events(run / "train", [tensor_event(e, "epoch_loss", 1.0 - e / 10, first=e == 0) for e in range(5)])
    write_events(run / "validation", [tensor_event(e, "epoch_loss", 2.0 - e / 10, first=e == 0) for e in range(5)])
    parsed = tb.read(run)
    assert parsed.runs == ["mymodel"]
    metrics = parsed.table.column("metric").to_pylist()
    assert metrics.count("train/epoch_loss") == 5 and metrics.count("validation/epoch_loss") == 5
    # a parent folder of two runs gives two runs
    write_events(tmp_path / "other" / "train", [simple_event(0, "epoch_loss", 1.0)])
    both = tb.read(tmp_path)
    assert both.runs == ["mymodel", "other"]
    assert tb.read(run, run="named").runs == ["named"]


def test_restart_in_second_file_is_a_resume_event(tmp_path):
    run = tmp_path / "job"
    write_events(run, [simple_event(s, "loss", float(s)) for s in range(0, 100, 10)], suffix=".a")
    import time
    time.sleep(1.1)  # the file name carries the second the writer started
    write_events(run, [simple_event(s, "loss", float(-s)) for s in range(50, 150, 10)], suffix=".b")
    parsed = tb.read(run)
    steps = parsed.table.column("step").to_pylist()
    assert steps == list(range(0, 100, 10)) + list(range(50, 150, 10))  # source order, not deduplicated
    resumes = [e for e in parsed.events if e.kind == "resume"]
    assert len(resumes) == 1 and resumes[0].step == 50 and "90" in resumes[0].detail, parsed.events


def test_generic_folder_names_take_the_parent(tmp_path):
    path = write_events(tmp_path / "run_42" / "tb", [simple_event(1, "x", 1.0)])
    assert tb.read(path).runs == ["run_42"]
    assert tb.read(tmp_path / "run_42").runs == ["run_42"]


# ---------------------------------------------------------------- bad input


def _good_file(tmp_path) -> Path:
    return write_events(tmp_path / "g", [simple_event(s, "loss", float(s)) for s in range(20)])


def test_torn_tail_is_read_and_reported(tmp_path):
    path = _good_file(tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "t" / path.name
    cut.parent.mkdir()
    cut.write_bytes(data[:-7])
    parsed = tb.read(cut)
    assert parsed.table.num_rows == 19  # the 20th event's record is torn
    notes = [e for e in parsed.events if e.kind == "note"]
    assert len(notes) == 1 and "byte" in notes[0].detail
    info = parsed.attributes[parsed.runs[0]]["truncated_files"][0]
    # torn record starts where the last complete one ended
    assert info["byte"] == len(data) - len(frame(simple_event(19, "loss", 19.0).SerializeToString()))
    assert info["records_read"] == 20  # file_version + 19 events
    opts = IngestOptions()
    opts.strict_tail = True
    with pytest.raises(IngestError, match=rf"byte {info['byte']:,}.*strict_tail"):
        tb.read(cut, options=opts)


@pytest.mark.parametrize("cut_to", [5, 11, 30])
def test_file_without_a_complete_record_is_an_error(tmp_path, cut_to):
    data = _good_file(tmp_path).read_bytes()
    p = tmp_path / f"events.out.tfevents.1.cut{cut_to}"
    p.write_bytes(data[:cut_to])
    with pytest.raises(IngestError, match="no complete TFRecord") as ei:
        tb.read(p)
    assert ei.value.path == str(p)


def test_empty_file_alone_is_an_error_beside_others_a_note(tmp_path):
    good = _good_file(tmp_path)
    empty = good.parent / "events.out.tfevents.9999999999.host.1.0"
    empty.write_bytes(b"")
    with pytest.raises(IngestError, match="empty"):
        tb.read(empty)
    parsed = tb.read(good.parent)
    assert parsed.table.num_rows == 20
    assert any(e.kind == "note" and "empty" in e.detail for e in parsed.events)


def test_corrupt_data_byte_names_the_record(tmp_path):
    path = _good_file(tmp_path)
    data = bytearray(path.read_bytes())
    # find the start of the 4th record by walking the framing
    pos = 0
    for _ in range(3):
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 16 + n
    data[pos + 14] ^= 0xFF
    bad = tmp_path / "events.out.tfevents.2.bad"
    bad.write_bytes(bytes(data))
    with pytest.raises(IngestError, match=rf"byte {pos:,} \(record 4\).*data checksum") as ei:
        tb.read(bad)
    assert ei.value.path == str(bad)
    # without CRC checks the flipped byte lands in a value or a tag and is read as such
    opts = IngestOptions()
    opts.verify_crc = False
    tb.read(bad, options=opts)


def test_corrupt_length_is_caught_by_its_checksum(tmp_path):
    data = bytearray(_good_file(tmp_path).read_bytes())
    (n,) = struct.unpack_from("<Q", data, 0)
    struct.pack_into("<Q", data, 16 + n, 10**12)  # second record's length
    bad = tmp_path / "events.out.tfevents.3.len"
    bad.write_bytes(bytes(data))
    with pytest.raises(IngestError, match=rf"byte {16 + n:,} \(record 2\).*length"):
        tb.read(bad)


def test_garbage_protobuf_with_valid_framing(tmp_path):
    good = event_pb2.Event(wall_time=1.0, step=1)
    good.summary.value.add(tag="x", simple_value=1.0)
    garbage = b"\x2a\xff\xff\xff\xff\x0f"  # field 5 (summary), length 2^32-1: runs past the record
    data = frame(good.SerializeToString()) + frame(garbage)
    p = tmp_path / "events.out.tfevents.4.garbage"
    p.write_bytes(data)
    with pytest.raises(IngestError, match=rf"byte {len(frame(good.SerializeToString())):,} \(record 2\).*not a valid Event"):
        tb.read(p)


def test_non_event_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("step,loss\n1,2.0\n3,4.0\n" * 10)
    assert not tb.sniff(p)
    with pytest.raises(IngestError, match="byte 0 \\(record 1\\).*checksum of the record length") as ei:
        tb.read(p)
    assert pickle.loads(pickle.dumps(ei.value)).path == str(p)
    with pytest.raises(IngestError, match="no TensorBoard event file"):
        tb.read(tmp_path)


def test_sniff(tmp_path):
    path = _good_file(tmp_path)
    assert tb.sniff(path) and tb.sniff(path.parent) and tb.sniff(tmp_path)
    renamed = tmp_path / "no_name_hint.bin"
    renamed.write_bytes(path.read_bytes())
    assert tb.sniff(renamed)  # recognised by the CRC of the first record's length
    (tmp_path / "empty").mkdir()
    assert not tb.sniff(tmp_path / "empty")


# ---------------------------------------------------------------- the real corpus


def _assert_matches_loader(parsed, files_and_prefix, run):
    ours = ours_points(parsed, run=run)
    ref = []
    for f, prefix in files_and_prefix:
        ref += [(prefix + t, s, v) for t, s, v in reference_points(f)]
    assert sorted(ours, key=repr) == sorted(ref, key=repr)
    return ours


def test_real_keras_train_validation_splits(real_dir):
    root = real_dir / "tensorboard" / "keras-tensorboard-tutorial"
    parsed = tb.read(root)
    assert parsed.runs == ["imdb-model-1690485351", "mod1-reuters-1690485395"]
    assert parsed.table.num_rows == 240
    imdb = root / "imdb-model-1690485351"
    files = [(next((imdb / "train").glob("events*")), "train/"),
             (next((imdb / "validation").glob("events*")), "validation/")]
    ours = _assert_matches_loader(parsed, files, "imdb-model-1690485351")
    by_metric = {}
    for m, s, v in ours:
        by_metric.setdefault(m, []).append((s, v))
    assert sorted(by_metric) == ["train/epoch_accuracy", "train/epoch_loss", "validation/epoch_accuracy",
                                 "validation/epoch_loss", "validation/evaluation_accuracy_vs_iterations",
                                 "validation/evaluation_loss_vs_iterations"]
    assert all(len(v) == 20 for v in by_metric.values())
    # SOURCES.md: train loss 0.547 -> 0.020; val loss bottoms at 0.275 at epoch 4, ends 0.518
    tl = by_metric["train/epoch_loss"]
    assert round(tl[0][1], 3) == 0.547 and round(tl[-1][1], 3) == 0.020
    vl = dict(by_metric["validation/epoch_loss"])
    assert min(vl, key=vl.get) == 4 and round(vl[4], 3) == 0.275 and round(vl[19], 3) == 0.518
    steps = [s for s, _ in by_metric["validation/evaluation_loss_vs_iterations"]]
    assert steps[0] == 30 and steps[-1] == 600
    assert parsed.events == []


def test_real_hf_trainer_three_files_one_run(real_dir):
    root = real_dir / "tensorboard" / "hf-trainer-serial-lain-ai"
    parsed = tb.read(root)
    assert parsed.runs == ["Jun29_06-31-19_6a29ce405cda"]
    assert len(parsed.attributes["Jun29_06-31-19_6a29ce405cda"]["event_files"]) == 3
    assert parsed.table.num_rows == 30
    files = [(f, "") for f in sorted(root.rglob("events.out.tfevents*"))]
    ours = _assert_matches_loader(parsed, files, None)
    loss = [(s, v) for m, s, v in ours if m == "train/loss"]
    # values equal trainer_state.json's, seen through float32
    state = json.loads((real_dir / "hf_trainer_state" / "serial-lain-ai-100epochs" / "trainer_state.json").read_text())
    expect = [(e["step"], float(np.float32(e["loss"]))) for e in state["log_history"] if "loss" in e]
    assert loss == expect and len(loss) == 6
    ev = {m: v for m, s, v in ours if m.startswith("eval/")}
    assert sorted(ev) == ["eval/accuracy", "eval/loss", "eval/runtime", "eval/samples_per_second",
                          "eval/steps_per_second"]
    assert ev["eval/loss"] == float(np.float32(ev["eval/loss"])) and round(ev["eval/loss"], 4) == 0.0062
    assert not any("text_summary" in m or "hparams" in m for m, _, _ in ours)


def test_real_lightning(real_dir):
    root = real_dir / "tensorboard" / "lightning-lstm-textgen" / "lightning_logs" / "version_0"
    parsed = tb.read(root)
    assert parsed.runs == ["version_0"]
    (f,) = root.glob("events*")
    ours = _assert_matches_loader(parsed, [(f, "")], None)
    counts = {}
    for m, _, _ in ours:
        counts[m] = counts.get(m, 0) + 1
    assert counts == {"train_loss": 7691, "epoch": 7720, "val_loss": 29, "hp_metric": 1}
    val = [(s, v) for m, s, v in ours if m == "val_loss"]
    best = min(val, key=lambda sv: sv[1])
    assert best[0] == 251977 and round(best[1], 3) == 0.253 and round(val[0][1], 3) == 0.361


def test_real_toy_ppo_matches_its_jsonl(real_dir):
    root = real_dir / "rlhf" / "toy-ppo-rlhf-systems-kit" / "runs" / "run_20250828_211717"
    parsed = tb.read(root / "tb")
    assert parsed.runs == ["run_20250828_211717"]
    (f,) = (root / "tb").glob("events*")
    ours = _assert_matches_loader(parsed, [(f, "")], None)
    assert len(ours) == 700
    got = {(m, s): v for m, s, v in ours}
    rows = [json.loads(line) for line in (root / "logs" / "train.jsonl").read_text().splitlines()]
    keys = [k for k in rows[0] if k not in ("timestamp", "step")]
    assert len(keys) == 13 and len({m for m, _ in got}) == 14  # the event file also logs `step`
    for row in rows:
        for k in keys:
            assert got[(k, row["step"])] == float(np.float32(row[k])), (k, row["step"])
        assert got[("step", row["step"])] == row["step"]
