"""TensorBoard event files (``events.out.tfevents.*``), read without ``tensorboard``.

Layout (shared/research/ecosystem.md 1.1): a TFRecord stream of ``Event`` protobufs,
each record ``uint64 length | uint32 masked crc32c(length) | data | uint32 masked
crc32c(data)``. From each Event we read ``wall_time`` (field 1, double), ``step``
(field 2, int64) and ``summary`` (field 5) -> ``value`` (field 1) -> ``tag`` (1),
``simple_value`` (2, float32: PyTorch/HF/Lightning writers), ``tensor`` (8: TF2/Keras
scalars, rank-0 float/double/half/bfloat16/int tensors, from ``tensor_content`` or
``float_val``/``double_val``/``half_val``/``int_val``/``int64_val``) and ``metadata`` (9)
-> ``plugin_data`` (1) -> ``plugin_name`` (1). Everything else (file_version, graph_def,
session logs, histograms, images, text, hparams) is skipped.

Which values become curve points:
- every ``simple_value``;
- a tensor holding exactly one element, when its tag's plugin is ``scalars`` (the
  plugin is named in the first event of a tag only, as writers strip it afterwards, so
  it is remembered per tag and file), or when the tag never names a plugin and the
  tensor is float/double. Tensors of other plugins (histograms, text, hparams) are not.

The framing and field scan run in one numba loop over ``np.fromfile(path, uint8)``;
tags are interned in the loop (open addressing on FNV-1a hashes, compared byte for
byte), so Python decodes each distinct tag once.

Runs and metric names. ``read(folder)`` finds every event file under it. Files in a
directory whose name is a split (``train``, ``validation``, ``val``, ``eval``, ``test``,
...) belong to the parent directory's run and their tags get the directory name as a
prefix: ``train/epoch_loss``, ``validation/epoch_loss`` (the role inference reads the
prefix as the split). Files in an all-digit directory (HF's hparams side folder
``1719642696.8209522/``) belong to the parent run, without a prefix. Any other
directory holding event files is its own run. The run name is the run directory's
name, except that generic names (``tb``, ``logs``, ``tensorboard``, ``runs``...) are
replaced by their parent's name; ``run=`` overrides it (several runs under one folder
then become ``<run>.<name>``). Given a single file, its directory is the run.

Order and resumes. Files of a run are read in the order of the timestamp in their name
(then their first wall time, then path); ``Parsed.table`` is in that source order. When
a tag's step goes backwards (a restarted writer, a ``purge_step`` resume), an
``Event(kind="resume")`` is emitted at the new step, one per (file, step).

Bad input. Corrupt records raise ``IngestError`` naming the file, the byte offset and
the record number: a length or data checksum that does not match (checked by default;
``verify_crc=False`` skips it, which saves about 0.1 s per 100 MB), a protobuf that
cannot be parsed, a file with no complete record. A **torn last record** (the file ends
inside a record: a writer still running or killed between flushes; TensorBoard itself
reads such files) is *not* an error by default: every complete record before it is
read and the tear is reported as an ``Event(kind="note")`` and in the run's attributes
(``truncated_files``). Set ``strict_tail=True`` on the options to refuse such files.
A value under the ``scalars`` plugin whose tensor is not one number (a string, several
elements) is an error naming the record, tag and step. An Event's step is a signed
int64: a writer that stored an unsigned step of 2**63 or more leaves a large negative
number, so steps below -2**62 are refused as steps past int64; other negative steps
are kept, as TensorBoard shows them (some code logs a step -1 before training).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from numba import njit

from engine.errors import IngestError
from engine.ingest._protobuf import (
    CRC32C_TABLES,
    f32_from_bits,
    f64_from_bits,
    i32_from_bits,
    i64_from_bits,
    masked_crc32c,
    read_u32le,
    read_u64le,
    read_varint,
    skip_field,
)
from engine.ingest.base import PARSED_SCHEMA, Event, IngestOptions, Parsed, hash_files

FORMAT = "tensorboard"

SPLIT_DIRS = frozenset({"train", "training", "validation", "valid", "val", "eval", "evaluation", "test",
                        "dev"})
GENERIC_DIRS = frozenset({"tb", "tensorboard", "tb_logs", "tblogs", "logs", "log", "runs", "events",
                          "summaries", "summary", "lightning_logs"})
_DIGITS_DIR = re.compile(r"^[0-9][0-9._]*$")

# scanner status codes
_OK, _FULL, _TORN, _BAD_LEN_CRC, _BAD_DATA_CRC, _BAD_PROTO, _TAGS_FULL = 0, 1, 2, 3, 4, 5, 6
# value kinds
_K_SIMPLE, _K_FLOAT_TENSOR, _K_INT_TENSOR = 1, 2, 3
_K_OTHER_TENSOR = 4  # a tensor that is not one number (strings, images, shapes > 1): an error under "scalars"
# TensorFlow dtypes
_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_INT64, _DT_BFLOAT16, _DT_HALF = 1, 2, 3, 9, 14, 19
_ITEMSIZE = {1: 4, 2: 8, 3: 4, 9: 8, 14: 2, 19: 2}

# state vector slots shared by the scanner and its Python driver
_S_POS, _S_NOUT, _S_NREC, _S_NTAGS, _S_STATUS, _S_ERRPOS, _S_RECPOS = range(7)


# ---------------------------------------------------------------- compiled scanner

@njit(cache=True, nogil=True)
def _half_to_float(h):
    s = (h >> 15) & 1
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:
        v = m * 2.0 ** -24
    elif e == 31:
        v = np.inf if m == 0 else np.nan
    else:
        v = (1.0 + m / 1024.0) * 2.0 ** (e - 15)
    return -v if s else v


@njit(cache=True, nogil=True)
def _element_from_content(buf, p, dtype):
    if dtype == 1:
        return np.float64(f32_from_bits(read_u32le(buf, p)))
    if dtype == 2:
        return f64_from_bits(read_u64le(buf, p))
    if dtype == 3:
        return np.float64(i32_from_bits(read_u32le(buf, p)))
    if dtype == 9:
        return np.float64(i64_from_bits(read_u64le(buf, p)))
    if dtype == 19:
        return _half_to_float(np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8))
    # bfloat16: the high half of a float32
    return np.float64(f32_from_bits((np.uint32(buf[p]) << np.uint32(16)) | (np.uint32(buf[p + 1]) << np.uint32(24))))


@njit(cache=True, nogil=True)
def _itemsize(dtype):
    if dtype == 1 or dtype == 3:
        return 4
    if dtype == 2 or dtype == 9:
        return 8
    if dtype == 14 or dtype == 19:
        return 2
    return 0


@njit(cache=True, nogil=True)
def _tensor_scalar(buf, s, e):
    """Decode a TensorProto in buf[s:e]. Returns (ok, kind, value, malformed):
    ok when it holds exactly one numeric element."""
    dtype = 0
    n_elem = 1
    content_s = -1
    content_n = 0
    first = np.nan
    n_listed = 0
    p = s
    while p < e:
        key, p = read_varint(buf, p, e)
        if p < 0:
            return False, 0, np.nan, True
        field = np.int64(key >> np.uint64(3))
        wire = np.int64(key & np.uint64(7))
        if field == 1 and wire == 0:
            v, p = read_varint(buf, p, e)
            if p < 0:
                return False, 0, np.nan, True
            dtype = np.int64(v)
        elif field == 2 and wire == 2:  # TensorShapeProto
            n, p = read_varint(buf, p, e)
            if p < 0 or n > np.uint64(e - p):
                return False, 0, np.nan, True
            se = p + np.int64(n)
            q = p
            while q < se:
                k2, q = read_varint(buf, q, se)
                if q < 0:
                    return False, 0, np.nan, True
                f2 = np.int64(k2 >> np.uint64(3))
                w2 = np.int64(k2 & np.uint64(7))
                if f2 == 2 and w2 == 2:  # Dim
                    dn, q = read_varint(buf, q, se)
                    if q < 0 or dn > np.uint64(se - q):
                        return False, 0, np.nan, True
                    de = q + np.int64(dn)
                    size = np.int64(0)
                    r = q
                    while r < de:
                        k3, r = read_varint(buf, r, de)
                        if r < 0:
                            return False, 0, np.nan, True
                        if (k3 >> np.uint64(3)) == 1 and (k3 & np.uint64(7)) == 0:
                            sv, r = read_varint(buf, r, de)
                            if r < 0:
                                return False, 0, np.nan, True
                            size = np.int64(sv)
                        else:
                            r = skip_field(buf, r, de, np.int64(k3 & np.uint64(7)))
                            if r < 0:
                                return False, 0, np.nan, True
                    n_elem *= size
                    q = de
                else:
                    q = skip_field(buf, q, se, w2)
                    if q < 0:
                        return False, 0, np.nan, True
            p = se
        elif field == 4 and wire == 2:
            n, p = read_varint(buf, p, e)
            if p < 0 or n > np.uint64(e - p):
                return False, 0, np.nan, True
            content_s = p
            content_n = np.int64(n)
            p += np.int64(n)
        elif (field == 5 or field == 6) and wire == 2:  # packed float_val / double_val
            n, p = read_varint(buf, p, e)
            if p < 0 or n > np.uint64(e - p):
                return False, 0, np.nan, True
            width = 4 if field == 5 else 8
            if np.int64(n) % width != 0:
                return False, 0, np.nan, True
            if n_listed == 0 and n > 0:
                first = _element_from_content(buf, p, 1 if field == 5 else 2)
            n_listed += np.int64(n) // width
            p += np.int64(n)
        elif field == 5 and wire == 5:
            if p + 4 > e:
                return False, 0, np.nan, True
            if n_listed == 0:
                first = _element_from_content(buf, p, 1)
            n_listed += 1
            p += 4
        elif field == 6 and wire == 1:
            if p + 8 > e:
                return False, 0, np.nan, True
            if n_listed == 0:
                first = _element_from_content(buf, p, 2)
            n_listed += 1
            p += 8
        elif (field == 7 or field == 10 or field == 13) and (wire == 0 or wire == 2):
            # int_val (int32), int64_val, half_val (half/bfloat16 bits in an int32)
            if wire == 2:
                n, p = read_varint(buf, p, e)
                if p < 0 or n > np.uint64(e - p):
                    return False, 0, np.nan, True
                pe = p + np.int64(n)
            else:
                pe = -1
            while True:
                v, p = read_varint(buf, p, e if pe < 0 else pe)
                if p < 0:
                    return False, 0, np.nan, True
                if n_listed == 0:
                    if field == 13:
                        bits = np.int64(v & np.uint64(0xFFFF))
                        if dtype == 14:
                            first = np.float64(f32_from_bits(np.uint32(bits) << np.uint32(16)))
                        else:
                            first = _half_to_float(bits)
                    elif field == 7:
                        first = np.float64(i32_from_bits(v & np.uint64(0xFFFFFFFF)))
                    else:
                        first = np.float64(i64_from_bits(v))
                n_listed += 1
                if pe < 0 or p >= pe:
                    break
        else:
            p = skip_field(buf, p, e, wire)
            if p < 0:
                return False, 0, np.nan, True
    isz = _itemsize(dtype)
    if isz == 0 or n_elem != 1:
        return False, 0, np.nan, False
    kind = 3 if (dtype == 3 or dtype == 9) else 2
    if content_s >= 0 and content_n > 0:
        if content_n != isz:
            return False, 0, np.nan, True
        return True, kind, _element_from_content(buf, content_s, dtype), False
    if n_listed >= 1:
        return True, kind, first, False
    return False, 0, np.nan, False


@njit(cache=True, nogil=True)
def _plugin_name(buf, s, e):
    """(start, length) of SummaryMetadata.plugin_data.plugin_name in buf[s:e]; (-1, 0)
    if absent; (-2, 0) if malformed."""
    p = s
    while p < e:
        key, p = read_varint(buf, p, e)
        if p < 0:
            return -2, 0
        field = np.int64(key >> np.uint64(3))
        wire = np.int64(key & np.uint64(7))
        if field == 1 and wire == 2:
            n, p = read_varint(buf, p, e)
            if p < 0 or n > np.uint64(e - p):
                return -2, 0
            pe = p + np.int64(n)
            q = p
            while q < pe:
                k2, q = read_varint(buf, q, pe)
                if q < 0:
                    return -2, 0
                if (k2 >> np.uint64(3)) == 1 and (k2 & np.uint64(7)) == 2:
                    m, q = read_varint(buf, q, pe)
                    if q < 0 or m > np.uint64(pe - q):
                        return -2, 0
                    return q, np.int64(m)
                q = skip_field(buf, q, pe, np.int64(k2 & np.uint64(7)))
                if q < 0:
                    return -2, 0
            p = pe
        else:
            p = skip_field(buf, p, e, wire)
            if p < 0:
                return -2, 0
    return -1, 0


@njit(cache=True, nogil=True)
def _intern(buf, ts, tl, slots, tag_off, tag_len, state):
    """Tag id of buf[ts:ts+tl] in the open-addressing table; -1 when the table is full."""
    h = np.uint64(0xCBF29CE484222325)
    for i in range(ts, ts + tl):
        h = (h ^ np.uint64(buf[i])) * np.uint64(0x100000001B3)
    mask = slots.shape[0] - 1
    j = np.int64(h & np.uint64(mask))
    while True:
        tid = slots[j]
        if tid < 0:
            n = state[_S_NTAGS]
            if n >= tag_off.shape[0]:
                return -1
            slots[j] = n
            tag_off[n] = ts
            tag_len[n] = tl
            state[_S_NTAGS] = n + 1
            return n
        if tag_len[tid] == tl:
            o = tag_off[tid]
            same = True
            for i in range(tl):
                if buf[o + i] != buf[ts + i]:
                    same = False
                    break
            if same:
                return tid
        j = (j + 1) & mask


@njit(cache=True, nogil=True)
def _scan_core(buf, verify_crc, tables, state, slots, tag_off, tag_len, plug_off, plug_len,
               out_tag, out_step, out_wall, out_value, out_kind, out_rec):
    """Scan TFRecord-framed Events from state[_S_POS]; append scalar values to the out
    arrays from state[_S_NOUT]. Stops at the end, at a torn record, at a corrupt one, or
    when an output array would overflow (status _FULL: the caller grows them and calls
    again; the scan resumes at the start of the record it could not finish)."""
    n = buf.shape[0]
    cap = out_tag.shape[0]
    pos = state[_S_POS]
    nout = state[_S_NOUT]
    nrec = state[_S_NREC]
    while True:
        state[_S_POS] = pos
        state[_S_NOUT] = nout
        state[_S_NREC] = nrec
        state[_S_RECPOS] = pos
        if pos == n:
            state[_S_STATUS] = _OK
            return
        if n - pos < 12:
            state[_S_STATUS] = _TORN
            return
        length = read_u64le(buf, pos)
        if verify_crc and masked_crc32c(buf, pos, pos + 8, tables) != read_u32le(buf, pos + 8):
            state[_S_STATUS] = _BAD_LEN_CRC
            state[_S_ERRPOS] = pos + 8
            return
        if length > np.uint64(n - pos - 12) or np.int64(length) > n - pos - 16:
            state[_S_STATUS] = _TORN
            return
        s = pos + 12
        e = s + np.int64(length)
        if verify_crc and masked_crc32c(buf, s, e, tables) != read_u32le(buf, e):
            state[_S_STATUS] = _BAD_DATA_CRC
            state[_S_ERRPOS] = e
            return
        # pass 1: wall_time and step (fields may come in any order)
        wall = 0.0
        step = np.int64(0)
        p = s
        while p < e:
            key, p = read_varint(buf, p, e)
            if p < 0:
                break
            field = np.int64(key >> np.uint64(3))
            wire = np.int64(key & np.uint64(7))
            if field == 0:
                p = -1
                break
            if field == 1 and wire == 1:
                if p + 8 > e:
                    p = -1
                    break
                wall = f64_from_bits(read_u64le(buf, p))
                p += 8
            elif field == 2 and wire == 0:
                v, p = read_varint(buf, p, e)
                step = i64_from_bits(v)
            else:
                p = skip_field(buf, p, e, wire)
            if p < 0:
                break
        if p < 0:
            state[_S_STATUS] = _BAD_PROTO
            state[_S_ERRPOS] = s
            return
        # pass 2: summaries (field 5) -> values (field 1)
        start_nout = nout
        start_ntags = state[_S_NTAGS]
        p = s
        bad = False
        while p < e and not bad:
            key, p = read_varint(buf, p, e)
            field = np.int64(key >> np.uint64(3))
            wire = np.int64(key & np.uint64(7))
            if not (field == 5 and wire == 2):
                p = skip_field(buf, p, e, wire)
                continue
            m, p = read_varint(buf, p, e)
            se = p + np.int64(m)
            q = p
            while q < se:
                k2, q = read_varint(buf, q, se)
                if q < 0:
                    bad = True
                    break
                f2 = np.int64(k2 >> np.uint64(3))
                w2 = np.int64(k2 & np.uint64(7))
                if not (f2 == 1 and w2 == 2):
                    q = skip_field(buf, q, se, w2)
                    if q < 0:
                        bad = True
                        break
                    continue
                vn, q = read_varint(buf, q, se)
                if q < 0 or vn > np.uint64(se - q):
                    bad = True
                    break
                ve = q + np.int64(vn)
                # one Summary.Value in buf[q:ve]
                ts = -1
                tl = 0
                has_simple = False
                simple = 0.0
                tens_s = -1
                tens_e = -1
                meta_s = -1
                meta_e = -1
                r = q
                while r < ve:
                    k3, r = read_varint(buf, r, ve)
                    if r < 0:
                        bad = True
                        break
                    f3 = np.int64(k3 >> np.uint64(3))
                    w3 = np.int64(k3 & np.uint64(7))
                    if f3 == 2 and w3 == 5:
                        if r + 4 > ve:
                            bad = True
                            break
                        simple = np.float64(f32_from_bits(read_u32le(buf, r)))
                        has_simple = True
                        r += 4
                    elif w3 == 2 and (f3 == 1 or f3 == 8 or f3 == 9):
                        ln, r = read_varint(buf, r, ve)
                        if r < 0 or ln > np.uint64(ve - r):
                            bad = True
                            break
                        if f3 == 1:
                            ts = r
                            tl = np.int64(ln)
                        elif f3 == 8:
                            tens_s = r
                            tens_e = r + np.int64(ln)
                        else:
                            meta_s = r
                            meta_e = r + np.int64(ln)
                        r += np.int64(ln)
                    else:
                        r = skip_field(buf, r, ve, w3)
                        if r < 0:
                            bad = True
                            break
                if bad:
                    break
                q = ve
                if ts < 0:
                    ts = q  # no tag: the empty tag
                    tl = 0
                if not has_simple and tens_s < 0 and meta_s < 0:
                    continue
                tid = _intern(buf, ts, tl, slots, tag_off, tag_len, state)
                if tid < 0:
                    state[_S_STATUS] = _TAGS_FULL
                    return
                if meta_s >= 0 and plug_off[tid] < 0:
                    po, pl = _plugin_name(buf, meta_s, meta_e)
                    if po == -2:
                        bad = True
                        break
                    if po >= 0:
                        plug_off[tid] = po
                        plug_len[tid] = pl
                kind = 0
                value = np.nan
                if has_simple:
                    kind = 1
                    value = simple
                elif tens_s >= 0:
                    ok, k, v, malformed = _tensor_scalar(buf, tens_s, tens_e)
                    if malformed:
                        bad = True
                        break
                    if ok:
                        kind = k
                        value = v
                if kind == 0:
                    if tens_s < 0:
                        continue
                    kind = _K_OTHER_TENSOR
                if nout >= cap:
                    # roll back this record; the caller grows the arrays
                    state[_S_STATUS] = _FULL
                    state[_S_NOUT] = start_nout
                    # interned tags stay: ids are stable and the record re-interns the same ones
                    return
                out_tag[nout] = tid
                out_step[nout] = step
                out_wall[nout] = wall
                out_value[nout] = value
                out_kind[nout] = kind
                out_rec[nout] = nrec
                nout += 1
            p = se if not bad else p
        if bad or p < 0:
            state[_S_STATUS] = _BAD_PROTO
            state[_S_ERRPOS] = s
            state[_S_NOUT] = start_nout
            state[_S_NTAGS] = max(start_ntags, state[_S_NTAGS])
            return
        pos = e + 4
        nrec += 1


# ---------------------------------------------------------------- per-file driver

@dataclass
class FileScan:
    """Scalars of one event file, in record order (before the plugin filter)."""

    path: Path
    tags: list[str]
    plugins: list[str]  # per tag id, "" when no metadata named one
    tag: np.ndarray  # int32 tag id per value
    step: np.ndarray
    wall_time: np.ndarray
    value: np.ndarray
    kind: np.ndarray  # 1 simple_value, 2 float tensor, 3 int tensor
    record: np.ndarray  # record index of each value
    n_records: int
    n_bytes: int
    torn_at: int | None  # byte offset of a torn last record, None if the file ends cleanly

    def check_steps_and_values(self) -> None:
        """A scalars-plugin value that is not a number, or a step below -2**62 (an unsigned
        step of 2**63 or more stored in the int64 field), is an error naming the record,
        the tag and the step."""
        scalars_tag = np.array([p == "scalars" for p in self.plugins] or [False])
        bad = np.flatnonzero((self.kind == _K_OTHER_TENSOR) & scalars_tag[self.tag])
        if bad.shape[0]:
            i = int(bad[0])
            raise IngestError(f"record {int(self.record[i]) + 1:,}: tag {self.tags[self.tag[i]]!r} (scalars plugin) "
                              "holds a tensor that is not a single number (a string, or more than one element); "
                              "expected a number", path=str(self.path), step=int(self.step[i]))
        neg = np.flatnonzero((self.step < -(2**62)) & (self.kind != _K_OTHER_TENSOR))
        if neg.shape[0]:
            i = int(neg[0])
            st = int(self.step[i])
            raise IngestError(f"record {int(self.record[i]) + 1:,}: tag {self.tags[self.tag[i]]!r} has step {st:,} "
                              f"(as unsigned {st + 2**64:,}: a step past int64 wrapped around)",
                              path=str(self.path))

    def keep_mask(self) -> np.ndarray:
        """Values that are scalar curve points (see the module docstring)."""
        scalars_tag = np.array([p == "scalars" for p in self.plugins] or [False])
        no_plugin = np.array([p == "" for p in self.plugins] or [False])
        k = self.kind
        t = self.tag
        return (k == _K_SIMPLE) | ((k == _K_FLOAT_TENSOR) & (scalars_tag[t] | no_plugin[t])) | (
            (k == _K_INT_TENSOR) & scalars_tag[t])


_REASONS = {
    _BAD_LEN_CRC: "the checksum of the record length does not match (not a TensorBoard event file, or corrupt)",
    _BAD_DATA_CRC: "the record's data checksum does not match (corrupt record)",
    _BAD_PROTO: "the record is not a valid Event protobuf (corrupt record)",
}


def scan_file(path: Path, *, verify_crc: bool = True) -> FileScan:
    """Scan one event file. Raises IngestError on corrupt records; a torn tail is
    returned in ``torn_at`` (the caller decides)."""
    path = Path(path)
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise IngestError(f"cannot read the file: {e}", path=str(path)) from e
    n = buf.shape[0]
    n_tag_cap = 1024
    while True:
        state = np.zeros(8, dtype=np.int64)
        slots = np.full(4 * n_tag_cap, -1, dtype=np.int32)
        tag_off = np.zeros(n_tag_cap, dtype=np.int64)
        tag_len = np.zeros(n_tag_cap, dtype=np.int64)
        plug_off = np.full(n_tag_cap, -1, dtype=np.int64)
        plug_len = np.zeros(n_tag_cap, dtype=np.int64)
        cap = max(1024, n // 40)
        outs = _alloc(cap)
        while True:
            _scan_core(buf, verify_crc, CRC32C_TABLES, state, slots, tag_off, tag_len, plug_off, plug_len,
                       *outs)
            if state[_S_STATUS] == _FULL:
                outs = _grow(outs, int(state[_S_NOUT]), 2 * outs[0].shape[0])
                continue
            break
        if state[_S_STATUS] == _TAGS_FULL:
            n_tag_cap *= 8
            continue
        break
    status = int(state[_S_STATUS])
    nrec = int(state[_S_NREC])
    rec_pos = int(state[_S_RECPOS])
    if status in _REASONS:
        raise IngestError(f"byte {rec_pos:,} (record {nrec + 1:,}): {_REASONS[status]}; nothing was ingested",
                          path=str(path))
    torn_at = rec_pos if status == _TORN else None
    if n == 0:
        torn_at = None  # an empty file: a writer created it and wrote nothing yet (see read)
    if torn_at is not None and nrec == 0:
        raise IngestError(f"byte 0: the file holds no complete TFRecord ({n:,} bytes; "
                          "empty, truncated or not a TensorBoard event file); nothing was ingested",
                          path=str(path))
    ntags = int(state[_S_NTAGS])
    tags, plugins = [], []
    for i in range(ntags):
        tags.append(_decode(buf, int(tag_off[i]), int(tag_len[i]), path, "tag"))
        plugins.append(_decode(buf, int(plug_off[i]), int(plug_len[i]), path, "plugin name")
                       if plug_off[i] >= 0 else "")
    m = int(state[_S_NOUT])
    tag, step, wall, value, kind, rec = (a[:m] for a in outs)
    return FileScan(path=path, tags=tags, plugins=plugins, tag=tag, step=step, wall_time=wall,
                    value=value, kind=kind, record=rec, n_records=nrec, n_bytes=n, torn_at=torn_at)


def _decode(buf: np.ndarray, off: int, length: int, path, what: str) -> str:
    raw = buf[off:off + length].tobytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise IngestError(f"byte {off:,}: the {what} is not valid UTF-8: {raw!r}", path=str(path)) from e


def _alloc(cap: int):
    return (np.empty(cap, np.int32), np.empty(cap, np.int64), np.empty(cap, np.float64),
            np.empty(cap, np.float64), np.empty(cap, np.int8), np.empty(cap, np.int64))


def _grow(outs, used: int, cap: int):
    new = _alloc(cap)
    for a, b in zip(outs, new):
        b[:used] = a[:used]
    return new


# ---------------------------------------------------------------- discovery and runs

def _is_event_file(p: Path) -> bool:
    return p.is_file() and "tfevents" in p.name


def _find_event_files(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            if "tfevents" in f:
                out.append(Path(dirpath) / f)
    return out


def _looks_like_tfrecord(path: Path) -> bool:
    """First 12 bytes are a TFRecord length with a matching masked CRC-32C."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    if len(head) < 12:
        return False
    from engine.ingest._protobuf import masked_crc32c_bytes
    return masked_crc32c_bytes(head[:8]) == int.from_bytes(head[8:12], "little")


