"""The reports in a real browser: headless Chromium, offline, from file://.

Two launches: the run report of the hostile-named run opened at ``#finding-K`` (K its
NONFINITE finding), and the store report. Each page records script errors, rejected
promises, console.error, alert() calls and Content-Security-Policy violations (any
network fetch) into the DOM, and sets ``body[data-report-ok]`` after plotly drew every
panel (see engine/report/assets.py). The DOM after JavaScript ran is read with
``--dump-dom``: plotly adds its ``main-svg`` / ``plot-container`` elements only when it
really drew.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from engine.report import render_run_report, render_store_report
from tests.report.conftest import HOSTILE_METRIC, HOSTILE_RUN
from tests.report.helpers import data_block, parse

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
                 if p and Path(p).is_file()), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (/usr/bin/chromium); "
                                "install Debian's chromium package (.ci/run does) to run the browser test")


def dump_dom(url: str, tmp: Path) -> str:
    profile = tmp / f"profile-{abs(hash(url))}"
    profile.mkdir()
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
           "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc.stdout


def _body(dom: str) -> dict:
    bodies = [a for t, a in parse(dom).tags if t == "body"]
    assert len(bodies) == 1
    return bodies[0]


def _errors(dom: str) -> str:
    m = re.search(r'<pre id="report-errors"[^>]*>(.*?)</pre>', dom, re.S)
    return m.group(1) if m else "<no #report-errors element>"


def _check_rendered(dom: str, n_panels: int):
    body = _body(dom)
    assert body.get("data-report-errors", "0") == "0", f"script errors: {_errors(dom)}"
    assert body.get("data-report-ok") == "1", f"report not rendered: {body}; errors: {_errors(dom)}"
    assert body.get("data-report-panels") == str(n_panels)
    tags = parse(dom).tags
    rendered = [a["id"] for t, a in tags if t == "div" and a.get("data-rendered") == "1"]
    assert len(rendered) == n_panels
    containers = [a for t, a in tags if "plot-container" in (a.get("class") or "").split()]
    svgs = [a for t, a in tags if t == "svg" and "main-svg" in (a.get("class") or "").split()]
    assert len(containers) == n_panels, f"{len(containers)} plotly containers for {n_panels} panels"
    assert len(svgs) >= 2 * n_panels, f"{len(svgs)} main-svg elements for {n_panels} panels"
    return tags


def test_reports_render_in_headless_chromium(report_store, tmp_path):
    run_html = render_run_report(report_store, HOSTILE_RUN, out_path=tmp_path / "run.html")
    data = data_block(run_html.read_text())
    findings = report_store.table("findings").filter(pl.col("run") == HOSTILE_RUN)
    start = findings.filter(pl.col("code") == "NONFINITE")["step_start"][0]
    k = next(i for i, f in enumerate(data["findings"]) if f["x0"] == start and f["panels"])

    dom = dump_dom(run_html.as_uri() + f"#finding-{k}", tmp_path)
    tags = _check_rendered(dom, len(data["panels"]))
    # no element came out of a name: the only scripts are the page's own four
    assert sum(1 for t, _ in tags if t == "script") == 4 and not any(t == "img" for t, _ in tags)
    assert _errors(dom).strip() == ""
    # plotly drew the hostile metric name as text (legend), escaped in the serialised DOM
    legend_text = HOSTILE_METRIC.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert legend_text in dom
    # the deep link highlighted the finding on its panel(s) and zoomed there
    highlighted = [a["id"] for t, a in tags if t == "section" and a.get("data-highlight") == str(k)]
    expected = [p.replace("plot-", "panel-") for p in data["findings"][k]["panels"]]
    assert highlighted == expected
    active = [a for t, a in tags if t == "li" and "active" in (a.get("class") or "").split()]
    assert [a["id"] for a in active] == [f"finding-{k}"]

    store_html = render_store_report(report_store, out_path=tmp_path / "index.html")
    sdata = data_block(store_html.read_text())
    assert sdata["panels"], "the store report should hold a comparison panel"
    dom = dump_dom(store_html.as_uri(), tmp_path)
    _check_rendered(dom, len(sdata["panels"]))


@pytest.mark.slow
def test_error_capture_catches_a_broken_page(report_store, tmp_path):
    """Negative control for the check above: a page whose data block is corrupt and which
    tries a network fetch must come out not ok, with both errors recorded."""
    text = render_run_report(report_store, "overfit", out_path=tmp_path / "ok.html").read_text()
    assert text.count('{"panels"') == 1 and text.count('<div class="layout">') == 1
    broken = (text.replace('{"panels"', '{panels', 1)
              .replace('<div class="layout">', '<img src="http://127.0.0.1:9/x.png"><div class="layout">', 1))
    page = tmp_path / "broken.html"
    page.write_text(broken, encoding="utf-8")
    dom = dump_dom(page.as_uri(), tmp_path)
    body = _body(dom)
    assert body.get("data-report-ok") == "0" and body.get("data-report-panels") == "0"
    errors = _errors(dom)
    assert "report data: SyntaxError" in errors
    assert "blocked by the page policy: img-src http://127.0.0.1:9/x.png" in errors
