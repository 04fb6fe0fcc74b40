"""The /ui page: a shell with no data in it. It asks for an API key (kept in the tab's sessionStorage),
then fetches with that key the models it may see (GET /v1/models), their cards, their drift status
(GET /v1/models/NAME/drift, under --watch), the monitors (GET /v1/monitors, linked to their trend pages
/ui/monitors/NAME), and runs the try-it box: texts for text models, an image file (sent as base64) for
image models.

Everything from the server is written with textContent, except the model cards, which the
server renders from the manifest with every value HTML-escaped.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fmkit serve</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2rem; color: #1d2430; max-width: 1100px; }
 h1 { margin-bottom: .2rem; } .sub { color: #5a6475; margin-top: 0; }
 table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
 th, td { border-bottom: 1px solid #dde2ea; padding: .4rem .6rem; text-align: left; font-size: .92rem; }
 th { background: #f3f5f9; } code { background: #f3f5f9; padding: 0 .3rem; }
 .try, .login { border: 1px solid #dde2ea; border-radius: 8px; padding: 1rem; margin: 1rem 0; }
 textarea, input, select { width: 100%; box-sizing: border-box; margin: .3rem 0 .8rem; padding: .4rem; font: inherit; }
 button { padding: .5rem 1.2rem; font: inherit; cursor: pointer; }
 pre { background: #f3f5f9; padding: .8rem; white-space: pre-wrap; }
 details.card { border: 1px solid #dde2ea; border-radius: 8px; padding: .4rem 1rem; margin: .6rem 0; }
 details.card summary { cursor: pointer; font-weight: 600; } details.card table { width: auto; }
 #why span { padding: 1px 3px; border-radius: 3px; line-height: 2; }
</style></head>
<body>
<h1>fmkit serve</h1>
<p class="sub"><span id="count">enter an API key to see the models it may use</span> · API docs at
<a href="/docs">/docs</a> · metrics at <code>/metrics</code></p>
<div class="login"><label>API key <input id="key" type="password" placeholder="fmk_..." autocomplete="off"></label>
<button id="connect">Show my models</button> <span id="status"></span></div>
<table id="models"><thead><tr><th>model</th><th>input</th><th>runtime</th><th>lineage</th><th>labels</th>
<th>test accuracy</th><th>test macro-F1</th><th>p50 latency</th><th>size</th><th>ε</th><th>fairness gap</th>
<th>stability</th><th>drift</th></tr></thead>
<tbody></tbody></table>
<h2>Monitors</h2>
<ul id="monitors"><li>none</li></ul>
<h2>Model cards</h2>
<div id="cards"><p>no cards</p></div>
<div class="try"><h2>Try it</h2>
<label>model <select id="model"></select></label>
<label id="text-box">text <textarea id="text" rows="3">a warm, funny, beautifully acted film</textarea></label>
<label id="image-box" hidden>image <input id="image" type="file" accept="image/png,image/jpeg,image/gif,image/bmp,image/webp"></label>
<button id="go">Predict</button> <button id="explain">Explain</button>
<pre id="out">the prediction appears here</pre><div id="why"></div></div>
<script>
const $ = id => document.getElementById(id);
const out = $("out"), why = $("why"), keyBox = $("key");
let models = [];
keyBox.value = sessionStorage.getItem("fmkit-key") || "";
const headers = () => ({"Content-Type": "application/json", "Authorization": "Bearer " + keyBox.value});
const fmt = (value, digits = 4, unit = "") => value == null ? "not measured" : value.toFixed(digits) + unit;
function fairnessGap(m) {
  const gaps = Object.values((m.audits || {}).fairness || {}).flatMap(v =>
    Object.entries(v).filter(([k]) => k.endsWith("_difference")).map(([, x]) => x));
  return gaps.length ? Math.max(...gaps) : null;
}
function cell(row, text) { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); }
async function showModels() {  // what this key may see, fetched with it
  sessionStorage.setItem("fmkit-key", keyBox.value);
  const tbody = document.querySelector("#models tbody"), select = $("model"), cards = $("cards");
  tbody.textContent = ""; select.textContent = ""; cards.textContent = ""; models = [];
  const response = await fetch("/v1/models", {headers: headers()});
  const body = await response.json();
  if (!response.ok) { $("status").textContent = `${response.status}: ${body.error.message}`; $("count").textContent = ""; return; }
  models = body; $("status").textContent = ""; $("count").textContent = `${models.length} model(s) for this key`;
  for (const m of models) {
    const test = (m.metrics || {}).test || {}, bench = (m.benchmarks || {})[m.runtime] || {};
    const row = document.createElement("tr");
    for (const text of [m.name, m.inputs, m.runtime, m.lineage.join(" → "), m.labels.join(", "),
        fmt(test.accuracy), fmt(test.macro_f1), fmt(bench.latency_p50_ms, 1, " ms"),
        fmt(bench.size_bytes ? bench.size_bytes / 1e6 : null, 1, " MB"),
        fmt(((m.privacy || {}).dp || {}).epsilon, 2), fmt(fairnessGap(m)),
        fmt(((m.audits || {}).robustness || {}).min_stability_rate)]) cell(row, text);
    const drift = document.createElement("td"); drift.className = "drift"; drift.textContent = "…"; row.appendChild(drift);
    tbody.appendChild(row);
    fetch(`/v1/models/${encodeURIComponent(m.name)}/drift`, {headers: headers()}).then(async r => {
      const d = await r.json();  // --watch: ok / drifting (which signals) / warming up; else why not
      drift.textContent = r.ok ? (d.status === "drifting" ? "drifting: " + d.drifting.join(", ") : d.status)
                               : (d.error.code === "not_watched" ? "not watched" : d.error.message);
    }).catch(() => { drift.textContent = "n/a"; });
    const option = document.createElement("option"); option.value = option.textContent = m.name; select.appendChild(option);
    const card = await fetch(`/v1/models/${encodeURIComponent(m.name)}/card`, {headers: headers()});
    if (!card.ok) continue;
    const details = document.createElement("details"), summary = document.createElement("summary");
    details.className = "card"; details.id = "card-" + m.name; summary.textContent = m.name; details.appendChild(summary);
    const page = new DOMParser().parseFromString(await card.text(), "text/html");
    for (const node of [...page.body.childNodes]) details.appendChild(document.adoptNode(node));
    cards.appendChild(details);
  }
  if (!models.length) cards.textContent = "no cards";
  const monitors = await fetch("/v1/monitors", {headers: headers()}), list = $("monitors");
  list.textContent = "";
  for (const m of monitors.ok ? await monitors.json() : []) {  // each links to its trend page
    const item = document.createElement("li"), link = document.createElement("a");
    link.href = `/ui/monitors/${encodeURIComponent(m.name)}`; link.textContent = m.name; item.appendChild(link);
    item.appendChild(document.createTextNode(` · ${m.counts.ingested || 0} events, ${m.alerts} alert(s)`));
    list.appendChild(item);
  }
  if (!list.children.length) list.textContent = "none";
  pick();
}
function pick() {
  const m = models.find(m => m.name === $("model").value), images = m && m.inputs === "images";
  $("text-box").hidden = images; $("image-box").hidden = !images; $("explain").disabled = !(m && m.explainable);
}
const asDataUrl = file => new Promise((resolve, reject) => {
  const reader = new FileReader(); reader.onload = () => resolve(reader.result); reader.onerror = reject;
  reader.readAsDataURL(file);
});
async function call(action) {  // POST to /v1/models/NAME:ACTION; null (error shown) unless 2xx
  const name = $("model").value, m = models.find(m => m.name === name);
  let payload = {texts: [$("text").value]};
  if (m && m.inputs === "images") {
    const file = $("image").files[0];
    if (!file) { out.textContent = "choose an image file first"; return null; }
    payload = {images: [await asDataUrl(file)]};  // the file's bytes, never a path
  }
  const response = await fetch(`/v1/models/${encodeURIComponent(name)}:${action}`,
                               {method: "POST", headers: headers(), body: JSON.stringify(payload)});
  const body = await response.json();
  if (!response.ok) { out.textContent = `${response.status}: ${body.error.message}`; return null; }
  return body;
}
$("connect").addEventListener("click", showModels);
keyBox.addEventListener("keydown", event => { if (event.key === "Enter") showModels(); });
$("model").addEventListener("change", pick);
$("go").addEventListener("click", async () => {
  const body = await call("predict");
  if (!body) return;
  const p = body.predictions[0];
  out.textContent = `${p.label}\\n` + Object.entries(p.probabilities)
    .map(([label, value]) => `  ${label}: ${value.toFixed(4)}`).join("\\n");
});
$("explain").addEventListener("click", async () => {
  out.textContent = "explaining..."; why.textContent = "";
  const body = await call("explain");
  if (!body) return;
  const e = body.explanations[0];
  const scale = Math.max(1e-9, ...e.words.map(w => Math.abs(w.attribution)));
  out.textContent = `${e.label} (p=${e.probability.toFixed(3)}): green pushes towards it, red against`;
  for (const w of e.words) {
    const span = document.createElement("span");
    const a = Math.min(1, Math.abs(w.attribution) / scale) * 0.75;
    span.style.background = w.attribution >= 0 ? `rgba(22,163,74,${a})` : `rgba(220,38,38,${a})`;
    span.title = w.attribution.toFixed(4); span.textContent = w.word;
    why.appendChild(span); why.appendChild(document.createTextNode(" "));
  }
});
if (keyBox.value) showModels();
</script></body></html>"""