def sniff(path: Path) -> bool:
    path = Path(path)
    if path.is_file():
        return "tfevents" in path.name or _looks_like_tfrecord(path)
    if path.is_dir():
        depth0 = len(path.parts)
        for dirpath, dirnames, filenames in os.walk(path):
            if any("tfevents" in f for f in filenames):
                return True
            if len(Path(dirpath).parts) - depth0 >= 4:
                dirnames[:] = []
        return False
    return False


def _run_dir_and_prefix(file_dir: Path, root: Path) -> tuple[Path, str]:
    """Which run directory a file's directory belongs to, and the metric prefix."""
    d = file_dir
    prefix = ""
    if d != root and d.name.lower() in SPLIT_DIRS:
        return d.parent, d.name + "/"
    if d != root and _DIGITS_DIR.match(d.name):
        return d.parent, prefix
    return d, prefix


def _run_name(run_dir: Path) -> str:
    d = run_dir.resolve()
    name = d.name
    while name.lower() in GENERIC_DIRS and d.parent != d and d.parent.name:
        d = d.parent
        name = d.name
    return name or "run"


_TS = re.compile(r"tfevents\.(\d+(?:\.\d+)?)")


def _file_order_key(scan: FileScan, rel: str):
    m = _TS.search(scan.path.name)
    ts = float(m.group(1).split(".")[0]) if m else float("inf")
    first_wall = float(scan.wall_time[0]) if scan.wall_time.shape[0] else float("inf")
    return (ts, first_wall, rel)


