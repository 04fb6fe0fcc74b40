"""``fmkit report RUN_DIR``: one static HTML page putting every bundle of a run on the same frontier.

Columns: test accuracy, accuracy drop vs the parent (this step) and vs the lineage's task model (in
total), the frozen-feature baseline's test accuracy beside the model's (fmkit/evaluate/baseline.py), latency p50/p95 and
throughput on each bundle's own runtime, size, privacy budget ε, largest
fairness gap, membership-inference AUC, robustness and counterfactual flip rate -- every number read from a manifest ("not measured" otherwise). Plots
(PNG beside the page): accuracy vs latency with the Pareto frontier marked, and size per bundle.

A ``fmkit tune`` folder (``study.json`` beside ``trials/``) adds the search: each trial bundle's objective
values, ◆ on the study's Pareto front (several objectives) or its best trial (one), and a section
listing them -- the front of the objectives the study optimised, next to the accuracy/latency frontier.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from fmkit.errors import BadInputError

REPORT_DIR = "report"

# key, header, format, tooltip
COLUMNS = [
    ("name", "bundle", "{}", "bundle directory; ★ = on the accuracy/latency Pareto frontier"),
    ("stage", "last stage", "{}", "the stage that made it"),
    ("parent", "parent", "{}", "the bundle it came from"),
    ("runtime", "runtime", "{}", "what runs it"),
    ("test_accuracy", "test acc", "{:.4f}", "accuracy on the held-out test split"),
    ("accuracy_drop_points", "step drop (pts)", "{:+.2f}", "accuracy points lost by the last compression vs its parent"),
    ("total_accuracy_drop_points", "total drop (pts)", "{:+.2f}",
     "accuracy points lost vs the lineage's task model (the last ancestor that is not a compression); what budgets "
     "and gates bound"),
    ("baseline_test_accuracy", "baseline acc", "{:.4f}",
     "test accuracy of the baseline beside the model's: a logistic regression on the frozen base model's features, "
     "fitted on the training split and scored on the same test rows (above test acc: fine-tuning did not pay off; "
     "the gate's min_gain_over_baseline bounds the difference)"),
    ("latency_p50_ms", "p50 ms", "{:.2f}", "median latency at batch 1 on its runtime"),
    ("latency_p95_ms", "p95 ms", "{:.2f}", "95th-percentile latency at batch 1"),
    ("throughput_per_second", "texts/s", "{:.1f}", "throughput at batch 32"),
    ("size_mb", "size MB", "{:.1f}", "model files on disk"),
    ("epsilon", "ε", "{:.2f}", "differential-privacy budget spent (DP-SGD)"),
    ("fairness_gap", "fairness gap", "{:.4f}", "largest demographic-parity / equalized-odds / accuracy gap"),
    ("mia_auc", "MIA AUC", "{:.4f}", "membership-inference attack AUC (0.5 = no leakage)"),
    ("min_stability_rate", "stability", "{:.4f}", "lowest prediction stability under input noise"),
    ("counterfactual_flip_rate", "CF flips", "{:.4f}", "share of identity-term swaps that flip the label"),
    ("status", "status", "{}", "compression budget status"),
    ("search", "search", "{}", "fmkit tune: the trial's objective values; ◆ = on the study's Pareto front (several "
     "objectives) or its best trial (one)"),
]


def find_bundles(run_dir: Path) -> list[Path]:
    """Bundles in ``run_dir`` (itself, its children and grandchildren), in lineage order."""
    from fmkit.bundle import is_bundle

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadInputError(f"{run_dir} is not a directory; pass a run directory (runs/NAME) or a folder of bundles")
    candidates = [run_dir] + sorted(run_dir.glob("*")) + sorted(run_dir.glob("*/*"))
    bundles = [p for p in candidates if p.is_dir() and is_bundle(p)]
    if not bundles:
        raise BadInputError(f"no bundle (directory with fmkit.json) in {run_dir} or the folders below it")
    return bundles


def _fairness_gap(manifest) -> float | None:
    from fmkit.audit.gate import MEASURES

    return MEASURES["max_fairness_gap"](manifest)


def report_rows(bundles: list[Path], *, measure: bool = True, threads: int | None = None) -> list[dict]:
    from fmkit.bundle import read_manifest
    from fmkit.compress.compare import compare_bundles
    from fmkit.evaluate.baseline import baseline_test_metrics

    rows = compare_bundles([str(b) for b in bundles], measure=measure, threads=threads)
    by_digest = {}
    for row, path in zip(rows, bundles):
        manifest = read_manifest(path)
        by_digest[manifest.content_digest] = path.name
        parent = manifest.lineage[-1] if manifest.lineage else None
        row.update({
            "name": path.name,
            "parent_digest": parent.parent_digest if parent else None,
            "parent": Path(parent.parent).name if parent and parent.parent else None,
            "fairness_gap": _fairness_gap(manifest),
            "baseline_test_accuracy": (baseline_test_metrics(manifest) or {}).get("accuracy"),
            "mia_auc": manifest.privacy.get("membership_inference", {}).get("auc"),
            "min_stability_rate": manifest.audits.get("robustness", {}).get("min_stability_rate"),
            "counterfactual_flip_rate": manifest.audits.get("counterfactual", {}).get("flip_rate"),
            "lineage": [entry.stage for entry in manifest.lineage],
            "content_digest": manifest.content_digest,
            "postprocess": bool(manifest.postprocess),
        })
    return rows


def _cell(row: dict, key: str, fmt: str) -> tuple[str, str]:
    value = row.get(key)
    if value is None:
        return "not measured" if key not in ("parent", "stage") else "–", ""
    text = fmt.format(value)
    if key == "name" and row.get("pareto"):
        text = "★ " + text
    if key == "name" and row.get("search_chosen"):
        text = "◆ " + text
    return text, (str(value) if isinstance(value, (int, float)) else text)


def _plots(rows: list[dict], directory: Path) -> list[str]:
    from fmkit.compress.compare import pareto_plot

    names = []
    plot_rows = [{**r, "bundle": r["name"]} for r in rows]
    if pareto_plot(plot_rows, directory / "frontier.png"):
        names.append("frontier.png")
    sized = [r for r in rows if r.get("size_mb") is not None]
    if sized:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(7, 0.5 + 0.35 * len(sized)))
        axes.barh([r["name"] for r in sized], [r["size_mb"] for r in sized], color="tab:blue", alpha=0.7)
        axes.invert_yaxis()
        axes.set_xlabel("size on disk (MB)")
        figure.tight_layout()
        figure.savefig(directory / "sizes.png", dpi=110)
        plt.close(figure)
        names.append("sizes.png")
    return names


def mark_search(rows: list[dict], run_dir: Path) -> dict | None:
    """Annotate the trial bundles of a ``fmkit tune`` folder with their study values; returns the study summary."""
    from fmkit.tune.report import chosen, read_summary

    summary = read_summary(run_dir)
    if summary is None:
        return None
    names = summary.get("objectives") or []
    marked = set(chosen(summary))
    by_digest = {t["content_digest"]: t for t in summary["trials"] if t.get("content_digest")}
    for row in rows:
        trial = by_digest.get(row["content_digest"])
        if trial is None or not trial.get("values"):
            continue
        row["name"] = f"trial {trial['number']}"
        row["search_chosen"] = trial["number"] in marked
        row["search"] = ", ".join(f"{name.split(':')[0]} {value:.4g}" for name, value in zip(names, trial["values"]))
    return summary


def _search_section(summary: dict | None) -> str:
    if summary is None:
        return ""
    from fmkit.tune.report import chosen

    label = "Pareto front" if "front" in summary else "best trial"
    by_number = {t["number"]: t for t in summary["trials"]}
    items = "".join(
        f"<li><b>trial {number}</b>: " + html.escape(", ".join(
            f"{name} {value:.4g}" for name, value in zip(summary["objectives"], by_number[number]["values"])))
        + " · " + html.escape(", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in by_number[number]["params"].items())) + "</li>"
        for number in chosen(summary))
    counts = ", ".join(f"{n} {state.lower()}" for state, n in summary["counts"].items())
    return (f"<h2>Search (fmkit tune)</h2><p>Study <code>{html.escape(summary['study'])}</code>: objectives "
            f"{html.escape(', '.join(summary['objectives']))}; {counts}; {summary['cost']['trial_seconds']} s of trials. "
            f"◆ marks its {label} (validation figures; the table's test accuracy was not used to choose). "
            f"<a href='../study.html'>study.html</a></p><ul>{items}</ul>")


def render_report(rows: list[dict], title: str, plots: list[str], search: dict | None = None) -> str:
    header = "".join(f"<th title='{html.escape(tip)}' onclick='sortBy({i})'>{html.escape(head)}</th>"
                     for i, (_, head, _, tip) in enumerate(COLUMNS))
    body = []
    for row in rows:
        cells = []
        for key, _, fmt, _ in COLUMNS:
            text, sort_key = _cell(row, key, fmt)
            css = " class='nm'" if text == "not measured" else ""
            cells.append(f"<td data-sort='{html.escape(sort_key)}'{css}>{html.escape(text)}</td>")
        body.append(f"<tr class='{'pareto' if row.get('pareto') else ''}'>" + "".join(cells) + "</tr>")
    lineage = "".join(
        f"<li><b>{html.escape(r['name'])}</b>: {' → '.join(html.escape(s) for s in r['lineage']) or 'base'}"
        f"{' (parent ' + html.escape(r['parent']) + ')' if r.get('parent') else ''} · digest "
        f"<code>{html.escape(r['content_digest'])}</code>"
        f"{' · needs group columns at prediction time' if r.get('postprocess') else ''}</li>" for r in rows)
    images = "".join(f"<img src='{name}' alt='{name}'>" for name in plots)
    style = ("body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2430}table{border-collapse:collapse;"
             "font-size:.85rem}td,th{border:1px solid #dde2ea;padding:.3rem .5rem;text-align:right}"
             "td:first-child,th:first-child,td:nth-child(2),td:nth-child(3),td:nth-child(4){text-align:left}"
             "th{background:#f3f5f9;cursor:pointer;position:sticky;top:0}tr.pareto td:first-child{font-weight:600;"
             "color:#1d4ed8}.nm{color:#9aa3af;font-style:italic}img{max-width:48%;margin:1rem .5rem 0 0;"
             "border:1px solid #e5e7eb}code{font-size:.75rem}")
    script = ("function sortBy(c){const t=document.getElementById('frontier'),b=t.tBodies[0],"
              "r=[...b.rows],d=t.dataset.dir==c?-1:1;t.dataset.dir=d==1?c:'';r.sort((x,y)=>{const a=x.cells[c]"
              ".dataset.sort,e=y.cells[c].dataset.sort,n=parseFloat(a),m=parseFloat(e);if(a===''&&e!=='')return 1;"
              "if(e===''&&a!=='')return -1;return d*(isNaN(n)||isNaN(m)?a.localeCompare(e):n-m)});"
              "r.forEach(x=>b.appendChild(x))}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style><script>{script}</script></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{len(rows)} bundles. Every figure is read from a bundle's manifest; click a header to sort. "
            "★ marks the accuracy/latency (p50, batch 1) Pareto frontier.</p>"
            f"<table id='frontier'><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"{images}{_search_section(search)}<h2>Lineage</h2><ul>{lineage}</ul></body></html>")


def write_report(run_dir: Path, *, out: Path | None = None, measure: bool = True,
                 threads: int | None = None) -> tuple[Path, list[dict]]:
    from fmkit.fileio import write_json_atomic, write_text_atomic

    run_dir = Path(run_dir)
    bundles = find_bundles(run_dir)
    rows = report_rows(bundles, measure=measure, threads=threads)
    directory = Path(out) if out else run_dir / REPORT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    search = mark_search(rows, run_dir)
    plots = _plots(rows, directory)
    page = directory / "index.html"
    write_text_atomic(page, render_report(rows, f"fmkit report: {run_dir.resolve().name}", plots, search))
    write_json_atomic(directory / "report.json", json.loads(json.dumps(rows, default=str)))
    return page, rows
