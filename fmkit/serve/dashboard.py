"""The /ui page: served models with their metrics, audits, lineage and model cards, and a try-it box."""

from __future__ import annotations

import html
import json

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fmkit serve</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1d2430; max-width: 1100px; }}
 h1 {{ margin-bottom: .2rem; }} .sub {{ color: #5a6475; margin-top: 0; }}
 table {{ border-collapse: collapse; width: 100%; margin: 1rem 0; }}
 th, td {{ border-bottom: 1px solid #dde2ea; padding: .4rem .6rem; text-align: left; font-size: .92rem; }}
 th {{ background: #f3f5f9; }} code {{ background: #f3f5f9; padding: 0 .3rem; }}
 .try {{ border: 1px solid #dde2ea; border-radius: 8px; padding: 1rem; }}
 textarea, input, select {{ width: 100%; box-sizing: border-box; margin: .3rem 0 .8rem; padding: .4rem; font: inherit; }}
 button {{ padding: .5rem 1.2rem; font: inherit; cursor: pointer; }}
 pre {{ background: #f3f5f9; padding: .8rem; white-space: pre-wrap; }}
 details.card {{ border: 1px solid #dde2ea; border-radius: 8px; padding: .4rem 1rem; margin: .6rem 0; }}
 details.card summary {{ cursor: pointer; font-weight: 600; }} details.card table {{ width: auto; }}
 #why span {{ padding: 1px 3px; border-radius: 3px; line-height: 2; }}
</style></head>
<body>
<h1>fmkit serve</h1>
<p class="sub">{count} model(s) served · API docs at <a href="/docs">/docs</a> · metrics at <code>/metrics</code></p>
<table id="models"><thead><tr><th>model</th><th>runtime</th><th>lineage</th><th>labels</th>
<th>test accuracy</th><th>test macro-F1</th><th>p50 latency</th><th>size</th><th>ε</th><th>fairness gap</th>
<th>stability</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Model cards</h2>
{cards}
<div class="try"><h2>Try it</h2>
<label>API key <input id="key" type="password" placeholder="fmk_..."></label>
<label>model <select id="model">{options}</select></label>
<label>text <textarea id="text" rows="3">a warm, funny, beautifully acted film</textarea></label>
<button id="go">Predict</button> <button id="explain">Explain</button>
<pre id="out">the prediction appears here</pre><div id="why"></div></div>
<script>
const models = {models_json};
const out = document.getElementById("out"), why = document.getElementById("why");
async function call(action) {{  // POST the text to /v1/models/NAME:ACTION; null (error shown) unless 2xx
  const name = document.getElementById("model").value;
  const response = await fetch(`/v1/models/${{name}}:${{action}}`, {{
    method: "POST",
    headers: {{"Content-Type": "application/json",
               "Authorization": "Bearer " + document.getElementById("key").value}},
    body: JSON.stringify({{texts: [document.getElementById("text").value]}})}});
  const body = await response.json();
  if (!response.ok) {{ out.textContent = `${{response.status}}: ${{body.error.message}}`; return null; }}
  return body;
}}
document.getElementById("go").addEventListener("click", async () => {{
  const body = await call("predict");
  if (!body) return;
  const p = body.predictions[0];
  out.textContent = `${{p.label}}\\n` + Object.entries(p.probabilities)
    .map(([label, value]) => `  ${{label}}: ${{value.toFixed(4)}}`).join("\\n");
}});
document.getElementById("explain").addEventListener("click", async () => {{
  out.textContent = "explaining..."; why.textContent = "";
  const body = await call("explain");
  if (!body) return;
  const e = body.explanations[0];
  const scale = Math.max(1e-9, ...e.words.map(w => Math.abs(w.attribution)));
  out.textContent = `${{e.label}} (p=${{e.probability.toFixed(3)}}): green pushes towards it, red against`;
  for (const w of e.words) {{
    const span = document.createElement("span");
    const a = Math.min(1, Math.abs(w.attribution) / scale) * 0.75;
    span.style.background = w.attribution >= 0 ? `rgba(22,163,74,${{a}})` : `rgba(220,38,38,${{a}})`;
    span.title = w.attribution.toFixed(4); span.textContent = w.word;
    why.appendChild(span); why.appendChild(document.createTextNode(" "));
  }}
}});
</script></body></html>"""


def _fmt(value, pattern="{:.4f}") -> str:
    return "not measured" if value is None else pattern.format(value)


def render_dashboard(summaries: list[dict], cards: dict[str, str] | None = None) -> str:
    """``cards``: model name -> its model card as an HTML fragment (from the manifest)."""
    rows, options = [], []
    cards = cards or {}
    for summary in summaries:
        test = summary["metrics"].get("test", {})
        bench = summary["benchmarks"].get(summary["runtime"], {})
        size = bench.get("size_bytes")
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in (
                summary["name"], summary["runtime"], " → ".join(summary["lineage"]), ", ".join(summary["labels"]),
                _fmt(test.get("accuracy")), _fmt(test.get("macro_f1")),
                _fmt(bench.get("latency_p50_ms"), "{:.1f} ms"), _fmt(size / 1e6 if size else None, "{:.1f} MB"),
                _fmt(summary["privacy"].get("dp", {}).get("epsilon"), "{:.2f}"), _fmt(_fairness_gap(summary)),
                _fmt(summary.get("audits", {}).get("robustness", {}).get("min_stability_rate")),
            )) + "</tr>")
        options.append(f'<option value="{html.escape(summary["name"])}">{html.escape(summary["name"])}</option>')
    card_html = "".join(f'<details class="card" id="card-{html.escape(name)}"><summary>{html.escape(name)}</summary>'
                        f"{fragment}</details>" for name, fragment in cards.items()) or "<p>no cards</p>"
    return PAGE.format(count=len(summaries), rows="\n".join(rows), options="".join(options), cards=card_html,
                       models_json=json.dumps([s["name"] for s in summaries]))


def _fairness_gap(summary: dict) -> float | None:
    gaps = [v for values in summary.get("audits", {}).get("fairness", {}).values()
            for k, v in values.items() if k.endswith("_difference")]
    return max(gaps) if gaps else None
