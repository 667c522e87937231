"""Plot specifications for the HTML report: plain dicts that plotly.js draws.

Nothing here writes HTML. Every string that plotly renders as text (trace names, axis
and panel titles, hover text) goes through :func:`plot_text`, because plotly.js reads a
subset of HTML in text (``<b>``, ``<br>``, ``<a href>``) and a metric named
``<a href=...>`` must show as those characters, not become a link.

Arrays are written as plotly typed-array specs (``{"dtype": "f8", "bdata": base64}``),
which plotly.js 2.28+ decodes natively: 4,000 points cost ~43 kB of base64 per array
instead of ~80 kB of decimal text. NaN inside a float array is a gap in the line.
"""

from __future__ import annotations

import base64
import math

import numpy as np

from kernels.display import lttb, m4_downsample
from kernels.smoothing import debiased_ema

# segment kinds -> fill colours (strips at the panel bottom; light full-height shading
# for the panel's first metric). Kinds are in value terms (a rising reward is an ascent),
# so the colours say nothing about good or bad: blue down, purple up, grey flat.
SEGMENT_COLOURS = {"descent": "rgba(66,133,244,{a})", "plateau": "rgba(140,140,140,{a})",
                   "ascent": "rgba(171,71,188,{a})"}
SEVERITY_COLOURS = {"critical": "#c0392b", "warning": "#e67e22", "info": "#2e86de"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#d62728")
NONFINITE_COLOUR = "#d62728"
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2, "none": 3}
KIND_ORDER = {"loss": 0, "perplexity": 1, "reward": 2, "kl": 3, "accuracy": 4, "grad_norm": 5,
              "lr": 6, "throughput": 7, "other": 8}

MAX_SPIKE_MARKERS = 300  # per metric, the highest ones
MAX_NONFINITE_RUNS = 500  # per metric, runs of consecutive non-finite points of one kind
MAX_SEGMENT_SHAPES = 200  # per metric
MAX_EVENT_LINES = 60  # per panel


def plot_text(s) -> str:
    """Text for plotly.js: its pseudo-HTML markup characters as entities."""
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def typed(a: np.ndarray) -> dict:
    """A plotly typed-array spec: int steps as i4 when they fit, else f8 (exact to 2^53)."""
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.integer):
        if a.size == 0 or (a.min() >= -(2 ** 31) and a.max() < 2 ** 31):
            return {"dtype": "i4", "bdata": base64.b64encode(a.astype("<i4").tobytes()).decode("ascii")}
    return {"dtype": "f8", "bdata": base64.b64encode(a.astype("<f8").tobytes()).decode("ascii")}


def fmt(x, digits: int = 4, *, nan: str = "NaN") -> str:
    """A number for people: 4 significant digits, thousands separators for integers.
    ``nan``: what NaN shows as (tables of figures use "–": not applicable)."""
    if x is None:
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    x = float(x)
    if math.isnan(x):
        return nan
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def smoothing_weight(n_finite: int) -> float:
    """EMA weight with an effective window of ~0.5% of the points (TensorBoard's 0.6 at
    the least): enough to show the trend of a 10^7-point curve, light on a short one."""
    window = max(2.5, n_finite / 200.0)
    return 1.0 - 1.0 / window


