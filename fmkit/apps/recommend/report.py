"""A recommender's report: the evaluation table and NDCG@10 per model and per user-history length.

Written into ``reports/`` (outside the directory's digest: re-evaluating does not change what the
recommender is): evaluation.json (every figure), ndcg.png (the two plots), report.html (the table
and the plot), and the card (RECOMMENDER_CARD.md, card.html). Every number comes from the
evaluation it is given, or the one recorded in the manifest at training.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from fmkit.errors import BadInputError

TABLE_COLUMNS = ("ndcg@10", "recall@10", "mrr", "coverage", "users", "cold.ndcg@10", "cold.recall@10", "cold.mrr",
                 "cold.coverage", "cold.users", "score_ms_per_user")
PLOT = "ndcg.png"
REPORT_HTML = "report.html"
EVALUATION_JSON = "evaluation.json"
CARD_MD = "RECOMMENDER_CARD.md"


def plot_ndcg(evaluation: dict, by_length: dict, out: Path) -> None:
    """Left: NDCG@10 per model (test and cold items); right: NDCG@10 per user-history length, one line a model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(evaluation)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    positions = np.arange(len(names))
    test = [evaluation[n].get("ndcg@10") or 0.0 for n in names]
    cold = [evaluation[n].get("cold.ndcg@10") or 0.0 for n in names]
    left.bar(positions - 0.2, test, 0.4, label="test split", color="#1f77b4")
    left.bar(positions + 0.2, cold, 0.4, label="cold items", color="#ff7f0e")
    left.set_xticks(positions, names, rotation=20)
    left.set_ylabel("NDCG@10")
    left.set_title("NDCG@10 per model")
    left.legend()
    left.grid(axis="y", alpha=0.3)
    buckets = by_length.get("buckets", [])
    for name, values in by_length.get("ndcg@10", {}).items():
        right.plot(range(len(buckets)), [np.nan if v is None else v for v in values], marker="o", label=name)
    labels = [f"{b}\n({n} users)" for b, n in zip(buckets, by_length.get("users", []))]
    right.set_xticks(range(len(buckets)), labels, fontsize=8)
    right.set_xlabel("items in the user's history (train + valid)")
    right.set_ylabel("NDCG@10 (test)")
    right.set_title("NDCG@10 per user-history length")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, format="png")
    plt.close(figure)


def table_html(evaluation: dict) -> str:
    columns = [c for c in TABLE_COLUMNS if any(c in m for m in evaluation.values())]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join("<tr><th>" + html.escape(name) + "</th>" + "".join(
        f"<td>{'' if metrics.get(c) is None else html.escape(str(metrics.get(c)))}</td>" for c in columns) + "</tr>"
        for name, metrics in evaluation.items())
    return f"<table><tr><th>model</th>{head}</tr>{rows}</table>"


def write_report(path, result: dict | None = None) -> Path:
    """Write reports/ for recommender ``path`` from ``result`` (default: the evaluation in its manifest)."""
    import json

    from fmkit.apps.recommend.card import write_card
    from fmkit.apps.recommend.store import MANIFEST, REPORTS_DIR
    from fmkit.fileio import atomic_file, write_json_atomic, write_text_atomic

    path = Path(path)
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    result = result or {key: manifest.get(key) for key in ("evaluation", "by_history_length", "evaluated_at")}
    reports = path / REPORTS_DIR
    try:
        reports.mkdir(exist_ok=True)
    except OSError as error:
        raise BadInputError(f"cannot write the report into {reports} ({error.strerror})") from None
    plot = reports / PLOT
    with atomic_file(plot) as tmp:
        plot_ndcg(result["evaluation"], result.get("by_history_length") or {}, tmp)
    write_json_atomic(reports / EVALUATION_JSON, {key: result.get(key) for key in
                                                  ("evaluation", "by_history_length", "evaluated_at")})
    image = base64.b64encode(plot.read_bytes()).decode("ascii")
    name = html.escape(manifest.get("name", path.name))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Recommender report: {name}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
            f"<h1>Recommender report: {name}</h1><p>Evaluated {html.escape(str(result.get('evaluated_at')))} on the "
            "stored test split (every model the same users, histories and masks; seen items filtered) and on the "
            "cold items (held out of every split but their own).</p>"
            f"{table_html(result['evaluation'])}<p><img alt='NDCG@10 per model and per history length' "
            f"src='data:image/png;base64,{image}'></p></body></html>")
    write_text_atomic(reports / REPORT_HTML, page)
    write_card(path, manifest | {k: v for k, v in result.items() if k in ("evaluation", "by_history_length")})
    return reports / REPORT_HTML
