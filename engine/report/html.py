"""Self-contained HTML reports: one file per run, and one per store.

``render_run_report(store, run, out_path=...)`` draws every metric of a run: the raw
curve (M4-downsampled with kernels.display, so every spike of a 10^7-step curve stays
visible in ~max_points points), the smoothed curve (TensorBoard's debiased EMA,
kernels.smoothing), segments shaded by kind (descent/plateau/ascent), spikes and
non-finite values marked, events, and the findings beside the plots with their
severity, confidence, message, evidence and advice; each finding links to its metric
panels and highlights its step range there. Metrics of one objective and kind
(train/val loss, proxy/gold reward) share a panel; reward and KL panels come first in an
RL run.

``render_store_report(store, out_path=...)`` writes the index of a store: every run
with its findings and key figures, and a comparison view (the same metric of every run
overlaid, smoothed).

Both files embed plotly.js once (no CDN, no network: a Content-Security-Policy in the
page forbids every fetch), and work offline from ``file://``. Without analysis tables
(``losscope diagnose`` not run) the report still draws the raw and smoothed curves and
says that the diagnosis did not run.

Escaping: every name (run, metric, source, finding text) is data. In HTML it goes
through html.escape; in the JSON the page embeds, ``<``, ``>`` and ``&`` are written as
``\\u003c``, ``\\u003e``, ``\\u0026`` (so no ``</script>`` or ``<!--`` can end the block);
in text plotly draws, ``& < >`` become entities (figures.plot_text).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html as _html
import json
import math
import os
import re
import uuid
from pathlib import Path

import numpy as np
import polars as pl

from engine.errors import StoreError
from engine.report import assets
from engine.report import figures as fg

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
_PLOTLYJS: str | None = None


# ------------------------------------------------------------------------------ helpers

def esc(s) -> str:
    """Text for HTML content and attribute values."""
    return _html.escape("" if s is None else str(s), quote=True)


def script_json(obj) -> str:
    """JSON safe inside a <script> element: non-finite floats become null, and
    < > & are escaped, so neither '</script>' nor '<!--' can appear."""
    text = json.dumps(_finite(obj), ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return _finite(float(obj))
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def plotly_js() -> str:
    """plotly.js as shipped with the plotly package (minified, ~4.8 MB), read once."""
    global _PLOTLYJS
    if _PLOTLYJS is None:
        from plotly.offline import get_plotlyjs
        _PLOTLYJS = get_plotlyjs()
    return _PLOTLYJS


_PLOTLYJS_HASH: str | None = None


def _sha256_source(text: str) -> str:
    """The CSP source expression allowing one inline script (plotly.js's is computed once)."""
    global _PLOTLYJS_HASH
    if text is _PLOTLYJS:
        if _PLOTLYJS_HASH is None:
            _PLOTLYJS_HASH = _sha256_raw(text)
        return _PLOTLYJS_HASH
    return _sha256_raw(text)


def _sha256_raw(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def report_filename(run: str) -> str:
    """A safe file name for a run's report: a readable slug of the name plus 12 hex digits
    of its sha256 (two names never collide, and no name becomes a path)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", run).strip("-.")[:60] or "run"
    return f"{slug}-{hashlib.sha256(run.encode('utf-8')).hexdigest()[:12]}.html"


def _write_atomic(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return path


def _page(title: str, body: str, data: dict) -> str:
    """The whole document: CSS, error capture, body, data block, plotly.js, render script."""
    js = plotly_js()
    capture, render = assets.CAPTURE_JS, assets.RENDER_JS
    csp = ("default-src 'none'; img-src data: blob:; style-src 'unsafe-inline'; font-src data:; "
           f"script-src {_sha256_source(capture)} {_sha256_source(js)} {_sha256_source(render)}")
    import plotly
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{esc(csp)}\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        f"<meta name=\"generator\" content=\"losscope; plotly.py {esc(plotly.__version__)}\">\n",
        f"<title>{esc(title)}</title>\n<style>{assets.CSS}</style>\n",
        f"<script>{capture}</script>\n</head>\n<body>\n",
        body,
        "\n<pre id=\"report-errors\" hidden></pre>\n",
        f"<script type=\"application/json\" id=\"report-data\">{script_json(data)}</script>\n",
        f"<script>{js}</script>\n",
        f"<script>{render}</script>\n</body>\n</html>\n",
    ])


def _legend_html() -> str:
    parts = ["<p class=\"muted\">Segments:"]
    for kind, col in fg.SEGMENT_COLOURS.items():
        parts.append(f"<span class=\"swatch\" style=\"background:{col.format(a=0.55)}\"></span>{kind}")
    parts.append(" · spikes: open circles · non-finite values: red × at the top edge"
                 " · events: grey ▲ at the bottom · finding ranges: bars at the top edge</p>")
    return "".join(parts)


def _by_run(frame: pl.DataFrame, run: str) -> pl.DataFrame:
    return frame.filter(pl.col("run") == run) if frame.height else frame


def _table(store, name: str) -> pl.DataFrame:
    return store.table(name)


# ------------------------------------------------------------------------------ panels

def _roles(metrics: pl.DataFrame) -> dict[str, dict]:
    return {r["metric"]: r for r in metrics.iter_rows(named=True)}


def _group_panels(names: list[str], roles: dict[str, dict]) -> list[tuple[str, list[str], str]]:
    """Panels as (title, metrics, kind): metrics of one objective and kind share a panel
    (train/val of one loss, proxy/gold of one reward); 'other' metrics and metrics
    without roles get one panel each. Reward and KL panels first in an RL run."""
    groups: dict[tuple, list[str]] = {}
    for m in names:
        r = roles.get(m)
        if r is None or r["kind"] == "other":
            key = ("", "other" if r is None else r["kind"], m)
        else:
            key = (r["objective"], r["kind"], "")
        groups.setdefault(key, []).append(m)
    rl = any(r["kind"] == "kl" or (r["kind"] == "reward" and r["objective"] == "policy") for r in roles.values()
             if r["metric"] in names)

    def order(key):
        kind = key[1]
        rank = fg.KIND_ORDER.get(kind, 9)
        if rl and kind in ("reward", "kl"):
            rank = -2 if kind == "reward" else -1
        return (rank, key[0], key[2])

    panels = []
    for key in sorted(groups, key=order):
        ms = sorted(groups[key], key=lambda m: (fg.SPLIT_ORDER.get((roles.get(m) or {}).get("split", "none"), 4),
                                                 (roles.get(m) or {}).get("role", ""), m))
        objective, kind, single = key
        title = single if single else f"{kind} · {objective}" + (" (RL)" if rl and kind in ("reward", "kl") else "")
        panels.append((title, ms, kind))
    return panels


def _spike_trace(sp: pl.DataFrame, metric: str, steps: np.ndarray, values: np.ndarray, colour: str):
    if sp.height == 0:
        return None
    sp = sp.sort("height", descending=True, nulls_last=True).head(fg.MAX_SPIKE_MARKERS).sort("step")
    st = sp["step"].to_numpy().astype(np.int64)
    val = sp["value"].to_numpy().astype(np.float64) if "value" in sp.columns else np.full(st.size, np.nan)
    miss = ~np.isfinite(val)
    if miss.any() and steps.size:  # the spike's value from the curve
        pos = np.clip(np.searchsorted(steps, st[miss]), 0, steps.size - 1)
        val[miss] = values[pos]
    texts = []
    for row in sp.iter_rows(named=True):
        rec = row.get("recovery_steps")
        how = ("recovered after " + fg.fmt(int(rec)) + " steps") if row.get("recovered") and rec is not None \
            else "never recovered" if row.get("recovered") is False else "recovery unknown"
        cls = row.get("recovery_class") or ""
        texts.append(fg.plot_text(f"{metric}: spike at step {row['step']:,}, height {fg.fmt(row.get('height'))} "
                                  f"noise units, {how}" + (f" ({cls})" if cls else "")))
    keep = np.isfinite(val)
    return {"type": "scatter", "mode": "markers", "x": fg.typed(st[keep]), "y": fg.typed(val[keep]),
            "name": fg.plot_text(f"{metric}: spikes ({sp.height:,})"), "legendgroup": fg.plot_text(metric),
            "marker": {"symbol": "circle-open", "size": 11, "color": colour, "line": {"width": 2}},
            "hovertext": [t for t, k in zip(texts, keep) if k], "hoverinfo": "text"}


def _event_trace(events: pl.DataFrame):
    if events.height == 0:
        return None
    ev = events.head(fg.MAX_EVENT_LINES)
    xs = ev["step"].to_numpy().astype(np.int64)
    texts = [fg.plot_text(f"{k} at step {s:,}" + (f": {d}" if d else "")) for s, k, d in
             ev.select("step", "kind", "detail").iter_rows()]
    return {"type": "scatter", "mode": "markers", "x": fg.typed(xs), "y": fg.typed(np.full(xs.size, 0.06)),
            "yaxis": "y2", "name": "events", "marker": {"symbol": "triangle-up", "size": 9, "color": "#7f8c8d"},
            "hovertext": texts, "hoverinfo": "text"}


def _event_shapes(events: pl.DataFrame) -> list[dict]:
    return [{"type": "line", "xref": "x", "yref": "paper", "x0": int(s), "x1": int(s), "y0": 0, "y1": 1,
             "line": {"color": "rgba(127,140,141,0.6)", "width": 1, "dash": "dot"}}
            for s in events.head(fg.MAX_EVENT_LINES)["step"].to_list()]


def _figure_rows(feat: dict | None, metric: str, role: dict | None) -> str:
    r = role or {}
    if not feat:
        return (f"<tr><td>{esc(metric)}</td><td>{esc(r.get('split', ''))}</td>"
                "<td class=\"num\" colspan=\"8\">not analysed</td></tr>")
    nonfin = fg.fmt(feat.get("n_nonfinite"))
    if feat.get("first_nonfinite_step") is not None:
        nonfin += f" (from step {fg.fmt(feat['first_nonfinite_step'])})"
    def num(x, digits=4):
        return fg.fmt(x, digits, nan="–")

    slope = num(feat.get("tail_slope"), 3)
    se = feat.get("tail_slope_se")
    if se is not None and not math.isnan(se):
        slope += f" ± {num(feat['tail_slope_se'], 2)}"
    best = num(feat.get("best_value"))
    if feat.get("best_step") is not None:
        best += f" @ {num(feat['best_step'])}"
    imp = feat.get("improvement_rel")
    imp_s = "–" if imp is None or (isinstance(imp, float) and math.isnan(imp)) else f"{100 * imp:.1f}%"
    cells = [num(feat.get("n_points")), nonfin, num(feat.get("noise"), 3), best,
             num(feat.get("final_value")), imp_s, slope, num(feat.get("n_spikes"))]
    return (f"<tr><td>{esc(metric)}</td><td>{esc(r.get('split', ''))}</td>"
            + "".join(f"<td class=\"num\">{esc(c)}</td>" for c in cells) + "</tr>")


_FIG_HEAD = ("<tr><th>metric</th><th>split</th><th class=\"num\">points</th><th class=\"num\">non-finite</th>"
             "<th class=\"num\">noise</th><th class=\"num\">best @ step</th><th class=\"num\">final</th>"
             "<th class=\"num\">improvement</th><th class=\"num\">tail slope</th><th class=\"num\">spikes</th></tr>")


def _metric_names(store, run: str) -> list[str]:
    """The metrics of a run: from the metrics table, else from the curves' metric column."""
    names = store.metrics(run)["metric"].to_list()
    if not names:
        names = store.scan_curves(run).select("metric").unique().collect()["metric"].to_list()
    return sorted(names)


def _loader(store, run: str):
    """load(metric) -> (steps, values) read with the metric pushed down to row groups,
    so a report holds one curve in memory at a time (a 10^7-step run has several)."""
    def load(metric):
        part = store.scan_curves(run, metric).select("step", "value").collect()
        return part["step"].to_numpy(), part["value"].to_numpy()
    return load


def _run_panels(names: list[str], load, roles: dict, features: dict, segments: pl.DataFrame,
                spikes: pl.DataFrame, events: pl.DataFrame, findings: list[dict], *, max_points: int,
                id_prefix: str = "p"):
    """Plot specs and HTML for every panel of one run. Returns (panel_specs, html, metric->panel ids)."""
    specs, blocks, where = [], [], {}
    seg_by = {(m,): g for (m,), g in segments.partition_by("metric", as_dict=True).items()} if segments.height else {}
    spk_by = {(m,): g for (m,), g in spikes.partition_by("metric", as_dict=True).items()} if spikes.height else {}
    for i, (title, ms, kind) in enumerate(_group_panels(names, roles)):
        pid = f"{id_prefix}{i}"
        data, shapes = [], []
        lo, hi, xmin, xmax = math.inf, -math.inf, math.inf, -math.inf
        for j, m in enumerate(ms):
            colour = fg.PALETTE[j % len(fg.PALETTE)]
            steps, values = load(m)
            d = fg.curve_display(steps, values, max_points=max_points)
            if steps.size:
                xmin, xmax = min(xmin, int(steps[0])), max(xmax, int(steps[-1]))
            if "lo" in d:
                lo, hi = min(lo, d["lo"]), max(hi, d["hi"])
            sparse = d["raw_x"].size <= 200
            has_smooth = "smooth_x" in d and d["n_finite"] >= 30
            data.append({"type": "scatter", "mode": "lines+markers" if sparse else "lines",
                         "x": fg.typed(d["raw_x"]), "y": fg.typed(d["raw_y"]),
                         "name": fg.plot_text(m + (" (raw)" if has_smooth else "")), "legendgroup": fg.plot_text(m),
                         "line": {"color": colour, "width": 1}, "opacity": 0.4 if has_smooth else 1.0,
                         "marker": {"size": 4},
                         "hovertemplate": "step %{x:,}<br>%{y:.6g}<extra>%{fullData.name}</extra>"})
            if has_smooth:
                data.append({"type": "scatter", "mode": "lines", "x": fg.typed(d["smooth_x"]),
                             "y": fg.typed(d["smooth_y"]), "legendgroup": fg.plot_text(m),
                             "name": fg.plot_text(f"{m} (smoothed, EMA w={d['smooth_weight']:.4g})"),
                             "line": {"color": colour, "width": 2},
                             "hovertemplate": "step %{x:,}<br>%{y:.6g}<extra>%{fullData.name}</extra>"})
            sp = spk_by.get((m,))
            if sp is not None:
                t = _spike_trace(sp, m, steps, values, colour)
                if t is not None:
                    data.append(t)
            tr, sh = fg.nonfinite_traces(d["nonfinite"], name=m)
            data.extend(tr)
            shapes.extend(sh)
            sg = seg_by.get((m,))
            if sg is not None and sg.height:
                segs = list(sg.sort("step_start").select("kind", "step_start", "step_end").iter_rows())
                shapes.extend(fg.segment_shapes(segs, strip=j, full=(j == 0)))
        ev = _event_trace(events)
        if ev is not None:
            data.append(ev)
            shapes.extend(_event_shapes(events))
        for f in findings:
            if f["step_start"] is not None and set(f["metrics"]) & set(ms):
                a, b = int(f["step_start"]), int(f["step_end"] if f["step_end"] is not None else f["step_start"])
                col = fg.SEVERITY_COLOURS.get(f["severity"], "#888")
                shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": a, "x1": max(a, b), "y0": 0.988,
                               "y1": 1.0, "fillcolor": col, "opacity": 0.8, "line": {"width": 1 if a == b else 0,
                                                                                     "color": col}})
        layout = fg.base_layout(fg.plot_text(title), log=fg.auto_log(kind, lo if lo < math.inf else None,
                                                                     hi if hi > -math.inf else None))
        layout["shapes"] = shapes
        if not any(t.get("yaxis") == "y2" for t in data):
            del layout["yaxis2"]
        specs.append({"id": f"plot-{pid}", "data": data, "layout": layout,
                      "extent": [xmin, xmax] if xmin < math.inf else None})
        for m in ms:
            where.setdefault(m, []).append(f"plot-{pid}")
        rows = "".join(_figure_rows(features.get(m), m, roles.get(m)) for m in ms)
        blocks.append(f"<section class=\"panel\" id=\"panel-{pid}\">"
                      f"<div class=\"plot\" id=\"plot-{pid}\"></div>"
                      f"<table class=\"figs\">{_FIG_HEAD}{rows}</table></section>")
    return specs, "\n".join(blocks), where