def read(path: Path, *, run: str | None = None, options: IngestOptions = IngestOptions()) -> Parsed:
    path = Path(path)
    if path.is_file():
        files = [path]
        root = path.parent
    elif path.is_dir():
        files = _find_event_files(path)
        root = path
        if not files:
            raise IngestError("no TensorBoard event file (events.out.tfevents.*) under this folder",
                              path=str(path))
    else:
        raise IngestError("no such file or folder", path=str(path))
    verify = bool(getattr(options, "verify_crc", True))
    strict_tail = bool(getattr(options, "strict_tail", False))

    # group files into runs
    groups: dict[Path, list[tuple[Path, str]]] = {}
    for f in files:
        rd, prefix = _run_dir_and_prefix(f.parent, root)
        groups.setdefault(rd, []).append((f, prefix))
    names: dict[Path, str] = {}
    base_names = {rd: _run_name(rd) for rd in groups}
    for rd in groups:
        name = base_names[rd]
        if list(base_names.values()).count(name) > 1:
            rel = rd.relative_to(root).parts if rd != root else (rd.name,)
            name = "_".join(rel) or name
        if run is not None:
            name = run if len(groups) == 1 else f"{run}.{name}"
        names[rd] = name

    run_cols, metric_idx, metric_names = [], [], []
    steps, values, walls = [], [], []
    events: list[Event] = []
    attributes: dict[str, dict] = {}
    name_ids: dict[str, int] = {}
    for rd in sorted(groups, key=lambda d: str(d)):
        run_name = names[rd]
        scans = []
        for f, prefix in groups[rd]:
            scan = scan_file(f, verify_crc=verify)
            if scan.torn_at is not None and strict_tail:
                raise IngestError(
                    f"byte {scan.torn_at:,}: the file ends inside record {scan.n_records + 1:,} "
                    f"({scan.n_bytes - scan.torn_at:,} bytes of a torn record; the writer was still running "
                    "or was killed); nothing was ingested (strict_tail is set)", path=str(f))
            rel = str(f.relative_to(root)) if root in f.parents or f.parent == root else f.name
            scans.append((scan, prefix, rel))
        scans.sort(key=lambda t: _file_order_key(t[0], t[2]))
        empty = [rel for scan, _, rel in scans if scan.n_bytes == 0]
        if empty and len(empty) == len(scans) and len(groups) == 1:
            raise IngestError("byte 0: the event file is empty (0 bytes); nothing was ingested",
                              path=str(path if path.is_file() else root / empty[0]))
        attrs = attributes.setdefault(run_name, {})
        attrs["event_files"] = [rel for _, _, rel in scans]
        run_metric_seq = []  # (metric id array, step array, file index) per file, for resumes
        for fi, (scan, prefix, rel) in enumerate(scans):
            if scan.n_bytes == 0:
                events.append(Event(run=run_name, step=0, kind="note", detail=f"{rel}: empty event file (0 bytes)"))
                attrs.setdefault("empty_files", []).append(rel)
            if scan.torn_at is not None:
                lost = scan.n_bytes - scan.torn_at
                last_step = int(scan.step[-1]) if scan.step.shape[0] else 0
                events.append(Event(run=run_name, step=last_step, kind="note",
                                    detail=f"{rel}: file ends inside record {scan.n_records + 1:,} at byte "
                                           f"{scan.torn_at:,}; the torn record ({lost:,} bytes) was dropped, "
                                           f"{scan.n_records:,} complete records were read"))
                attrs.setdefault("truncated_files", []).append(
                    {"file": rel, "byte": scan.torn_at, "dropped_bytes": lost, "records_read": scan.n_records})
            scan.check_steps_and_values()
            keep = scan.keep_mask()
            ids = np.empty(len(scan.tags), dtype=np.int32)
            for t, tag in enumerate(scan.tags):
                mname = prefix + tag
                if mname not in name_ids:
                    name_ids[mname] = len(metric_names)
                    metric_names.append(mname)
                ids[t] = name_ids[mname]
            mids = ids[scan.tag[keep]] if len(scan.tags) else np.empty(0, np.int32)
            st = scan.step[keep]
            metric_idx.append(mids)
            steps.append(st)
            values.append(scan.value[keep])
            walls.append(scan.wall_time[keep])
            run_cols.append((run_name, int(mids.shape[0])))
            run_metric_seq.append((mids, st, rel))
        events.extend(_resume_events(run_name, run_metric_seq))

    if metric_idx:
        mi = np.concatenate(metric_idx)
        st = np.concatenate(steps)
        va = np.concatenate(values)
        wa = np.concatenate(walls)
    else:
        mi = np.empty(0, np.int32)
        st = np.empty(0, np.int64)
        va = np.empty(0, np.float64)
        wa = np.empty(0, np.float64)
    run_names = sorted({r for r, _ in run_cols})
    run_ids = np.concatenate([np.full(k, run_names.index(r), np.int32) for r, k in run_cols]) \
        if run_cols else np.empty(0, np.int32)
    table = _table(run_ids, run_names, mi, metric_names, st, va, wa)
    return Parsed(format=FORMAT, source=str(path), table=table, attributes=attributes, events=events,
                  content_hash=hash_files(files))


