"""The recommender's card (Markdown + HTML), from what its manifest records — never an invented figure.

Sections: the data (source, drops, split sizes, plot summaries joined), the models and how each was
fitted, the evaluation table (test split and cold items), NDCG@10 by user-history length, the items
added since training, and the limits. Rendered with the model card's table and HTML helpers
(fmkit/audit/card.py), served at GET /v1/recommenders/NAME/card.
"""

from __future__ import annotations

from pathlib import Path

COLUMNS = ("ndcg@10", "recall@10", "mrr", "coverage", "cold.ndcg@10", "cold.recall@10", "cold.mrr")


def recommender_sections(description: dict) -> list[str]:
    from fmkit.audit.card import NOT_MEASURED, _number, _table

    def cell(value):
        return _number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else "not measured"

    data = description.get("data") or {}
    facts = data.get("facts") or {}
    interactions = data.get("interactions") or {}
    lines = ["## Data",
             f"Source `{data.get('source')}`: {data.get('items', 'unknown')} items, {data.get('users', 'unknown')} "
             f"users; item text from {', '.join(facts.get('text_columns') or []) or 'no columns'}"
             + (f"; Rotten Tomatoes plot summaries joined for {facts['plots_matched']} items" if
                facts.get("plots_matched") is not None else "") + ".", ""]
    if interactions:
        lines += [_table(["split", "interactions"], [[name, count] for name, count in interactions.items()]), ""]
    drops = data.get("drops") or {}
    if drops:
        lines += [_table(["dropped", "count"], [[name.replace("_", " "), count] for name, count in drops.items()]),
                  ""]
    models = description.get("models") or []
    lines += ["## Models",
              f"{', '.join(f'`{m}`' for m in models) or 'none'}; requests are ranked by `"
              f"{description.get('serving_model')}` unless they name another. Every model is fitted on the train "
              "split; ALS/BPR are tuned and the hybrid ranker trained on the validation slice; seen items are "
              "filtered.", ""]
    evaluation = description.get("evaluation") or {}
    shown = [c for c in COLUMNS if any(c in m for m in evaluation.values())]
    lines += ["## Evaluation",
              "Test split: each user's last 20% of interactions (by time), ranked over the whole catalogue but the "
              "cold items; cold items: 10% of the items, every interaction held out (`cold.*`).", "",
              _table(["model", *shown], [[name, *(cell(metrics.get(c)) for c in shown)]
                                         for name, metrics in evaluation.items()]) if evaluation else NOT_MEASURED,
              ""]
    by_length = description.get("by_history_length") or {}
    if by_length.get("buckets"):
        header = ["model", *(f"{b} ({n})" for b, n in zip(by_length["buckets"], by_length.get("users", [])))]
        lines += ["## NDCG@10 by user-history length", "Columns: items in the user's known history (users).", "",
                  _table(header, [[name, *(cell(v) for v in values)]
                                  for name, values in (by_length.get("ndcg@10") or {}).items()]), ""]
    added = description.get("added_items") or []
    if added:
        lines += ["## Items added since training",
                  _table(["at", "items", "source"], [[a.get("at"), a.get("count"), a.get("source")] for a in added]),
                  "", "Added items are ranked by the text model (and the hybrid, which sees them as cold items); "
                  "the collaborative models score them 0 until the next training.", ""]
    return lines


def render_recommender_markdown(description: dict, name: str) -> str:
    return "\n".join([f"# Recommender card: {name}", f"Built `{description.get('built_at')}` in "
                      f"{description.get('train_seconds', 'unknown')} s.", "", *recommender_sections(description),
                      "## Limitations",
                      "- Figures hold for users and items like those of the data above, split by time; a shop with "
                      "other items or a changed catalogue needs a new evaluation (`fmkit recommend evaluate`).",
                      "- Implicit feedback only: an explicit rating below the threshold is dropped, not used as a "
                      "negative.",
                      "- Sections marked *not measured* carry no evidence either way.", ""])


def write_card(path: Path, manifest: dict) -> tuple[Path, Path]:
    from fmkit.apps.recommend.store import REPORTS_DIR
    from fmkit.audit.card import CARD_HTML, render_html
    from fmkit.fileio import write_text_atomic

    from fmkit.apps.recommend.report import CARD_MD

    name = manifest.get("name", Path(path).name)
    markdown = render_recommender_markdown(manifest, name)
    markdown_path, html_path = Path(path) / REPORTS_DIR / CARD_MD, Path(path) / REPORTS_DIR / CARD_HTML
    write_text_atomic(markdown_path, markdown)
    write_text_atomic(html_path, render_html(markdown, f"Recommender card: {name}"))
    return markdown_path, html_path