# ------------------------------------------------------------------------------ findings

def _evidence_text(ev: str) -> str:
    try:
        return json.dumps(json.loads(ev), indent=1, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return ev or ""


def _finding_html(k: int, f: dict, where: dict | None, *, with_run: bool = False) -> str:
    sev = f["severity"] if f["severity"] in SEVERITY_RANK else "info"
    head = (f"<span class=\"sev {esc(sev)}\">{esc(f['severity'])}</span> "
            f"<span class=\"code\">{esc(f['code'])}</span> "
            f"<span class=\"muted\">confidence {f['confidence']:.2f}</span>")
    if with_run:
        head += f" <span class=\"muted\">run</span> <code>{esc(f['run'])}</code>"
    rng = ""
    if f["step_start"] is not None:
        a, b = f["step_start"], f["step_end"]
        rng = f"steps {a:,}" + (f"–{b:,}" if b is not None and b != a else "")
    links = []
    for m in f["metrics"]:
        pids = (where or {}).get(m)
        if pids:
            links.append(f"<a class=\"goto\" href=\"#finding-{k}\" data-finding=\"{k}\">{esc(m)}</a>")
        else:
            links.append(f"<code>{esc(m)}</code>")
    meta = " · ".join(x for x in (rng, ("metrics: " + ", ".join(links)) if links else "") if x)
    ev = _evidence_text(f["evidence"])
    return (f"<li class=\"finding sev-{esc(sev)}\" id=\"finding-{k}\">"
            f"<div>{head}</div><p class=\"msg\">{esc(f['message'])}</p>"
            + (f"<p class=\"muted\">{meta}</p>" if meta else "")
            + (f"<p class=\"advice\"><b>Advice:</b> {esc(f['advice'])}</p>" if f["advice"] else "")
            + (f"<details><summary>evidence</summary><pre>{esc(ev)}</pre></details>" if ev and ev != "{}" else "")
            + "</li>")


def _findings_list(findings: list[dict]) -> list[dict]:
    return sorted(findings, key=lambda f: (SEVERITY_RANK.get(f["severity"], 3),
                                           -1 if f["step_start"] is None else f["step_start"], f["code"]))


def _counts(findings: list[dict]) -> str:
    c = {s: 0 for s in SEVERITY_RANK}
    for f in findings:
        c[f["severity"]] = c.get(f["severity"], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in c.items())


# ------------------------------------------------------------------------------ run report

def _run_meta(store, run: str) -> dict:
    runs = store.runs()
    if run not in set(runs["run"].to_list()):
        known = runs["run"].to_list()
        hint = ", ".join(repr(r) for r in known[:5]) + (f" and {len(known) - 5:,} more" if len(known) > 5 else "")
        raise StoreError(f"no such run in the store (runs: {hint or 'none'})", path=str(store.path), run=run)
    return runs.filter(pl.col("run") == run).row(0, named=True)


def _analysis_state(features: pl.DataFrame, findings: pl.DataFrame) -> str | None:
    if features.height == 0 and findings.height == 0:
        return ("Diagnosis did not run for this run: raw and smoothed curves only (no segments, spikes "
                "or findings). Run <code>losscope diagnose --store DIR</code> first.")
    if features.height == 0:
        return "The analysis tables (features, segments, spikes) hold nothing for this run: no segments or spikes drawn."
    if findings.height == 0:
        return "Diagnosis did not run for this run (the findings table holds nothing for it): no findings listed."
    return None


def render_run_report(store, run: str, *, out_path, max_points: int = 4000) -> Path:
    """Write the report of one run of ``store`` to ``out_path`` (one self-contained HTML
    file) and return its path.

    max_points: points drawn per raw curve (M4 downsampling keeps every bucket's first,
    last, min and max, so spikes survive); the smoothed curve gets max_points // 2.
    Raises StoreError when the run is not in the store.
    """
    from engine.store import Store

    if not isinstance(store, Store):
        store = Store(store, create=False)
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 16:
        raise ValueError(f"render_run_report: max_points must be an integer >= 16, got {max_points!r}")
    meta = _run_meta(store, run)
    names = _metric_names(store, run)
    roles = _roles(store.metrics(run))
    feats = _by_run(_table(store, "features"), run)
    features = {r["metric"]: r for r in feats.iter_rows(named=True)}
    segments = _by_run(_table(store, "segments"), run)
    spikes = _by_run(_table(store, "spikes"), run)
    events = store.events(run)
    fnd = _by_run(_table(store, "findings"), run)
    findings = _findings_list(list(fnd.iter_rows(named=True)))

    specs, panels_html, where = _run_panels(names, _loader(store, run), roles, features, segments, spikes, events, findings,
                                            max_points=max_points)
    fdata = []
    for f in findings:
        pids = sorted({p for m in f["metrics"] for p in where.get(m, [])}, key=lambda p: int(p.split("-p")[1]))
        fdata.append({"x0": f["step_start"], "x1": f["step_end"] if f["step_end"] is not None else f["step_start"],
                      "panels": pids})
    note = _analysis_state(feats, fnd)
    items = "".join(_finding_html(k, f, where) for k, f in enumerate(findings))
    aside = ("<aside class=\"findings\"><h2>Findings</h2>"
             + (f"<p class=\"muted\">{_counts(findings)}. Click a metric to show the finding's step range.</p>"
                f"<ol class=\"findings\">{items}</ol>" if findings else "<p class=\"muted\">No findings.</p>")
             + _events_html(events) + "</aside>")
    attrs = meta.get("attributes") or "{}"
    header = (f"<header><h1>losscope · run <code>{esc(run)}</code></h1>"
              f"<p class=\"muted\">{meta['points']:,} points · {len(where):,} metrics · format {esc(meta['format'])}"
              f" · ingested {esc(str(meta['ingested_at'])[:19])} · {_counts(findings) if findings else 'no findings'}</p>"
              f"<details><summary>sources and attributes</summary><pre>{esc(meta['source'])}</pre>"
              f"<pre>{esc(_evidence_text(attrs))}</pre></details>"
              + (f"<p class=\"note\">{note}</p>" if note else "")
              + _legend_html()
              + f"<p class=\"muted\">Raw curves: M4-downsampled to at most {max_points:,} points each (every "
                "bucket's first, last, min and max, so no spike is lost); smoothed: TensorBoard's debiased EMA "
                "over every point.</p></header>")
    body = (header + f"<div class=\"layout\"><main>{panels_html or '<p>No curves.</p>'}</main>{aside}</div>"
            + _footer())
    page = _page(f"losscope · {run}", body, {"panels": specs, "findings": fdata})
    return _write_atomic(Path(out_path), page)


def _events_html(events: pl.DataFrame) -> str:
    if events.height == 0:
        return ""
    rows = "".join(f"<tr><td class=\"num\">{s:,}</td><td>{esc(k)}</td><td>{esc(d)}</td></tr>"
                   for s, k, d in events.head(200).select("step", "kind", "detail").iter_rows())
    more = f"<p class=\"muted\">{events.height - 200:,} more not shown.</p>" if events.height > 200 else ""
    return (f"<h2>Events</h2><table><tr><th class=\"num\">step</th><th>kind</th><th>detail</th></tr>{rows}"
            f"</table>{more}")


def _footer() -> str:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"<footer class=\"muted\">Generated by losscope on {now}. Works offline: plotly.js is embedded.</footer>"


# ------------------------------------------------------------------------------ store report

def _key_metric(roles: dict[str, dict], names: list[str]) -> str | None:
    """The metric a run is summed up by: a train loss, else a val loss, else any metric
    with a direction, else the first."""
    def rank(m):
        r = roles.get(m) or {}
        k, s = r.get("kind", "other"), r.get("split", "none")
        return (0 if k in ("loss", "perplexity") else 1 if k == "reward" else 2 if r.get("direction") in ("min", "max")
                else 3, fg.SPLIT_ORDER.get(s, 4), m)
    return min(names, key=rank) if names else None


def render_store_report(store, *, out_path, runs=None, max_points: int = 1000, max_compare_runs: int = 40,
                        max_compare_metrics: int = 12, run_links: dict | None = None) -> Path:
    """Write the index of a store to ``out_path`` (one self-contained HTML file).

    Index: every run (or ``runs``) with points, metrics, findings by severity, its top
    finding and the key figures of its key metric (train loss when there is one).
    Findings: every finding of every run, by run. Comparison: the metrics logged by two
    or more runs (the ``max_compare_metrics`` most common), each run's smoothed curve
    (debiased EMA, LTTB to ``max_points``) overlaid; at most ``max_compare_runs`` runs per
    panel, the rest named in a note. ``run_links``: {run: relative href of its report}
    (e.g. from ``report_filename``), linked from the index.
    """
    from engine.store import Store

    if not isinstance(store, Store):
        store = Store(store, create=False)
    runs_t = store.runs()
    names = runs_t["run"].to_list()
    if runs is not None:
        want = [runs] if isinstance(runs, str) else list(runs)
        missing = [r for r in want if r not in set(names)]
        if missing:
            raise StoreError("no such run in the store", path=str(store.path), run=missing[0])
        runs_t = runs_t.filter(pl.col("run").is_in(want))
        names = runs_t["run"].to_list()
    metrics_t = store.metrics().filter(pl.col("run").is_in(names))
    feats = _table(store, "features")
    fnd = _table(store, "findings")
    fnd = fnd.filter(pl.col("run").is_in(names)) if fnd.height else fnd
    all_findings = list(fnd.iter_rows(named=True))
    by_run: dict[str, list[dict]] = {}
    for f in all_findings:
        by_run.setdefault(f["run"], []).append(f)
    roles_by_run: dict[str, dict] = {}
    for r in metrics_t.iter_rows(named=True):
        roles_by_run.setdefault(r["run"], {})[r["metric"]] = r
    feat_by: dict[tuple, dict] = {(r["run"], r["metric"]): r for r in feats.iter_rows(named=True)} if feats.height else {}
    diagnosed = set(fnd["run"].to_list()) if fnd.height else set()

    # index rows
    rows = []
    for r in runs_t.iter_rows(named=True):
        run = r["run"]
        roles = roles_by_run.get(run, {})
        km = _key_metric(roles, sorted(roles))
        fs = _findings_list(by_run.get(run, []))
        c = {s: sum(1 for f in fs if f["severity"] == s) for s in SEVERITY_RANK}
        top = fs[0] if fs else None
        ft = feat_by.get((run, km)) if km else None
        link = (run_links or {}).get(run)
        name_html = f"<code>{esc(run)}</code>"
        if link:
            name_html = f"<a href=\"{esc(_safe_href(link))}\">{name_html}</a>"
        status = "" if run in diagnosed else " <span class=\"muted\">(not diagnosed)</span>"
        best = "–" if not ft else fg.fmt(ft.get("best_value"), nan="–") + (
            f" @ {fg.fmt(ft['best_step'])}" if ft.get("best_step") is not None else "")
        rows.append(
            f"<tr><td>{name_html}{status}</td><td class=\"num\">{r['points']:,}</td>"
            f"<td class=\"num\">{len(roles):,}</td>"
            + "".join(f"<td class=\"num\">{c[s]}</td>" for s in SEVERITY_RANK)
            + f"<td>{(esc(top['code']) + ': ' + esc(top['message'])) if top else '–'}</td>"
            f"<td>{esc(km or '–')}</td><td class=\"num\">{fg.fmt(ft.get('final_value'), nan='–') if ft else '–'}</td>"
            f"<td class=\"num\">{best}</td></tr>")
    index = ("<table><tr><th>run</th><th class=\"num\">points</th><th class=\"num\">metrics</th>"
             "<th class=\"num\">critical</th><th class=\"num\">warning</th><th class=\"num\">info</th>"
             "<th>top finding</th><th>key metric</th><th class=\"num\">final</th><th class=\"num\">best @ step</th></tr>"
             + "".join(rows) + "</table>")

    # findings by run
    fblocks, k = [], 0
    for run in names:
        fs = _findings_list(by_run.get(run, []))
        if not fs:
            continue
        items = []
        for f in fs:
            items.append(_finding_html(k, f, None))
            k += 1
        worst = fs[0]["severity"]
        fblocks.append(f"<details{' open' if worst == 'critical' else ''}><summary><code>{esc(run)}</code>: "
                       f"{_counts(fs)}</summary><ol class=\"findings\">{''.join(items)}</ol></details>")

    # comparison
    specs, cblocks, notes = _comparison(store, names, metrics_t, max_points=max_points,
                                        max_runs=max_compare_runs, max_metrics=max_compare_metrics)
    note = ""
    not_analysed = [r for r in names if r not in diagnosed]
    if not_analysed:
        note = (f"<p class=\"note\">Diagnosis did not run for {len(not_analysed):,} of {len(names):,} run(s): "
                "they show curves only. Run <code>losscope diagnose --store DIR</code> first.</p>")
    header = (f"<header><h1>losscope · store <code>{esc(store.path)}</code></h1>"
              f"<p class=\"muted\">{len(names):,} runs · {sum(runs_t['points'].to_list()):,} points · "
              f"{_counts(all_findings) if all_findings else 'no findings'}</p>{note}</header>")
    body = (header + "<div class=\"wide\"><h2>Runs</h2>" + index
            + "<h2>Findings</h2>" + ("".join(fblocks) or "<p class=\"muted\">No findings.</p>")
            + "<h2>Comparison: the same metric across runs (smoothed)</h2>"
            + "".join(f"<p class=\"muted\">{esc(n)}</p>" for n in notes)
            + (cblocks or "<p class=\"muted\">No metric is logged by two or more runs.</p>")
            + "</div>" + _footer())
    page = _page(f"losscope · store {store.path.name}", body, {"panels": specs, "findings": []})
    return _write_atomic(Path(out_path), page)


def _safe_href(link: str) -> str:
    """A relative link to a run report: no scheme (javascript:, http:) and no absolute path."""
    from urllib.parse import quote
    link = str(link)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", link) or link.startswith(("/", "\\")):
        raise ValueError(f"run_links: {link!r} is not a relative path")
    return quote(link, safe="/._-")


def _comparison(store, names, metrics_t: pl.DataFrame, *, max_points, max_runs, max_metrics):
    if len(names) < 2:
        return [], "", []
    counts = (metrics_t.group_by("metric").agg(pl.len().alias("n"), pl.col("kind").first())
              .filter(pl.col("n") >= 2).sort(["n", "metric"], descending=[True, False]))
    notes = []
    if counts.height > max_metrics:
        notes.append(f"{counts.height - max_metrics:,} more shared metrics not compared "
                     f"(showing the {max_metrics} logged by the most runs).")
    counts = counts.head(max_metrics)
    specs, blocks = [], []
    chosen = counts["metric"].to_list()
    if not chosen:
        return [], "", notes
    per_metric: dict[str, list] = {m: [] for m in chosen}
    logged = {}
    for run, metric in metrics_t.select("run", "metric").iter_rows():
        logged.setdefault(run, set()).add(metric)
    for run in names:
        want = [m for m in chosen if len(per_metric[m]) < max_runs and m in logged.get(run, ())]
        if not want:
            if all(len(v) >= max_runs for v in per_metric.values()):
                break  # every panel is full: read no more curves
            continue
        cur = store.scan_curves(run, want).select("metric", "step", "value").collect()
        for (m,), part in cur.partition_by("metric", as_dict=True).items():
            got = fg.comparison_display(part["step"].to_numpy(), part["value"].to_numpy(), max_points=max_points)
            if got is not None:
                per_metric[m].append((run, got))
    for i, (m, kind) in enumerate(counts.select("metric", "kind").iter_rows()):
        series = per_metric[m]
        if len(series) < 2:
            continue
        data, lo, hi = [], math.inf, -math.inf
        for j, (run, (x, y)) in enumerate(series):
            fin = y[np.isfinite(y)]
            if fin.size:
                lo, hi = min(lo, float(fin.min())), max(hi, float(fin.max()))
            data.append({"type": "scatter", "mode": "lines" if x.size > 200 else "lines+markers",
                         "x": fg.typed(x), "y": fg.typed(y), "name": fg.plot_text(run),
                         "line": {"color": fg.PALETTE[j % len(fg.PALETTE)], "width": 1.5}, "marker": {"size": 4},
                         "hovertemplate": "step %{x:,}<br>%{y:.6g}<extra>%{fullData.name}</extra>"})
        n_all = int(counts.filter(pl.col("metric") == m)["n"][0])
        title = f"{m} ({len(series)} runs" + (f" of {n_all}" if n_all > len(series) else "") + ")"
        layout = fg.base_layout(fg.plot_text(title), log=fg.auto_log(kind, lo if lo < math.inf else None,
                                                                      hi if hi > -math.inf else None), height=380)
        del layout["yaxis2"]
        layout["legend"] = {"font": {"size": 10}}
        specs.append({"id": f"plot-c{i}", "data": data, "layout": layout, "extent": None})
        blocks.append(f"<section class=\"panel\" id=\"panel-c{i}\"><div class=\"plot\" id=\"plot-c{i}\"></div></section>")
    return specs, "\n".join(blocks), notes