def _table(run_ids, run_names, metric_ids, metric_names, step, value, wall) -> pa.Table:
    def strings(ids, names):
        return pa.DictionaryArray.from_arrays(pa.array(ids, pa.int32()), pa.array(names, pa.string())) \
            .cast(pa.string())

    wt = pa.array(wall, pa.float64(), mask=~np.isfinite(wall) | (wall == 0.0))
    return pa.Table.from_arrays(
        [strings(run_ids, run_names), strings(metric_ids, metric_names), pa.array(step, pa.int64()),
         pa.array(value, pa.float64()), wt], schema=PARSED_SCHEMA)


@njit(cache=True, nogil=True)
def _backwards_core(metric_ids, steps, n_metrics):
    """Positions where a metric's step is below its previous step, and that previous step
    (one pass, no sort: a 4M-point run costs milliseconds)."""
    last = np.empty(n_metrics, np.int64)
    seen = np.zeros(n_metrics, np.bool_)
    where = []
    prev = []
    for i in range(metric_ids.shape[0]):
        m = metric_ids[i]
        if seen[m] and steps[i] < last[m]:
            where.append(i)
            prev.append(last[m])
        last[m] = steps[i]
        seen[m] = True
    out_w = np.empty(len(where), np.int64)
    out_p = np.empty(len(prev), np.int64)
    for k in range(len(where)):
        out_w[k] = where[k]
        out_p[k] = prev[k]
    return out_w, out_p


def _resume_events(run_name: str, seq) -> list[Event]:
    """One resume event per (file, new step) where some metric's step went backwards."""
    if not seq:
        return []
    mids = np.concatenate([s[0] for s in seq])
    steps = np.concatenate([s[1] for s in seq])
    fidx = np.concatenate([np.full(s[0].shape[0], i, np.int32) for i, s in enumerate(seq)])
    if mids.shape[0] < 2:
        return []
    where, prev_steps = _backwards_core(mids, steps, int(mids.max()) + 1)
    if where.shape[0] == 0:
        return []
    found: dict[tuple[int, int], list] = {}
    for w, prev in zip(where.tolist(), prev_steps.tolist()):
        key = (int(fidx[w]), int(steps[w]))
        found.setdefault(key, []).append(prev)
    out = []
    for (fi, new_step), prev in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        out.append(Event(run=run_name, step=new_step, kind="resume",
                         detail=f"{seq[fi][2]}: step went back from {max(prev):,} to {new_step:,} "
                                f"({len(prev)} metric{'s' if len(prev) != 1 else ''}); later values win"))
    return out
