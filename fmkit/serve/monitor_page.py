"""The trend page of a served monitor (/ui/monitors/NAME): a shell with no data in it, not even whether NAME
is served. Like /ui it asks for an API key (the tab's sessionStorage, the same name, so one key serves every
page), reads the monitor's name from its own URL and fetches, with that key, the series
(GET /v1/monitors/NAME/series) and the alerts (GET /v1/monitors/NAME/alerts), again every 10 s.

Per topic: an SVG chart of the negative share per interval (its trailing baseline dashed, alerted
intervals shaded), then the alert list with its evidence. Everything from the server is written with
textContent or as SVG attributes set through the DOM: a headline is data, never markup.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fmkit monitor</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2rem auto; color: #1d2430; max-width: 1000px; padding: 0 1rem; }
 h1 { margin-bottom: .2rem; } .sub { color: #5a6475; margin-top: 0; }
 .login { border: 1px solid #dde2ea; border-radius: 8px; padding: 1rem; margin: 1rem 0; }
 input { width: 100%; box-sizing: border-box; margin: .3rem 0 .8rem; padding: .4rem; font: inherit; }
 button { padding: .5rem 1.2rem; font: inherit; cursor: pointer; }
 .topic { border: 1px solid #dde2ea; border-radius: 8px; padding: .6rem 1rem; margin: .8rem 0; }
 .topic h3 { margin: .2rem 0; } .facts { color: #5a6475; font-size: .9rem; }
 svg { width: 100%; height: 160px; background: #fbfcfe; }
 .alert { border-left: 4px solid #dc2626; background: #fef2f2; padding: .4rem .9rem; margin: .6rem 0; }
 .alert ol { margin: .3rem 0; font-size: .9rem; }
</style></head>
<body>
<h1>Monitor <span id="name"></span></h1>
<p class="sub">negative share per topic and interval, alerts with their evidence · <a href="/ui">all models</a></p>
<div class="login"><label>API key <input id="key" type="password" placeholder="fmk_..." autocomplete="off"></label>
<button id="connect">Show this monitor</button> <span id="status">enter an API key to see the trends</span></div>
<h2>Alerts</h2><div id="alerts"><p>none</p></div>
<h2>Trends</h2><div id="topics"></div>
<script>
const $ = id => document.getElementById(id);
const name = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const keyBox = $("key"), SVG = "http://www.w3.org/2000/svg";
$("name").textContent = name; document.title = "fmkit monitor: " + name;
keyBox.value = sessionStorage.getItem("fmkit-key") || "";
const headers = () => ({"Authorization": "Bearer " + keyBox.value});
function add(parent, tag, text, className) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  if (className) node.className = className;
  parent.appendChild(node); return node;
}
function shape(parent, tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  parent.appendChild(node); return node;
}
function chart(parent, rows, alerts) {
  const width = 900, height = 160, pad = 24, svg = shape(parent, "svg", {viewBox: `0 0 ${width} ${height}`});
  const times = rows.map(r => Date.parse(r.start)), low = Math.min(...times), high = Math.max(...times, low + 1);
  const x = t => pad + (t - low) / (high - low) * (width - 2 * pad), y = v => height - pad - v * (height - 2 * pad);
  for (const a of alerts) {
    const start = x(Date.parse(a.start)), end = Math.max(start + 3, x(Date.parse(a.end)));
    shape(svg, "rect", {x: start, y: pad, width: end - start, height: height - 2 * pad, fill: "#fecaca",
                        class: "alert-band"});
  }
  shape(svg, "line", {x1: pad, y1: y(0), x2: width - pad, y2: y(0), stroke: "#c7cdd8"});
  const line = (key, style) => shape(svg, "polyline", Object.assign({fill: "none", points: rows
    .filter(r => r[key] != null).map(r => `${x(Date.parse(r.start)).toFixed(1)},${y(r[key]).toFixed(1)}`).join(" ")}, style));
  line("baseline_share", {stroke: "#94a3b8", "stroke-dasharray": "4 3", class: "baseline"});
  line("negative_share", {stroke: "#dc2626", "stroke-width": 2, class: "negative-share"});
  shape(svg, "text", {x: pad, y: pad - 6, "font-size": 12, fill: "#5a6475"}).textContent = "negative share (0-1)";
}
async function get(path) {
  const response = await fetch(path, {headers: headers()});
  const body = await response.json();
  if (!response.ok) throw new Error(`${response.status}: ${body.error.message}`);
  return body;
}
async function show() {
  sessionStorage.setItem("fmkit-key", keyBox.value);
  let series, alerts;
  try {
    [series, alerts] = await Promise.all([get(`/v1/monitors/${encodeURIComponent(name)}/series`),
                                          get(`/v1/monitors/${encodeURIComponent(name)}/alerts`)]);
  } catch (error) { $("status").textContent = error.message; return; }
  const rows = series.series, topics = [...new Set(rows.map(r => r.topic))].sort();
  $("status").textContent = `${rows.reduce((n, r) => n + r.count, 0)} events, ${topics.length} topic(s), ` +
    `${alerts.alerts.length} alert(s), interval ${series.interval}`;
  const list = $("alerts"); list.textContent = "";
  if (!alerts.alerts.length) add(list, "p", "none");
  for (const a of alerts.alerts) {
    const box = add(list, "div", null, "alert");
    add(box, "strong", `${a.topic}: ${a.start} → ${a.end}`);
    add(box, "div", `negative share ${Number(a.negative_share).toFixed(3)} vs baseline ${Number(a.baseline).toFixed(3)}, ` +
        `${a.count} events, score ${Number(a.score).toFixed(2)} (${a.detector || ""})`, "facts");
    const evidence = add(box, "ol");
    for (const e of a.evidence || []) add(evidence, "li", `${e.text} (${e.time || ""}, ${e.sentiment || ""})`);
  }
  const holder = $("topics"); holder.textContent = "";
  for (const topic of topics) {
    const mine = rows.filter(r => r.topic === topic), box = add(holder, "div", null, "topic");
    box.dataset.topic = topic;
    add(box, "h3", topic);
    add(box, "div", `${mine.reduce((n, r) => n + r.count, 0)} events over ${mine.length} interval(s)`, "facts");
    chart(box, mine, alerts.alerts.filter(a => a.topic === topic));
  }
}
$("connect").addEventListener("click", show);
keyBox.addEventListener("keydown", event => { if (event.key === "Enter") show(); });
if (keyBox.value) show();
setInterval(() => { if (keyBox.value) show(); }, 10000);
</script></body></html>"""
