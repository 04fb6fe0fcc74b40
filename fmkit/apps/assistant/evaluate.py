"""``fmkit assistant evaluate``: held-out questions through ``ask``, against an index of every answer.

Reports what the issue names (mrr@10, recall@1, recall@5, handoff_rate, accuracy_answered: the
precision of the answered questions), every retrieval way measured side by side, the
coverage/precision curve (JSON and a PNG) and the latency of ``ask`` itself (p50/p99, one
question at a time, as a customer asks).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError


def evaluate_assistant(assistant, data: str, question_column: str, answer_column: str, *,
                       write_report: bool = True) -> dict:
    from fmkit.apps.assistant.build import gold_entries, measure_ways
    from fmkit.apps.assistant.confidence import coverage_precision, ranking_metrics
    from fmkit.apps.assistant.faq import read_faq

    held_out = read_faq(data, question_column, answer_column)
    retriever = assistant.retriever
    gold = gold_entries(retriever.entries, held_out.answers)
    missing = int((gold < 0).sum())
    if missing:
        warnings.warn(f"{data}: {missing} question(s) have an answer that is not in the assistant's index; they "
                      "count as misses (the index should hold every approved answer)", stacklevel=2)
    questions = [assistant.check_question(q) for q in held_out.questions]
    replies, seconds = [], []
    for question in questions:  # one at a time, the way a customer asks: this is the latency that matters
        started = time.perf_counter()
        replies.append(assistant.ask(question, top_k=10))
        seconds.append(time.perf_counter() - started)
    ids = [entry["id"] for entry in retriever.entries]
    ranks = np.array([next((m["rank"] for m in reply["matches"] if g >= 0 and m["id"] == ids[g]), 0)
                      for reply, g in zip(replies, gold)])
    confidence = np.array([reply["confidence"] for reply in replies])
    correct = np.array([g >= 0 and bool(reply["matches"]) and reply["matches"][0]["id"] == ids[g]
                        for reply, g in zip(replies, gold)])
    answered = np.array([not reply["handoff"] for reply in replies])
    routes = (False, True) if retriever.intent is not None else (False,)
    result = {
        **ranking_metrics(ranks),
        "handoff_rate": float(1 - answered.mean()),
        "accuracy_answered": float(correct[answered].mean()) if answered.any() else None,
        "answered": int(answered.sum()),
        "threshold": assistant.threshold,
        "retrieval": assistant.mode + ("+intent" if assistant.route else ""),
        "ways": measure_ways(retriever, questions, gold, routes),
        "unindexed_answers": missing,
        "latency_ms": {"p50": float(np.percentile(seconds, 50) * 1000), "p99": float(np.percentile(seconds, 99) * 1000),
                       "runtime": retriever.encoder.runtime,
                       "intent_runtime": retriever.intent.runtime if retriever.intent is not None else None},
        "curve": coverage_precision(confidence, correct),
        "data": str(data),
        "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if write_report:
        result["plot"] = write_report_files(assistant.path, result)
    return result


def write_report_files(path: Path, result: dict) -> str | None:
    """reports/evaluation.json and reports/coverage_precision.png (outside the digest, like a bundle's reports)."""
    from fmkit.apps.assistant.store import REPORTS_DIR
    from fmkit.fileio import atomic_file, write_json_atomic

    reports = Path(path) / REPORTS_DIR
    try:
        reports.mkdir(exist_ok=True)
    except OSError as error:
        raise BadInputError(f"cannot write the report into {reports} ({error.strerror})") from None
    plot = reports / "coverage_precision.png"
    with atomic_file(plot) as tmp:
        plot_curve(result["curve"], result["threshold"], tmp)
    write_json_atomic(reports / "evaluation.json", {**result, "plot": str(plot)})
    return str(plot)


def plot_curve(curve: list[dict], threshold: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 4), dpi=110)
    axis.plot([p["coverage"] for p in curve], [p["precision"] for p in curve], color="#1f77b4")
    chosen = [p for p in curve if p["threshold"] >= threshold]
    if chosen:
        axis.scatter([chosen[-1]["coverage"]], [chosen[-1]["precision"]], color="#d62728", zorder=3,
                     label=f"threshold {threshold:.2f}")
        axis.legend(loc="lower left")
    axis.set_xlabel("coverage (share of questions answered)")
    axis.set_ylabel("precision of answered questions")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.set_title("held-out questions: coverage vs precision")
    figure.tight_layout()
    figure.savefig(out, format="png")
    plt.close(figure)
