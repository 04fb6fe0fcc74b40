"""Model cards (Markdown + HTML) generated only from a bundle's manifest and lineage.

Every number in a card is read from the manifest; a section the manifest has nothing for says
"not measured" — a card never invents a figure.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

NOT_MEASURED = "_not measured_"
CARD_MD = "MODEL_CARD.md"
CARD_HTML = "card.html"


def _number(value, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(manifest, bundle: Path) -> str:
    lines = [f"# Model card: {bundle.name}", ""]
    for section in SECTIONS:
        lines += section(manifest)
    return "\n".join(lines)


def _intended_use(manifest) -> list[str]:
    return ["## Intended use",
            f"{manifest.task} over the labels {', '.join(f'`{l}`' for l in manifest.labels)}, for text like the "
            f"training data below (at most {manifest.max_length} tokens per text; longer texts are truncated). "
            f"Runs on `{manifest.runtime}`. Base model: `{manifest.base_model.get('name')}`. "
            "Not validated for other languages, domains or labels.", ""]


def _data(manifest) -> list[str]:
    data = manifest.data
    if not data:
        return ["## Data", NOT_MEASURED, ""]
    sizes = data.get("split_sizes", {})
    cleaning = data.get("cleaning", {})
    return ["## Data",
            f"Source `{data.get('source')}` (text column `{data.get('text_column')}`, label column "
            f"`{data.get('label_column')}`), fingerprint `{data.get('fingerprint')}`, split seed "
            f"`{data.get('split_seed')}`.", "",
            _table(["split", "rows"], [[name, count] for name, count in sizes.items()]), "",
            _table(["cleaning", "rows"], [[name.replace("_", " "), count] for name, count in cleaning.items()]), ""]


def _lineage(manifest) -> list[str]:
    lines = ["## Lineage"]
    for index, entry in enumerate(manifest.lineage, start=1):
        lines += [f"### {index}. `{entry.stage}`",
                  f"From `{entry.parent}` (digest `{entry.parent_digest}`), data `{entry.data_fingerprint}`, "
                  f"at `{entry.time}`, fmkit `{entry.fmkit_version}`.", "",
                  "```json", json.dumps(entry.config, indent=2), "```", ""]
    return lines if manifest.lineage else lines + [NOT_MEASURED, ""]


def _metrics(manifest) -> list[str]:
    headline = ("count", "accuracy", "macro_f1", "weighted_f1", "expected_calibration_error")
    rows = [[split] + [_number(values.get(k)) if k in values else "not measured" for k in headline]
            for split, values in manifest.metrics.items()]
    return ["## Metrics", _table(["split", *headline], rows) if rows else NOT_MEASURED, ""]


def _baseline(manifest) -> list[str]:
    """The frozen-feature baseline on the same rows as the model, and the gain over it (or "not measured")."""
    from fmkit.evaluate.baseline import baseline_test_metrics, gain_over_baseline

    record, test = manifest.training.get("baseline") or {}, baseline_test_metrics(manifest)
    if not test:
        return ["## Baseline", NOT_MEASURED + " (a logistic regression on the frozen base model's features)", ""]
    gain = gain_over_baseline(manifest)
    verdict = ("**does not beat it**: fine-tuning did not pay off on this data" if gain is not None and gain <= 0
               else "beats it")
    rows = [[split, _number(values.get("accuracy")), _number(values.get("macro_f1")), values.get("count", "")]
            for split, values in (("validation", record.get("validation")), ("test", test)) if values]
    return ["## Baseline",
            f"{test.get('method') or record.get('method')} (`{test.get('encoder') or record.get('encoder')}`), "
            f"fitted on {test.get('train_rows') or record.get('train_rows')} training rows and scored on the "
            f"model's own held-out rows. Test accuracy: the model {_number(manifest.metrics.get('test', {}).get('accuracy'))}, "
            f"the baseline {_number(test.get('accuracy'))}; the model {verdict}.", "",
            _table(["split", "baseline accuracy", "baseline macro-F1", "rows"], rows), ""]


def _compression(manifest) -> list[str]:
    c = manifest.compression
    if not c:
        return ["## Compression", NOT_MEASURED, ""]
    reference = c.get("reference") or {}
    return ["## Compression",
            _table(["method", "parent test accuracy", "drop this step (points)", "task model test accuracy",
                    "total drop (points)", "budget (points)", "status"],
                   [[c.get("method"), _number(c.get("parent_test_accuracy")), _number(c.get("accuracy_drop_points")),
                     *(_number(v) if v is not None else "not recorded"
                       for v in (reference.get("test_accuracy"), c.get("total_accuracy_drop_points"))),
                     f"{_number(c.get('max_accuracy_drop_points'))} ({c.get('accuracy_budget', 'step')})",
                     c.get("status")]]), ""]


def _privacy(manifest) -> list[str]:
    dp, mia = manifest.privacy.get("dp"), manifest.privacy.get("membership_inference")
    return ["## Privacy",
            _table(["ε", "δ", "accountant"], [[_number(dp.get("epsilon")), dp.get("delta"), dp.get("accountant")]])
            if dp else "Differential privacy: " + NOT_MEASURED + " (trained without DP-SGD).", "",
            _table(["attack AUC"], [[_number(mia.get("auc"))]]) if mia else
            "Membership-inference attack: " + NOT_MEASURED + ".", ""]


def _fairness(manifest) -> list[str]:
    return ["## Fairness", *_fairness_section(manifest.audits.get("fairness"))]


def _counterfactual(manifest) -> list[str]:
    cf = manifest.audits.get("counterfactual")
    if not (cf and cf.get("pairs")):
        return ["## Counterfactual fairness", NOT_MEASURED if not cf else "No audited sentence held an identity term.",
                ""]
    return ["## Counterfactual fairness",
            f"Identity terms swapped in {cf['swapped']} sentences of {cf['sentences']} (`{cf.get('split')}` "
            f"split): label flip rate {_number(cf['flip_rate'])}, mean absolute probability shift "
            f"{_number(cf['mean_absolute_shift'])}.", "",
            _table(["pair", "category", "sentences", "flip rate", "mean shift"],
                   [[f"`{name}`", v["category"], v["sentences"], _number(v["flip_rate"]),
                     _number(v["mean_probability_shift"])] for name, v in list(cf["pairs"].items())[:12]]), ""]


def _robustness(manifest) -> list[str]:
    robustness = manifest.audits.get("robustness")
    if not (robustness and robustness.get("perturbations")):
        return ["## Robustness", NOT_MEASURED, ""]
    return ["## Robustness",
            _table(["perturbation", "stability rate", "accuracy", "mean shift"],
                   [[name, _number(v["stability_rate"]), _number(v.get("accuracy")) if "accuracy" in v else "",
                     _number(v["mean_absolute_shift"])] for name, v in robustness["perturbations"].items()]), ""]


def _pii(manifest) -> list[str]:
    pii = manifest.audits.get("pii")
    if not pii:
        return ["## PII in evaluation inputs", NOT_MEASURED, ""]
    return ["## PII in evaluation inputs",
            f"{pii['texts_with_pii']} of {pii['texts']} audited texts hold PII "
            f"({', '.join(f'{k}: {v}' for k, v in pii['entities'].items()) or 'none found'}); person and "
            f"location names {'were' if pii.get('names_checked') else 'were NOT'} checked.", ""]


def _explanations(manifest) -> list[str]:
    explanations = manifest.audits.get("explanations")
    if not explanations:
        return ["## Explanations", NOT_MEASURED, ""]
    faith = explanations.get("faithfulness", {})
    lines = ["## Explanations",
             f"{explanations['method']}, {explanations['texts']} texts, mean completeness error "
             f"{_number(explanations['mean_abs_convergence_delta'])}. Deleting the top "
             f"{faith.get('k')} attributed words lowers the explained class's probability by "
             f"{_number(faith.get('mean_drop_top_k'))} on average vs {_number(faith.get('mean_drop_random_k'))}"
             f" for random words.", ""]
    for label, words in explanations.get("top_words", {}).items():
        lines.append(f"- top words for `{label}`: " + ", ".join(f"`{w['word']}`" for w in words[:8]))
    return lines + [""]


def _postprocess(manifest) -> list[str]:
    rule = manifest.postprocess
    if not rule:
        return []
    return ["## Post-processing",
            f"Decisions use per-group thresholds (`{rule.get('method')}`, `{rule.get('constraint')}`) on "
            f"`{rule.get('attribute')}`: **the group must be supplied at prediction time**; a text-only "
            "runtime refuses this bundle.", ""]


def _benchmarks(manifest) -> list[str]:
    rows = [[runtime, _number(f.get("latency_p50_ms"), 2), _number(f.get("latency_p95_ms"), 2),
             _number(f.get("throughput_per_second"), 1), f.get("size_bytes"), _number(f.get("peak_rss_mb"), 1),
             f"`{f.get('measured')}`"] for runtime, f in manifest.benchmarks.items()]
    return ["## Runtime benchmarks",
            _table(["runtime", "p50 ms", "p95 ms", "texts/s", "bytes", "peak RSS MB", "measured"], rows)
            if rows else NOT_MEASURED, ""]


def _limitations(manifest) -> list[str]:
    return ["## Limitations",
            "- Metrics hold for data like the test split above; a shift in domain, length or label mix needs "
            "a new evaluation (`fmkit evaluate BUNDLE --data NEW --split all`).",
            "- Sections marked *not measured* carry no evidence either way.",
            f"- Content digest `{manifest.content_digest}`; `fmkit info` re-checks every file.", ""]


# The card's sections in order; each reads the manifest and returns its lines.
SECTIONS = (_intended_use, _data, _lineage, _metrics, _baseline, _compression, _privacy, _fairness, _counterfactual,
            _robustness, _pii, _explanations, _postprocess, _benchmarks, _limitations)


def _fairness_section(fairness) -> list[str]:
    if not fairness:
        return [NOT_MEASURED, ""]
    lines = []
    for attribute, values in fairness.items():
        if not isinstance(values, dict) or "groups" not in values:
            continue
        lines += [f"**{attribute}** (favourable label `{values['positive_label']}`, {values['rows']} rows of the "
                  f"`{values.get('split')}` split)", "",
                  _table(["group", "count", "accuracy", "selection rate", "TPR", "FPR"],
                         [[group, g["count"], *[_number(g[k]) if g[k] is not None else "n/a"
                                                for k in ("accuracy", "selection_rate", "tpr", "fpr")]]
                          for group, g in values["groups"].items()]), ""]
        intervals = values.get("confidence_intervals", {})
        rows = [[metric.replace("_", " "), _number(values[metric]),
                 f"{_number(intervals[metric][0])} – {_number(intervals[metric][1])}" if metric in intervals else ""]
                for metric in ("demographic_parity_difference", "demographic_parity_ratio",
                               "equalized_odds_difference", "accuracy_difference") if metric in values]
        if rows:
            lines += [_table(["gap", "value", "bootstrap interval"], rows), ""]
        if values.get("excluded_small_groups"):
            lines += [f"Groups under {values['min_group_size']} rows, left out of the gaps: "
                      f"{', '.join(values['excluded_small_groups'])}.", ""]
    return lines or [NOT_MEASURED, ""]


def render_html(markdown_text: str, title: str) -> str:
    """The card as a standalone HTML page."""
    style = ("body{font-family:system-ui,sans-serif;max-width:960px;margin:2rem auto;color:#1d2430}"
             "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #dde2ea;padding:.3rem .6rem}"
             "th{background:#f3f5f9}pre{background:#f3f5f9;padding:.8rem;overflow:auto}code{background:#f3f5f9}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>" + markdown_to_html(markdown_text) + "</body></html>")


def markdown_to_html(markdown_text: str) -> str:
    """A small, dependency-free Markdown subset -> an HTML fragment (headings, tables, code, lists, paragraphs)."""
    body, in_code, table = [], False, []

    def flush_table():
        if table:
            head, *rest = table
            body.append("<table><thead><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr></thead><tbody>"
                        + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rest)
                        + "</tbody></table>")
            table.clear()

    def inline(text: str) -> str:
        import re

        text = html.escape(text)
        text = re.sub(r"`([^`]*)`", r"<code>\1</code>", text)
        return re.sub(r"_([^_]+)_", r"<em>\1</em>", text)

    for line in markdown_text.splitlines():
        if line.startswith("```"):
            flush_table()
            body.append("<pre>" if not in_code else "</pre>")
            in_code = not in_code
        elif in_code:
            body.append(html.escape(line))
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                table.append([inline(c) for c in cells])
        else:
            flush_table()
            if line.startswith("#"):
                level = len(line) - len(line.lstrip("#"))
                body.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
            elif line.startswith("- "):
                body.append(f"<li>{inline(line[2:])}</li>")
            elif line.strip():
                body.append(f"<p>{inline(line)}</p>")
    flush_table()
    return "\n".join(body)


def assistant_sections(description: dict) -> list[str]:
    """The card sections of a support assistant, from ``Assistant.describe()`` (fmkit/apps/assistant):
    what it was built from, how well it retrieves, and when it hands off. Figures come only from the
    description; what it lacks says "not measured"."""
    encoder, faq = description.get("encoder") or {}, description.get("faq") or {}
    documents, intent = description.get("documents") or {}, description.get("intent")
    retrieval, handoff = description.get("retrieval") or {}, description.get("handoff") or {}
    lines = ["## Trained on",
             f"FAQ `{faq.get('source')}`: {faq.get('rows', 'unknown')} question-answer pairs"
             + (f" in {faq['categories']} categories" if faq.get("categories") else "")
             + (f", {faq['duplicate_questions']} questions asked with different answers (all kept)"
                if faq.get("duplicate_questions") else "") + ".",
             f"Encoder `{encoder.get('name')}` (digest `{encoder.get('digest')}`, runtime `{encoder.get('runtime')}`).",
             f"Documents: {documents.get('files', 0)} files in {documents.get('chunks', 0)} chunks.", ""]
    if intent:
        accuracy = intent.get("test_accuracy")
        lines += [f"Intent: bundle `{intent.get('bundle')}`, {intent.get('labels')} labels, test accuracy "
                  f"{_number(accuracy) if isinstance(accuracy, (int, float)) else 'not measured'}.", ""]
    metrics = retrieval.get("metrics") or {}
    names = [name for name in ("mrr@10", "recall@1", "recall@5", "recall@10", "ndcg@10") if name in metrics]
    index = description.get("index") or {}
    lines += ["## Retrieval",
              f"Mode `{retrieval.get('mode')}`" + (" routed by intent" if retrieval.get("route_by_intent") else "")
              + f"; {index.get('entries', 'unknown')} index entries searched `{index.get('search')}`; measured on "
              f"{metrics.get('questions', 'unknown')} {retrieval.get('measured_on', 'questions')}.", "",
              _table(names, [[_number(metrics[name]) for name in names]]) if names else NOT_MEASURED, ""]
    shown = ("threshold", "target_precision", "precision", "coverage", "calibration_questions")
    lines += ["## Handoff",
              "Below the threshold the assistant hands the customer to a person instead of answering; the "
              f"threshold was chosen on {handoff.get('calibration_source', 'unrecorded questions')}.", "",
              _table(list(shown), [[_number(handoff.get(k)) if handoff.get(k) is not None else "not measured"
                                    for k in shown]]) if handoff else NOT_MEASURED, ""]
    evaluation = description.get("evaluation")
    if isinstance(evaluation, dict):
        measured = [k for k, v in evaluation.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        lines += ["## Last evaluation", _table(measured, [[_number(evaluation[k]) for k in measured]])
                  if measured else NOT_MEASURED, ""]
    return lines


def render_assistant_markdown(description: dict, name: str) -> str:
    return "\n".join([f"# Assistant card: {name}", f"Built `{description.get('built_at')}`.", "",
                      *assistant_sections(description),
                      "## Limitations",
                      "- Figures hold for questions like the calibration questions above; new topics need a new "
                      "evaluation (`fmkit assistant evaluate`).",
                      "- Sections marked *not measured* carry no evidence either way.", ""])


def write_card(bundle: Path) -> tuple[Path, Path]:
    from fmkit.bundle import read_manifest
    from fmkit.bundle.store import REPORTS_DIR
    from fmkit.fileio import write_text_atomic

    bundle = Path(bundle)
    markdown_text = render_markdown(read_manifest(bundle), bundle)
    markdown_path, html_path = bundle / REPORTS_DIR / CARD_MD, bundle / REPORTS_DIR / CARD_HTML
    write_text_atomic(markdown_path, markdown_text)
    write_text_atomic(html_path, render_html(markdown_text, f"Model card: {bundle.name}"))
    return markdown_path, html_path