def nonfinite_runs(steps: np.ndarray, values: np.ndarray):
    """Runs of consecutive non-finite points of one kind: list of
    (label, first_step, last_step, count), in step order."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size == 0:
        return []
    v = values[bad]
    code = np.where(np.isnan(v), 0, np.where(v > 0, 1, 2))
    brk = np.flatnonzero((np.diff(bad) != 1) | (np.diff(code) != 0)) + 1
    starts = np.concatenate([[0], brk])
    ends = np.concatenate([brk, [bad.size]])
    labels = ("NaN", "+Inf", "-Inf")
    return [(labels[int(code[a])], int(steps[bad[a]]), int(steps[bad[b - 1]]), int(b - a))
            for a, b in zip(starts, ends)]


def curve_display(steps: np.ndarray, values: np.ndarray, *, max_points: int) -> dict:
    """Downsampled raw and smoothed versions of one curve, plus its non-finite runs.

    Raw: M4 (first, last, min, max of every step bucket) so every spike and dip of the
    full curve stays visible; non-finite points become NaN (a gap in the line).
    Smoothed: TensorBoard's debiased EMA over every point, sampled at max_points // 2
    evenly spaced points (the EMA's window is ~n/200 points, so no feature of the smoothed
    curve is narrower than 10 samples; LTTB would cost 50 ms per 10^6 points for nothing).
    """
    steps = np.ascontiguousarray(steps, dtype=np.int64)
    values = np.ascontiguousarray(values, dtype=np.float64)
    n = values.shape[0]
    fin = np.isfinite(values)
    n_finite = int(fin.sum())
    if n > max_points:
        idx = m4_downsample(steps, values, n_out=max_points)
    else:
        idx = np.arange(n, dtype=np.int64)
    raw_x = steps[idx]
    raw_y = np.where(fin[idx], values[idx], np.nan)
    out = {"n": n, "n_finite": n_finite, "raw_x": raw_x, "raw_y": raw_y,
           "nonfinite": nonfinite_runs(steps, values)}
    if n_finite >= 3:
        w = smoothing_weight(n_finite)
        sm = debiased_ema(values, weight=w)
        sm = np.where(np.isfinite(sm), sm, np.nan)
        sidx = _even(n, max(3, max_points // 2))
        out.update(smooth_x=steps[sidx], smooth_y=sm[sidx], smooth_weight=w)
    if n_finite:
        fv = values[fin]
        out["lo"], out["hi"] = float(fv.min()), float(fv.max())
    return out


def _even(n: int, n_out: int) -> np.ndarray:
    """n_out evenly spaced indices of 0..n-1, first and last included (all when n <= n_out)."""
    if n <= n_out:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, n_out).round().astype(np.int64))


def comparison_display(steps: np.ndarray, values: np.ndarray, *, max_points: int):
    """The smoothed curve of one run for the comparison view, LTTB-downsampled."""
    steps = np.ascontiguousarray(steps, dtype=np.int64)
    values = np.ascontiguousarray(values, dtype=np.float64)
    n_finite = int(np.isfinite(values).sum())
    if n_finite == 0:
        return None
    sm = debiased_ema(values, weight=smoothing_weight(n_finite)) if n_finite >= 3 else values.copy()
    sm = np.where(np.isfinite(sm), sm, np.nan)
    idx = lttb(steps, sm, n_out=max(3, max_points)) if steps.shape[0] > max_points else np.arange(steps.shape[0])
    return steps[idx], sm[idx]


def auto_log(kind: str, lo, hi) -> bool:
    """Log y axis for positive losses, grad norms and LRs spanning two decades or more."""
    if lo is None or hi is None or kind not in ("loss", "perplexity", "grad_norm", "lr"):
        return False
    return lo > 0 and hi / lo >= 100.0


def base_layout(title: str, *, log: bool, height: int = 340) -> dict:
    return {
        "title": {"text": title, "font": {"size": 14}, "x": 0.01, "xanchor": "left"},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 40, "b": 36},
        "hovermode": "closest",
        "xaxis": {"zeroline": False, "rangeslider": {"visible": False}, "hoverformat": ","},
        "yaxis": {"type": "log" if log else "linear", "zeroline": False, "exponentformat": "e"},
        # overlay axis for the non-finite markers at the top edge, fixed to [0, 1]
        "yaxis2": {"overlaying": "y", "range": [0, 1], "fixedrange": True, "showgrid": False,
                   "showticklabels": False, "zeroline": False, "showline": False},
        "legend": {"orientation": "h", "y": -0.1, "yanchor": "top", "x": 0, "font": {"size": 11}},
        "shapes": [],
        "updatemenus": [{
            "type": "buttons", "direction": "left", "x": 0.45, "xanchor": "left", "y": 1.13,
            "yanchor": "top", "pad": {"r": 0, "t": 0}, "font": {"size": 10}, "showactive": True,
            "active": 1 if log else 0,
            "buttons": [{"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                        {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]}],
        }],
    }


def segment_shapes(segs, *, strip: int, full: bool) -> list[dict]:
    """Rectangles for a metric's segments: a strip at the bottom of the panel (one strip
    per metric of the panel) and, for the panel's first metric, light full-height shading."""
    shapes = []
    h = 0.035
    y0, y1 = strip * h, (strip + 1) * h
    for kind, a, b in segs[:MAX_SEGMENT_SHAPES]:
        col = SEGMENT_COLOURS.get(kind, "rgba(0,0,0,{a})")
        if full:
            shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": a, "x1": b, "y0": 0, "y1": 1,
                           "fillcolor": col.format(a=0.07), "line": {"width": 0}, "layer": "below"})
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": a, "x1": b, "y0": y0, "y1": y1,
                       "fillcolor": col.format(a=0.55), "line": {"width": 0}, "layer": "above"})
    return shapes


def nonfinite_traces(runs, *, name: str, colour: str = NONFINITE_COLOUR) -> tuple[list[dict], list[dict]]:
    """Markers at the top edge (overlay axis y2) with hover text 'NaN at step N', and a red
    top strip over runs longer than one point."""
    if not runs:
        return [], []
    shown = runs[:MAX_NONFINITE_RUNS]
    xs = np.array([a for _, a, _, _ in shown], dtype=np.int64)
    texts = []
    shapes = []
    for label, a, b, c in shown:
        if c == 1:
            texts.append(f"{label} at step {a:,}")
        else:
            texts.append(f"{label} at steps {a:,}..{b:,} ({c:,} points)")
            shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": a, "x1": b, "y0": 0.955,
                           "y1": 0.985, "fillcolor": "rgba(214,39,40,0.5)", "line": {"width": 0}})
    if len(runs) > len(shown):
        texts[-1] += f" (+{len(runs) - len(shown):,} more runs not marked)"
    trace = {"type": "scatter", "mode": "markers", "x": typed(xs), "y": typed(np.full(xs.size, 0.97)),
             "yaxis": "y2", "name": plot_text(f"{name}: non-finite"),
             "marker": {"symbol": "x-thin-open", "size": 10, "color": colour, "line": {"width": 2, "color": colour}},
             "hovertext": [plot_text(f"{name}: {t}") for t in texts], "hoverinfo": "text"}
    return [trace], shapes
