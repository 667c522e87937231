"""Slow twins of kernels/spikes.py, written from the definitions (and, for the
compatibility detectors, from the source's own logic: a deque, Python sum, np.mean)."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

MAD_TO_SIGMA = 1.4826


def _median(xs):
    s = sorted(xs)
    h = len(s) // 2
    return s[h] if len(s) % 2 else (s[h - 1] + s[h]) / 2.0


def default_floor_ref(values):
    xf = [v for v in values if math.isfinite(v)]
    floor = 0.0
    if len(xf) >= 3:
        d = [b - a for a, b in zip(xf[:-1], xf[1:])]
        md = _median(d)
        floor = 0.1 * MAD_TO_SIGMA * _median([abs(v - md) for v in d]) / math.sqrt(2.0)
    if not floor > 0.0 and xf:
        floor = 1e-9 * _median([abs(v) for v in xf])
    if not floor > 0.0 or not math.isfinite(floor):
        floor = 1e-300
    return floor


def rolling_median_mad_ref(values, window, center=False, min_periods=None):
    """Per point: median and MAD of the window of finite points (positions where the
    value is non-finite get NaN). O(n w log w)."""
    min_periods = window if min_periods is None else min_periods
    fin = [i for i, v in enumerate(values) if math.isfinite(v)]
    xf = [values[i] for i in fin]
    before, after = (window // 2, (window - 1) // 2) if center else (window - 1, 0)
    med = np.full(len(values), np.nan)
    mad = np.full(len(values), np.nan)
    for k, i in enumerate(fin):
        w = xf[max(0, k - before): k + after + 1]
        if len(w) >= min_periods:
            m = _median(w)
            med[i] = m
            mad[i] = _median([abs(v - m) for v in w])
    return med, mad


def robust_zscore_ref(values, window, center=False, min_periods=None, scale_floor=None):
    values = [float(v) for v in values]
    med, mad = rolling_median_mad_ref(values, window, center, min_periods)
    floor = default_floor_ref(values) if scale_floor is None else scale_floor
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if math.isfinite(v) and not math.isnan(med[i]):
            scale = max(MAD_TO_SIGMA * mad[i], floor)
            out[i] = (v - med[i]) / scale if scale > 0 else (math.copysign(math.inf, v - med[i]) if v != med[i] else math.nan)
    return out


def find_spikes_ref(steps, values, window=101, threshold_z=6.0, direction=1,
                    recovery_tolerance_noise=2.0, min_periods=11, scale_floor=None):
    """Events from the definition: open at a finite point with signed z above the
    threshold, baseline from the previous finite point's window, close at the first later
    finite point within tolerance of the baseline; the peak is the most extreme point."""
    values = [float(v) for v in values]
    med, mad = rolling_median_mad_ref(values, window, False, min_periods)
    floor = default_floor_ref(values) if scale_floor is None else scale_floor
    fin = [i for i, v in enumerate(values) if math.isfinite(v)]
    scale = {i: max(MAD_TO_SIGMA * mad[i], floor) for i in fin if not math.isnan(mad[i])}
    rows = []
    k = 0
    while k < len(fin):
        i = fin[k]
        if i not in scale or not scale[i] > 0 or not direction * (values[i] - med[i]) / scale[i] > threshold_z:
            k += 1
            continue
        prev = fin[k - 1] if k > 0 else None
        if prev is not None and prev in scale and scale[prev] > 0:
            base, sc = med[prev], scale[prev]
        else:
            base, sc = med[i], scale[i]
        peak, peak_dev = i, direction * (values[i] - base)
        rec = None
        for kk in range(k + 1, len(fin)):
            j = fin[kk]
            dev = direction * (values[j] - base)
            if dev <= recovery_tolerance_noise * sc:
                rec = kk
                break
            if dev > peak_dev:
                peak, peak_dev = j, dev
        rows.append((peak, int(steps[peak]), peak_dev / sc,
                     int(steps[fin[rec]] - steps[i]) if rec is not None else -1, rec is not None))
        k = rec if rec is not None else len(fin)
    cols = list(zip(*rows)) if rows else [[], [], [], [], []]
    return (np.array(cols[0], dtype=np.int64), np.array(cols[1], dtype=np.int64),
            np.array(cols[2], dtype=np.float64), np.array(cols[3], dtype=np.int64),
            np.array(cols[4], dtype=bool))


def olmo_spikes_ref(values, window=128, n_sigmas=6.0):
    """OLMo-core StabilityMonitorCallback._is_spike, step by step (list history, Python sum)."""
    history: list[float] = []
    out = []
    for v in values:
        v = float(v)
        spike = False
        if len(history) >= window:
            mean = sum(history) / len(history)
            variance = sum((x - mean) ** 2 for x in history) / len(history)
            std = math.sqrt(variance)
            if not std < 1e-10:
                spike = v > mean + n_sigmas * std
        out.append(spike)
        history.append(v)
        if len(history) > window:
            history.pop(0)
    return np.array(out, dtype=bool)


def kill_loss_spike_ref(values, window, outlier_multiplier=2.0, consecutive=5):
    """llm-foundry KillLossSpike.batch_end / _detect_loss_spike with an explicit window."""
    patience = consecutive - 1
    loss_window: deque = deque(maxlen=window)
    counter = 0
    out = []
    for v in values:
        v = float(v)
        fired = False
        if len(loss_window) == window:
            with np.errstate(invalid="ignore"):
                running = float(np.mean(loss_window))
            if v >= running * outlier_multiplier:
                counter += 1
                if counter > patience:
                    fired = True
            elif counter > 0:
                counter = 0
        out.append(fired)
        loss_window.append(v)
    return np.array(out, dtype=bool)


def megatron_spikes_ref(values, factor=10.0, num_samples=100):
    """Megatron validate_result(isnan/isinf) + RerunStateMachine.is_unexpectedly_large."""
    counts: dict = {}
    maxes: dict = {}
    out = []
    for v in values:
        v = float(v)
        if math.isnan(v) or math.isinf(v):
            out.append(True)
            continue
        value = math.fabs(v)
        if "loss" not in counts:
            counts["loss"] = 0
        if counts["loss"] < num_samples:
            counts["loss"] += 1
            maxes["loss"] = max(maxes.get("loss", 0.0), value)
            out.append(False)
            continue
        out.append(value >= maxes["loss"] * factor)
    return np.array(out, dtype=bool)
