"""Static parts of the report page: CSS and the two scripts (error capture, rendering).

The scripts hold no data: the page's data sits in one ``<script type="application/json">``
block that the render script parses. The error-capture script runs first (in <head>),
so an error while plotly.js loads is recorded too.

DOM contract (checked by tests/report/test_browser.py):
- ``body[data-report-ok]``: "1" when every panel rendered and no error was recorded,
  "0" otherwise; ``body[data-report-panels]``: the number of panels drawn;
  ``body[data-report-errors]``: the number of errors; ``#report-errors`` lists them.
- a panel that plotly drew gets ``data-rendered="1"`` on its plot div.
- opening ``report.html#finding-K`` highlights finding K on its panels (zoom to its step
  range, a highlight band) and marks each panel section ``data-highlight="K"``.
"""

CSS = """
:root { --fg:#1d2330; --muted:#5f6b7a; --line:#dde2ea; --bg:#fbfcfe;
  --critical:#c0392b; --warning:#e67e22; --info:#2e86de; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header, footer, .wide { padding: 12px 20px; }
header { border-bottom: 1px solid var(--line); background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 16px; margin: 18px 0 8px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
pre { white-space: pre-wrap; word-break: break-all; background: #f3f5f9; padding: 6px 8px;
  border-radius: 4px; margin: 4px 0; max-height: 320px; overflow: auto; }
.muted { color: var(--muted); }
.note { background: #fff8e1; border: 1px solid #f1d48a; padding: 8px 12px; border-radius: 4px; }
.layout { display: grid; grid-template-columns: minmax(0, 1fr) 380px; gap: 16px; padding: 12px 20px; }
@media (max-width: 1100px) { .layout { grid-template-columns: minmax(0, 1fr); } }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin-bottom: 14px;
  padding: 4px 8px 8px; }
.panel[data-highlight] { border-color: #b8860b; box-shadow: 0 0 0 2px rgba(184,134,11,.25); }
.plot { width: 100%; min-height: 340px; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.figs { margin-top: 4px; }
aside.findings { position: sticky; top: 8px; align-self: start; max-height: calc(100vh - 16px);
  overflow: auto; }
ol.findings { list-style: none; margin: 0; padding: 0; }
.finding { background: #fff; border: 1px solid var(--line); border-left: 5px solid var(--info);
  border-radius: 4px; padding: 8px 10px; margin-bottom: 8px; }
.finding.sev-critical { border-left-color: var(--critical); }
.finding.sev-warning { border-left-color: var(--warning); }
.finding.active { box-shadow: 0 0 0 2px rgba(184,134,11,.45); }
.finding p { margin: 4px 0; }
.sev { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; font-size: 11px;
  text-transform: uppercase; background: var(--info); }
.sev.critical { background: var(--critical); } .sev.warning { background: var(--warning); }
.code { font-weight: 700; }
a.goto { cursor: pointer; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -1px;
  margin: 0 3px 0 10px; }
details summary { cursor: pointer; color: var(--muted); }
#report-errors { color: var(--critical); }
"""

# Runs in <head> before anything else: records errors (script errors, rejected promises,
# CSP violations such as a blocked network fetch, console.error) into the page.
CAPTURE_JS = """
(function () {
  var errors = [];
  function show() {
    var b = document.body, pre = document.getElementById('report-errors');
    if (b) b.setAttribute('data-report-errors', String(errors.length));
    if (pre) { pre.textContent = errors.join('\\n'); pre.hidden = errors.length === 0; }
    if (b && errors.length && b.getAttribute('data-report-ok') === '1') b.setAttribute('data-report-ok', '0');
  }
  window.__losscopeErrors = errors;
  window.__losscopeFail = function (msg) { errors.push(String(msg)); show(); };
  window.__losscopeShow = show;
  window.addEventListener('error', function (e) {
    window.__losscopeFail('error: ' + (e.message || (e.target && e.target.tagName) || e));
  }, true);
  window.addEventListener('unhandledrejection', function (e) {
    window.__losscopeFail('unhandled rejection: ' + (e.reason && e.reason.message || e.reason));
  });
  document.addEventListener('securitypolicyviolation', function (e) {
    window.__losscopeFail('blocked by the page policy: ' + e.violatedDirective + ' ' + (e.blockedURI || ''));
  });
  var ce = console.error;
  console.error = function () {
    window.__losscopeFail('console.error: ' + Array.prototype.join.call(arguments, ' '));
    return ce.apply(console, arguments);
  };
  window.alert = function (m) { window.__losscopeFail('alert() called: ' + m); };
})();
"""

