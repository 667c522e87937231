"""HTML reports: self-contained, escaped, complete, bounded in size (no browser here;
see test_browser.py for the rendering check)."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import polars as pl
import pytest

from engine.errors import StoreError
from engine.ingest import table as table_importer
from engine.report import render_run_report, render_store_report, report_filename
from engine.report.figures import SEGMENT_COLOURS
from engine.report.html import _safe_href, plotly_js, script_json
from tests.report.conftest import HOSTILE_METRIC, HOSTILE_RUN, PLAIN_RUN, RL_RUN
from tests.report.helpers import data_block, decode, parse, without_scripts

PLOTLY_BYTES = len(plotly_js().encode("utf-8"))


@pytest.fixture(scope="module")
def reports(report_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    paths = {run: render_run_report(report_store, run, out_path=out / report_filename(run))
             for run in report_store.run_names()}
    paths["<store>"] = render_store_report(report_store, out_path=out / "index.html")
    return {k: p.read_text(encoding="utf-8") for k, p in paths.items()}


def _panel_of(data, metric_text):
    """Panels whose traces include the (plotly-escaped) metric name."""
    return [p for p in data["panels"] if any(t.get("name", "").startswith(metric_text) for t in p["data"])]


def _plot_text(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.mark.parametrize("which", ["run", "store"])
def test_self_contained(reports, which):
    text = reports[HOSTILE_RUN] if which == "run" else reports["<store>"]
    tags = parse(text)
    scripts = [a for t, a in tags.tags if t == "script"]
    assert len(scripts) == 4, f"expected capture, data, plotly.js, render scripts; got {scripts}"
    assert not any("src" in a for a in scripts), "a script loads from a file or the network"
    for tag, attrs in tags.tags:
        for key in ("src", "href", "action", "data"):
            v = (attrs.get(key) or "").strip().lower()
            assert not re.match(r"^(https?:)?//", v), f"<{tag} {key}={v!r}> reaches the network"
    assert "http://" not in without_scripts(text) and "https://" not in without_scripts(text)
    assert text.count("plotly.js v") == 1, "plotly.js must be embedded exactly once"
    csp = [a["content"] for t, a in tags.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert len(csp) == 1 and "default-src 'none'" in csp[0] and "connect-src" not in csp[0]


def test_hostile_names_escaped_everywhere(reports):
    for key in (HOSTILE_RUN, RL_RUN, "<store>"):
        text = reports[key]
        for raw in (HOSTILE_RUN, HOSTILE_METRIC, "</script><!--", "<img src=x"):
            assert raw not in text, f"{raw!r} appears unescaped in the report of {key!r}"
        n_scripts = sum(1 for t, _ in parse(text).tags if t == "script")
        assert n_scripts == 4, f"report of {key!r}: {n_scripts} <script> elements, expected 4"
        assert not any(t == "img" for t, _ in parse(text).tags)
    text = reports[HOSTILE_RUN]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the title and header show the name
    # in the data block, names plotly draws are entity-escaped text
    data = data_block(text)
    names = [t.get("name", "") for p in data["panels"] for t in p["data"]]
    assert any(n.startswith(_plot_text(HOSTILE_METRIC)) for n in names), names
    assert not any("<" in n for n in names)
    # the RL run's name survives the round trip through HTML escaping
    assert 'rl &quot;run&quot; /a/../b &lt;/script&gt;&lt;!--' in reports[RL_RUN]


def test_script_json_escapes_and_drops_nonfinite():
    obj = {"a": "</script><!-- & -->", "b": [1.0, float("nan"), float("inf")], "c": np.int64(3)}
    text = script_json(obj)
    assert not set("<>&") & set(text)
    assert json.loads(text) == {"a": "</script><!-- & -->", "b": [1.0, None, None], "c": 3}


def test_every_finding_listed_and_linked(report_store, reports):
    findings = report_store.table("findings").filter(pl.col("run") == HOSTILE_RUN)
    assert findings.height >= 1
    text = reports[HOSTILE_RUN]
    data = data_block(text)
    assert len(data["findings"]) == findings.height
    for f in findings.iter_rows(named=True):
        assert f"<span class=\"code\">{f['code']}</span>" in text
        assert html.escape(f["message"]) in text and html.escape(f["advice"]) in text
    nonfinite = findings.filter(pl.col("code") == "NONFINITE").row(0, named=True)
    k = [i for i, d in enumerate(data["findings"]) if d["x0"] == nonfinite["step_start"]]
    assert k, "the NONFINITE finding's step range is not in the data block"
    spec = data["findings"][k[0]]
    train_panels = [p["id"] for p in _panel_of(data, "train/loss")]
    assert spec["panels"] == train_panels and spec["x1"] == nonfinite["step_end"]
    assert f'data-finding="{k[0]}"' in text and f'id="finding-{k[0]}"' in text
    # the finding's range is drawn on its panel (a bar at the top edge)
    panel = _panel_of(data, "train/loss")[0]
    assert any(s.get("y0") == 0.988 and s["x0"] == nonfinite["step_start"] for s in panel["layout"]["shapes"])


def test_nonfinite_values_marked(report_store, reports):
    cur = report_store.curves(HOSTILE_RUN, "train/loss")
    bad = cur.filter(~pl.col("value").is_finite())
    assert bad.height >= 1
    data = data_block(reports[HOSTILE_RUN])
    panel = _panel_of(data, "train/loss")[0]
    marks = [t for t in panel["data"] if t.get("name") == "train/loss: non-finite"]
    assert len(marks) == 1 and marks[0]["yaxis"] == "y2"
    step, value = bad.row(0, named=True)["step"], bad.row(0, named=True)["value"]
    label = "NaN" if np.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    assert f"train/loss: {label} at step {step:,}" in marks[0]["hovertext"][0]
    assert step in decode(marks[0]["x"]).tolist()
    # the raw line has a gap there (NaN), not a point drawn at +Inf
    raw = [t for t in panel["data"] if t.get("name", "").startswith("train/loss (raw)")][0]
    rx, ry = decode(raw["x"]), decode(raw["y"])
    assert np.isnan(ry[rx == step]).all() and np.isfinite(ry).any()


def test_train_val_overlaid_and_segments_shaded(report_store, reports):
    roles = report_store.metrics("overfit").filter(pl.col("kind") == "loss")
    train = roles.filter(pl.col("split") == "train")["metric"][0]
    val = roles.filter(pl.col("split") == "val")["metric"][0]
    data = data_block(reports["overfit"])
    panel = [p for p in data["panels"] if p["data"][0]["name"].split(" (")[0] == train][0]
    names = [t["name"] for t in panel["data"]]
    assert any(n.startswith(val) for n in names), f"{val} not overlaid on {train}: {names}"
    segs = report_store.table("segments").filter((pl.col("run") == "overfit") & (pl.col("metric") == train))
    assert segs.height >= 1
    strip0 = [s for s in panel["layout"]["shapes"] if s.get("y0") == 0 and s.get("y1") == 0.035]
    assert len(strip0) == segs.height
    assert [(s["x0"], s["x1"]) for s in strip0] == list(segs.sort("step_start").select("step_start", "step_end").iter_rows())
    for s, kind in zip(strip0, segs.sort("step_start")["kind"].to_list()):
        assert s["fillcolor"] == SEGMENT_COLOURS[kind].format(a=0.55)


def test_rl_run_gets_reward_and_kl_panels_first(reports):
    data = data_block(reports[RL_RUN])
    titles = [p["layout"]["title"]["text"] for p in data["panels"]]
    assert titles[0].startswith("reward") and titles[1].startswith("kl"), titles
    reward = data["panels"][0]
    names = [t["name"] for t in reward["data"]]
    assert any(n.startswith("objective/scores") for n in names) and any(n.startswith("eval/gold_reward") for n in names)


def test_spikes_marked(report_store, reports):
    spikes = report_store.table("spikes")
    assert spikes.height >= 1, "the fixture store should hold at least one spike"
    for (run, metric), part in spikes.group_by("run", "metric"):
        data = data_block(reports[run])
        name = f"{_plot_text(metric)}: spikes ({part.height:,})"
        traces = [t for p in data["panels"] for t in p["data"] if t.get("name") == name]
        assert len(traces) == 1, f"no spike trace {name!r} in the report of {run!r}"
        assert set(part["step"].to_list()) <= set(decode(traces[0]["x"]).tolist())
        assert all("spike at step" in h for h in traces[0]["hovertext"])


def test_report_without_analysis(report_store, reports):
    text = reports[PLAIN_RUN]
    assert "Diagnosis did not run for this run" in text
    data = data_block(text)
    assert data["findings"] == [] and len(data["panels"]) >= 3
    assert all(any(t.get("name", "").endswith("(raw)") for t in p["data"]) for p in data["panels"])
    assert "(not diagnosed)" in reports["<store>"]


def test_store_report_index_and_comparison(report_store, reports):
    text = reports["<store>"]
    for run in report_store.run_names():
        assert f"<code>{html.escape(run)}</code>" in text
    # the key metric of a run: its train loss, else its train reward
    rows = re.findall(r"<tr><td>(.*?)</tr>", text)
    rl_row = [r for r in rows if html.escape(RL_RUN) in r][0]
    assert "<td>objective/scores</td>" in rl_row
    assert "<td>train/loss</td>" in [r for r in rows if html.escape(HOSTILE_RUN) in r][0]
    n_find = report_store.table("findings").height
    assert text.count('class="finding ') == n_find
    data = data_block(text)
    # train/loss is logged by the nonfinite and the pretrain run: one comparison panel, two runs
    cmp_ = [p for p in data["panels"] if p["layout"]["title"]["text"].startswith("train/loss")]
    assert len(cmp_) == 1
    assert sorted(t["name"] for t in cmp_[0]["data"]) == sorted(
        [_plot_text(HOSTILE_RUN), _plot_text(PLAIN_RUN)])


def test_unknown_run_is_a_store_error(report_store, tmp_path):
    with pytest.raises(StoreError, match="no such run"):
        render_run_report(report_store, "nope", out_path=tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_report_filename_is_safe_and_unique():
    names = [HOSTILE_RUN, RL_RUN, "a/../../b", "../../etc/passwd", "..", "a b", "a-b"]
    files = [report_filename(n) for n in names]
    assert len(set(files)) == len(files)
    for f in files:
        assert "/" not in f and "\\" not in f and not f.startswith(".") and f.endswith(".html")
        assert re.fullmatch(r"[A-Za-z0-9._-]+", f), f


@pytest.mark.parametrize("href", ["javascript:alert(1)", "http://x/y.html", "//x/y", "/etc/passwd", "JaVaScRiPt:x"])
def test_run_links_must_be_relative(href):
    with pytest.raises(ValueError, match="not a relative path"):
        _safe_href(href)


def test_store_report_links_runs(report_store, tmp_path):
    links = {r: report_filename(r) for r in report_store.run_names()}
    text = render_store_report(report_store, out_path=tmp_path / "i.html", run_links=links).read_text()
    hrefs = [a["href"] for t, a in parse(text).tags if t == "a" and "href" in a and not a["href"].startswith("#")]
    assert sorted(hrefs) == sorted(links.values())


def _big_store(tmp_path, n):
    """One run of n steps: a decaying loss with noise, 5 tall spikes and a NaN."""
    from engine.store import Store

    rng = np.random.default_rng(7)
    steps = np.arange(n, dtype=np.int64)
    values = 2.0 + 8.0 * (1.0 + steps / 1000.0) ** -0.5 + 0.02 * rng.standard_normal(n)
    spike_at = np.sort(rng.choice(np.arange(100, n - 100), size=5, replace=False))
    values[spike_at] += 5.0
    values[n // 2] = np.nan
    path = tmp_path / "big.parquet"
    pl.DataFrame({"run": ["big"] * n, "metric": ["train/loss"] * n, "step": steps, "value": values}).write_parquet(path)
    store = Store(tmp_path / "store")
    store.ingest(path, mods=[table_importer])
    return store, spike_at


def test_long_curve_stays_light_and_keeps_spikes(tmp_path):
    n = 1_000_000
    store, spike_at = _big_store(tmp_path, n)
    out = render_run_report(store, "big", out_path=tmp_path / "big.html", max_points=4000)
    size = out.stat().st_size - PLOTLY_BYTES
    # raw (<= 4,002 + NaN ends) and smoothed (2,000) points at 12-16 bytes, base64: ~140 kB
    assert 0 < size < 250_000, f"report without plotly.js is {size:,} bytes for {n:,} points"
    data = data_block(out.read_text())
    raw = [t for t in data["panels"][0]["data"] if t["name"].endswith("(raw)")][0]
    x = decode(raw["x"])
    assert x.size <= 4000 + 4
    assert set(spike_at.tolist()) <= set(x.tolist()), "a spike vanished from the downsampled raw curve"
    assert n // 2 in x.tolist() and "NaN at step 500,000" in out.read_text()


def test_bad_max_points(report_store, tmp_path):
    with pytest.raises(ValueError, match="max_points"):
        render_run_report(report_store, "overfit", out_path=tmp_path / "x.html", max_points=3)


def edge_store(tmp_path):
    """One run whose metrics are the awkward curves: all NaN, one point, constant, huge
    values with -Inf, steps beyond 2^31, a mix of NaN/+Inf/-Inf runs."""
    from engine.store import Store

    big = 2 ** 40
    rows = {
        "all_nan": (np.arange(50), np.full(50, np.nan)),
        "one_point": (np.array([7]), np.array([1.5])),
        "constant": (np.arange(300), np.full(300, 2.0)),
        "huge": (np.arange(300), np.concatenate([np.full(150, 1e300), [-np.inf], np.full(149, -1e300)])),
        "big_steps": (big + np.arange(0, 3000, 10), np.linspace(3.0, 1.0, 300)),
        "mixed": (np.arange(400), np.concatenate([np.linspace(1, 2, 100), [np.nan] * 3, [np.inf] * 2,
                                                   [-np.inf], np.linspace(2, 1, 294)])),
    }
    frame = pl.concat([pl.DataFrame({"run": "edge", "metric": m, "step": s.astype(np.int64), "value": v.astype(float)})
                       for m, (s, v) in rows.items()])
    path = tmp_path / "edge.parquet"
    frame.write_parquet(path)
    store = Store(tmp_path / "store")
    store.ingest(path, mods=[table_importer])
    return store, rows


def test_awkward_curves_render(tmp_path):
    store, rows = edge_store(tmp_path)
    out = render_run_report(store, "edge", out_path=tmp_path / "edge.html", max_points=64)
    text = out.read_text()
    data = data_block(text)
    drawn = {t["name"].split(" (")[0].split(":")[0] for p in data["panels"] for t in p["data"]}
    assert set(rows) <= drawn
    by_name = {t["name"]: t for p in data["panels"] for t in p["data"]}
    # steps past 2^31 are written as float64 (exact below 2^53), not wrapped int32
    x = decode(by_name["big_steps (raw)"]["x"])
    assert x[0] == 2 ** 40 and x[-1] == 2 ** 40 + 2990
    # every non-finite run is marked with its kind and range
    hover = by_name["mixed: non-finite"]["hovertext"]
    assert hover == ["mixed: NaN at steps 100..102 (3 points)", "mixed: +Inf at steps 103..104 (2 points)",
                     "mixed: -Inf at step 105"]
    assert by_name["all_nan: non-finite"]["hovertext"] == ["all_nan: NaN at steps 0..49 (50 points)"]
    assert "-Inf at step 150" in by_name["huge: non-finite"]["hovertext"][0]
    assert "Diagnosis did not run" in text


def test_store_report_subset_and_caps(report_store, tmp_path):
    """runs= restricts the index and the comparison (the overlay `losscope compare` needs);
    max_compare_runs caps a panel and says how many runs it left out."""
    text = render_store_report(report_store, out_path=tmp_path / "two.html", runs=[HOSTILE_RUN, PLAIN_RUN],
                               max_compare_runs=1).read_text()
    assert html.escape(RL_RUN) not in text and f"<code>{html.escape(PLAIN_RUN)}</code>" in text
    data = data_block(text)
    assert data["panels"] == [], "a panel with one run is no comparison"
    text = render_store_report(report_store, out_path=tmp_path / "two.html",
                               runs=[HOSTILE_RUN, PLAIN_RUN]).read_text()
    titles = [p["layout"]["title"]["text"] for p in data_block(text)["panels"]]
    assert "train/loss (2 runs)" in titles
    with pytest.raises(StoreError, match="no such run"):
        render_store_report(report_store, out_path=tmp_path / "x.html", runs=["nope"])
