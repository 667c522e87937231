"""Ingest speed: our TensorBoard reader vs tensorboard's EventAccumulator; our .wandb reader.

    .venv/bin/python benchmarks/bench_ingest_tensorboard.py            # 4M events (about 1 minute)
    .venv/bin/python benchmarks/bench_ingest_tensorboard.py --sizes 200000  # quicker

The event file is written by a numba writer in this script (tensorboard's Python writer
computes CRC-32C byte by byte in Python and would need hours for 4M events); the writer
is first cross-checked against tensorboard's EventFileLoader on a 2,000-event file.
Events: one simple_value each, 4 tags in turn, step = i // 4, wall time 1.7e9 + i/1000,
values from benchmarks._common.loss_curve (with a NaN and an Inf).

Anchor: EventAccumulator(size_guidance={"scalars": 0}) (keeps every point) on a
100,000-event file, run once (it takes seconds), and extrapolated linearly to the big
size; the ratio uses that extrapolation. Ours: median of 5 runs of
``engine.ingest.tensorboard.read`` (framing, CRC-32C check, protobuf scan, Arrow table),
and of the same with ``verify_crc=False`` to show what the checksum costs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import compile_time, loss_curve, save, sizes_from_argv, timeit  # noqa: E402

from engine.ingest import tensorboard as tb  # noqa: E402
from engine.ingest import wandb as wb  # noqa: E402
from engine.ingest._protobuf import CRC32C_TABLES, masked_crc32c  # noqa: E402
from engine.ingest.base import IngestOptions  # noqa: E402

TAGS = [b"train/loss", b"train/lr", b"grad_norm", b"val/loss"]


@njit(cache=True)
def _varint_len(v):
    n = 1
    while v >= 128:
        v >>= 7
        n += 1
    return n


@njit(cache=True)
def _put_varint(out, p, v):
    while v >= 128:
        out[p] = (v & 127) | 128
        v >>= 7
        p += 1
    out[p] = v
    return p + 1


@njit(cache=True)
def _put_u32(out, p, v):
    for k in range(4):
        out[p + k] = (v >> (8 * k)) & 255
    return p + 4


@njit(cache=True)
def _write_core(steps, walls, values, tag_idx, tag_bytes, tag_lens, tables):
    n = steps.shape[0]
    # sizes first
    total = 0
    for i in range(n):
        tl = tag_lens[tag_idx[i]]
        value_len = 1 + _varint_len(tl) + tl + 5
        summ_len = 1 + _varint_len(value_len) + value_len
        ev_len = 9 + 1 + _varint_len(steps[i]) + 1 + _varint_len(summ_len) + summ_len
        total += 16 + ev_len
    out = np.empty(total, np.uint8)
    wall_bits = walls.view(np.uint64)
    val_bits = values.view(np.uint32)
    p = 0
    for i in range(n):
        t = tag_idx[i]
        tl = tag_lens[t]
        value_len = 1 + _varint_len(tl) + tl + 5
        summ_len = 1 + _varint_len(value_len) + value_len
        ev_len = 9 + 1 + _varint_len(steps[i]) + 1 + _varint_len(summ_len) + summ_len
        start = p
        u = np.uint64(ev_len)
        for k in range(8):
            out[p + k] = (u >> np.uint64(8 * k)) & np.uint64(255)
        p += 8
        p = _put_u32(out, p, np.int64(masked_crc32c(out, start, start + 8, tables)))
        ds = p
        out[p] = 0x09  # field 1, fixed64
        w = wall_bits[i]
        for k in range(8):
            out[p + 1 + k] = (w >> np.uint64(8 * k)) & np.uint64(255)
        p += 9
        out[p] = 0x10  # field 2, varint
        p = _put_varint(out, p + 1, steps[i])
        out[p] = 0x2A  # field 5, length-delimited
        p = _put_varint(out, p + 1, summ_len)
        out[p] = 0x0A  # Summary.value
        p = _put_varint(out, p + 1, value_len)
        out[p] = 0x0A  # Value.tag
        p = _put_varint(out, p + 1, tl)
        for k in range(tl):
            out[p + k] = tag_bytes[t, k]
        p += tl
        out[p] = 0x15  # Value.simple_value, fixed32
        p = _put_u32(out, p + 1, np.int64(val_bits[i]))
        p = _put_u32(out, p, np.int64(masked_crc32c(out, ds, p, tables)))
    return out


def write_event_file(path: Path, n: int, seed: int = 0) -> None:
    _, curve = loss_curve(n, seed)
    values = curve.astype(np.float32)
    values[n // 2] = np.nan
    values[n // 3] = np.inf
    steps = (np.arange(n, dtype=np.int64) // len(TAGS))
    walls = 1.7e9 + np.arange(n, dtype=np.float64) / 1000.0
    tag_idx = (np.arange(n) % len(TAGS)).astype(np.int64)
    width = max(len(t) for t in TAGS)
    tag_bytes = np.zeros((len(TAGS), width), np.uint8)
    for i, t in enumerate(TAGS):
        tag_bytes[i, :len(t)] = np.frombuffer(t, np.uint8)
    tag_lens = np.array([len(t) for t in TAGS], np.int64)
    out = _write_core(steps, walls, values, tag_idx, tag_bytes, tag_lens, CRC32C_TABLES)
    path.write_bytes(out.tobytes())


def check_writer(folder: Path) -> None:
    """Our writer's file, read by tensorboard's EventFileLoader, holds what we wrote."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util
    p = folder / "events.out.tfevents.1.check"
    write_event_file(p, 2000, seed=1)
    got = []
    for ev in EventFileLoader(str(p)).Load():
        for v in ev.summary.value:
            got.append((v.tag, ev.step, float(tensor_util.make_ndarray(v.tensor).item()), ev.wall_time))
    ours = tb.read(p).table
    mine = list(zip(ours.column("metric").to_pylist(), ours.column("step").to_pylist(),
                    ours.column("value").to_pylist(), ours.column("wall_time").to_pylist()))
    assert len(got) == 2000 and len(mine) == 2000
    for a, b in zip(got, mine):
        assert a[:2] == b[:2] and a[3] == b[3] and (a[2] == b[2] or (np.isnan(a[2]) and np.isnan(b[2]))), (a, b)


