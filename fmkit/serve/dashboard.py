"""The /ui page: served models with their metrics and lineage, and a try-it box."""

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
</style></head>
<body>
<h1>fmkit serve</h1>
<p class="sub">{count} model(s) served · API docs at <a href="/docs">/docs</a> · metrics at <code>/metrics</code></p>
<table id="models"><thead><tr><th>model</th><th>runtime</th><th>lineage</th><th>labels</th>
<th>test accuracy</th><th>test macro-F1</th><th>p50 latency</th><th>size</th></tr></thead>
<tbody>{rows}</tbody></table>
<div class="try"><h2>Try it</h2>
<label>API key <input id="key" type="password" placeholder="fmk_..."></label>
<label>model <select id="model">{options}</select></label>
<label>text <textarea id="text" rows="3">a warm, funny, beautifully acted film</textarea></label>
<button id="go">Predict</button>
<pre id="out">the prediction appears here</pre></div>
<script>
const models = {models_json};
document.getElementById("go").addEventListener("click", async () => {{
  const out = document.getElementById("out");
  const name = document.getElementById("model").value;
  const response = await fetch(`/v1/models/${{name}}:predict`, {{
    method: "POST",
    headers: {{"Content-Type": "application/json",
               "Authorization": "Bearer " + document.getElementById("key").value}},
    body: JSON.stringify({{texts: [document.getElementById("text").value]}})}});
  const body = await response.json();
  if (!response.ok) {{ out.textContent = `${{response.status}}: ${{body.error.message}}`; return; }}
  const p = body.predictions[0];
  out.textContent = `${{p.label}}\\n` + Object.entries(p.probabilities)
    .map(([label, value]) => `  ${{label}}: ${{value.toFixed(4)}}`).join("\\n");
}});
</script></body></html>"""


def _fmt(value, pattern="{:.4f}") -> str:
    return "not measured" if value is None else pattern.format(value)


def render_dashboard(summaries: list[dict]) -> str:
    rows, options = [], []
    for summary in summaries:
        test = summary["metrics"].get("test", {})
        bench = summary["benchmarks"].get(summary["runtime"], {})
        size = bench.get("size_bytes")
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in (
                summary["name"], summary["runtime"], " → ".join(summary["lineage"]), ", ".join(summary["labels"]),
                _fmt(test.get("accuracy")), _fmt(test.get("macro_f1")),
                _fmt(bench.get("latency_p50_ms"), "{:.1f} ms"), _fmt(size / 1e6 if size else None, "{:.1f} MB"),
            )) + "</tr>")
        options.append(f'<option value="{html.escape(summary["name"])}">{html.escape(summary["name"])}</option>')
    return PAGE.format(count=len(summaries), rows="\n".join(rows), options="".join(options),
                       models_json=json.dumps([s["name"] for s in summaries]))