RENDER_JS = """
(function () {
  var fail = window.__losscopeFail;
  var R = {panels: [], findings: []};
  try { R = JSON.parse(document.getElementById('report-data').textContent); }
  catch (e) { fail('report data: ' + e); }
  var config = {responsive: true, displaylogo: false, scrollZoom: false,
                modeBarButtonsToRemove: ['lasso2d', 'select2d']};
  var base = {}, extent = {};
  function highlight(k) {
    var f = R.findings[k];
    if (!f) return Promise.resolve();
    var act = document.querySelectorAll('.finding.active');
    for (var i = 0; i < act.length; i++) act[i].classList.remove('active');
    var el = document.getElementById('finding-' + k);
    if (el) el.classList.add('active');
    var jobs = [], first = null;
    f.panels.forEach(function (pid) {
      var div = document.getElementById(pid);
      if (!div || !div.layout) return;
      if (!first) first = div;
      var shapes = (base[pid] || []).slice(), upd = {};
      if (f.x0 !== null && f.x0 !== undefined) {
        var a = f.x0, b = f.x1, ext = extent[pid] || [a, b];
        var pad = Math.max((b - a) * 0.3, (ext[1] - ext[0]) * 0.02, 1);
        if (b === a) {
          shapes.push({type: 'line', xref: 'x', yref: 'paper', x0: a, x1: a, y0: 0, y1: 1,
                       line: {color: '#b8860b', width: 2, dash: 'dot'}});
        } else {
          shapes.push({type: 'rect', xref: 'x', yref: 'paper', x0: a, x1: b, y0: 0, y1: 1,
                       fillcolor: 'rgba(255,200,0,0.22)', line: {color: '#b8860b', width: 1}});
        }
        upd['xaxis.range'] = [a - pad, b + pad];
      }
      upd.shapes = shapes;
      jobs.push(Plotly.relayout(div, upd).then(function () {
        div.parentNode.setAttribute('data-highlight', String(k));
      }));
    });
    if (first && first.parentNode.scrollIntoView) first.parentNode.scrollIntoView({block: 'start'});
    return Promise.all(jobs);
  }
  window.losscopeHighlight = highlight;
  document.addEventListener('click', function (e) {
    var t = e.target && e.target.closest ? e.target.closest('[data-finding]') : null;
    if (!t) return;
    e.preventDefault();
    var k = +t.getAttribute('data-finding');
    if (history.replaceState) history.replaceState(null, '', '#finding-' + k);
    highlight(k).catch(function (err) { fail('highlight: ' + err); });
  });
  var jobs = R.panels.map(function (p) {
    var div = document.getElementById(p.id);
    if (!div) { fail('no element for ' + p.id); return Promise.resolve(); }
    base[p.id] = (p.layout.shapes || []).slice();
    extent[p.id] = p.extent || null;
    try {
      return Plotly.newPlot(div, p.data, p.layout, config).then(function () {
        div.setAttribute('data-rendered', '1');
      }, function (e) { fail(p.id + ': ' + e); });
    } catch (e) { fail(p.id + ': ' + e); return Promise.resolve(); }
  });
  Promise.all(jobs).then(function () {
    var m = /^#finding-(\\d+)$/.exec(location.hash);
    return m ? highlight(+m[1]) : null;
  }).catch(function (e) { fail('render: ' + e); }).then(function () {
    var n = document.querySelectorAll('[data-rendered="1"]').length;
    var b = document.body;
    b.setAttribute('data-report-panels', String(n));
    b.setAttribute('data-report-ok',
      (n === R.panels.length && window.__losscopeErrors.length === 0) ? '1' : '0');
    window.__losscopeShow();
  });
})();
"""