def accumulator_seconds(folder: Path) -> tuple[float, int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    t0 = time.perf_counter()
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    n = sum(len(acc.Scalars(t)) for t in acc.Tags()["scalars"])
    if n == 0:  # tensorboard surfaces migrated simple values as tensors in some versions
        n = sum(len(acc.Tensors(t)) for t in acc.Tags()["tensors"])
    return time.perf_counter() - t0, n


def main() -> None:
    sizes = sizes_from_argv((4_000_000,))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        check_writer(tmp)
        # anchor on 100k events, once
        anchor_dir = tmp / "anchor"
        anchor_dir.mkdir()
        write_event_file(anchor_dir / "events.out.tfevents.2.anchor", 100_000)
        acc_s, acc_n = accumulator_seconds(anchor_dir)
        ours_small = timeit(tb.read, anchor_dir / "events.out.tfevents.2.anchor", repeat=5)
        print(f"EventAccumulator, 100,000 events: {acc_s:.2f} s ({acc_n:,} points kept); "
              f"ours {ours_small:.4f} s; ratio {acc_s / ours_small:.0f}x")
        rows.append({"kernel": "tensorboard.read", "anchor": "EventAccumulator(size_guidance scalars=0)",
                     "n": 100_000, "ours_s": ours_small, "anchor_s": acc_s, "ratio": acc_s / ours_small,
                     "points_per_s": 100_000 / ours_small, "notes": "anchor measured once"})
        for n in sizes:
            big = tmp / f"events.out.tfevents.3.n{n}"
            t0 = time.perf_counter()
            write_event_file(big, n)
            print(f"wrote {n:,} events ({big.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
            print(f"first read (includes any compile): {compile_time(tb.read, big):.2f} s")
            no_crc = IngestOptions()
            no_crc.verify_crc = False
            ours = timeit(tb.read, big, repeat=5)
            ours_nocrc = timeit(tb.read, big, repeat=5, options=no_crc)
            t = tb.read(big).table
            assert t.num_rows == n, t.num_rows
            anchor = acc_s * n / 100_000
            print(f"ours, {n:,} events: {ours:.3f} s median of 5 ({n / ours / 1e6:.2f} M points/s); "
                  f"without CRC check {ours_nocrc:.3f} s; EventAccumulator extrapolated {anchor:.0f} s; "
                  f"ratio {anchor / ours:.0f}x")
            rows.append({"kernel": "tensorboard.read", "anchor": "EventAccumulator(size_guidance scalars=0)",
                         "n": n, "ours_s": ours, "anchor_s": anchor, "ratio": anchor / ours,
                         "points_per_s": n / ours, "ours_no_crc_s": ours_nocrc, "bytes": big.stat().st_size,
                         "notes": "anchor extrapolated linearly from 100,000 events"})
            big.unlink()
    real = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real" / "wandb"
    for p in sorted(real.rglob("*.wandb")):
        wb.read(p)
        s = timeit(wb.read, p, repeat=5)
        n = wb.read(p).table.num_rows
        print(f"wandb.read {p.name}: {n:,} points in {s:.3f} s ({n / s:,.0f} points/s)")
        rows.append({"kernel": "wandb.read", "anchor": None, "n": n, "ours_s": s, "anchor_s": None,
                     "ratio": None, "points_per_s": n / s, "notes": p.name})
    import tensorboard
    print(save("ingest_tensorboard", rows, versions={"tensorboard": tensorboard.__version__}))


if __name__ == "__main__":
    main()
