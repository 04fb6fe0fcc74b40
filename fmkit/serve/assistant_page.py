"""The chat page of a served assistant (/ui/assistants/NAME): a shell with no data in it, not even
whether NAME is served. Like /ui it asks for an API key (kept in the tab's sessionStorage under the
same name, so one key serves both pages), reads the assistant's name from its own URL, and posts
each question to /v1/assistants/NAME:ask with that key. Each turn shows the answer (or the handoff
message), the calibrated confidence, the intent, the handoff state and the sources it rests on.

Everything from the server is written with textContent: an answer is data, never markup.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fmkit assistant</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2rem auto; color: #1d2430; max-width: 860px; padding: 0 1rem; }
 h1 { margin-bottom: .2rem; } .sub { color: #5a6475; margin-top: 0; }
 .login, .ask { border: 1px solid #dde2ea; border-radius: 8px; padding: 1rem; margin: 1rem 0; }
 textarea, input { width: 100%; box-sizing: border-box; margin: .3rem 0 .8rem; padding: .4rem; font: inherit; }
 button { padding: .5rem 1.2rem; font: inherit; cursor: pointer; }
 .turn { border-left: 4px solid #2563eb; padding: .4rem .9rem; margin: .8rem 0; background: #f7f9fc; }
 .turn.handoff { border-color: #d97706; } .turn.error { border-color: #dc2626; }
 .question { font-weight: 600; } .answer { white-space: pre-wrap; margin: .4rem 0; }
 .facts { color: #5a6475; font-size: .9rem; } .facts span { margin-right: 1rem; }
 .badge { padding: 1px 6px; border-radius: 4px; font-size: .85rem; }
 .badge.answered { background: #dcfce7; } .badge.handoff { background: #fef3c7; } .badge.generated { background: #dbeafe; }
 ol.sources { font-size: .88rem; margin: .3rem 0; } ol.sources li { margin: .2rem 0; }
</style></head>
<body>
<h1>Assistant <span id="name"></span></h1>
<p class="sub">answers from approved answers, says when it does not know · <a href="/ui">all models</a></p>
<div class="login"><label>API key <input id="key" type="password" placeholder="fmk_..." autocomplete="off"></label>
<button id="connect">Use this key</button> <span id="status">enter an API key to ask</span></div>
<div id="log"></div>
<div class="ask"><label>your question <textarea id="question" rows="2"></textarea></label>
<button id="ask">Ask</button></div>
<script>
const $ = id => document.getElementById(id);
const name = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const keyBox = $("key"), log = $("log");
$("name").textContent = name; document.title = "fmkit assistant: " + name;
keyBox.value = sessionStorage.getItem("fmkit-key") || "";
const headers = () => ({"Content-Type": "application/json", "Authorization": "Bearer " + keyBox.value});
function add(parent, tag, text, className) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  if (className) node.className = className;
  parent.appendChild(node); return node;
}
async function connect() {  // checks the key against this assistant: GET /v1/assistants lists what it may use
  sessionStorage.setItem("fmkit-key", keyBox.value);
  const response = await fetch("/v1/assistants", {headers: headers()});
  const body = await response.json();
  if (!response.ok) { $("status").textContent = `${response.status}: ${body.error.message}`; return; }
  const mine = body.find(a => a.name === name);
  $("status").textContent = mine ? "ready: ask a question" : `this key may not use an assistant named ${name}`;
}
function turnFor(question) {
  const turn = add(log, "div", null, "turn");
  add(turn, "div", question, "question");
  return turn;
}
function show(turn, body) {
  const state = body.generated ? "generated" : body.handoff ? "handoff" : "answered";
  turn.className = "turn " + (body.handoff ? "handoff" : "answered"); turn.dataset.state = state;
  add(turn, "div", body.handoff ? (body.handoff_message || "I will pass you to a person.") : body.answer, "answer");
  const facts = add(turn, "div", null, "facts");
  add(facts, "span", {answered: "answered from the FAQ", generated: "drafted from the sources below",
                      handoff: "handed off to a person"}[state], "badge " + state);
  add(facts, "span", "confidence " + (body.confidence == null ? "n/a" : body.confidence.toFixed(2)), "confidence");
  if (body.intent) add(facts, "span", `intent ${body.intent.label} (${body.intent.probability.toFixed(2)})`, "intent");
  if (body.generation && body.generation.refused) add(facts, "span", "draft refused: " + body.generation.reason, "refusal");
  const cited = body.generated ? body.sources.map(s => s.id) : null;
  const matches = (body.matches || []).filter(m => !cited || cited.includes(m.id));
  if (matches.length) {
    add(turn, "div", body.generated ? "sources" : "closest approved answers", "facts");
    const list = add(turn, "ol", null, "sources");
    for (const m of matches.slice(0, 3)) {
      const item = add(list, "li");
      add(item, "span", m.question ? `${m.question} — ` : "");
      add(item, "span", m.text);
      add(item, "span", `  (${m.source || m.kind || "faq"} ${m.id}, score ${m.score.toFixed(3)})`, "facts");
    }
  }
}
async function ask() {
  const question = $("question").value.trim();
  if (!question) return;
  sessionStorage.setItem("fmkit-key", keyBox.value);
  const turn = turnFor(question), waiting = add(turn, "div", "…", "answer");
  $("question").value = "";
  try {
    const response = await fetch(`/v1/assistants/${encodeURIComponent(name)}:ask`,
                                 {method: "POST", headers: headers(), body: JSON.stringify({question})});
    const body = await response.json();
    waiting.remove();
    if (!response.ok) { turn.className = "turn error"; turn.dataset.state = "error";
                        add(turn, "div", `${response.status}: ${body.error.message}`, "answer"); return; }
    show(turn, body);
  } catch (error) { waiting.textContent = "the server did not answer: " + error; turn.className = "turn error"; }
}
$("connect").addEventListener("click", connect);
keyBox.addEventListener("keydown", event => { if (event.key === "Enter") connect(); });
$("ask").addEventListener("click", ask);
$("question").addEventListener("keydown", event => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); ask(); } });
if (keyBox.value) connect();
</script></body></html>"""
