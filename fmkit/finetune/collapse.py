"""Collapse detection: a classifier that learned nothing but the class prior must not pass silently.

Issue 15: LoRA on 600 texts of 4 classes, 30 steps, predicted the majority class for every text
(accuracy 0.39 = that class's share, macro-F1 0.14) and the bundle was written like any other.
After training the stage reads the validation confusion matrix (test when there is no validation)
and calls a model *degenerate* when either
- one class takes at least ``ONE_CLASS_SHARE`` of the predictions while the data is not that
  imbalanced (that class is under ``ONE_CLASS_SHARE - IMBALANCE_MARGIN`` of the true labels), or
- its macro-F1 is at chance: no better than guessing uniformly at random, plus ``CHANCE_MARGIN``.
The verdict names the likely cause from the run's own facts (steps, rate, early stop, imbalance)
and the fix; the manifest records ``training.status: degenerate`` and the evidence.
"""

from __future__ import annotations

ONE_CLASS_SHARE = 0.9  # "nearly every row"
IMBALANCE_MARGIN = 0.2  # a class that really is 80% of the data may take 90% of the predictions
CHANCE_MARGIN = 0.02
MIN_ROWS = 10  # fewer validation rows say nothing either way
FEW_STEPS = 200  # below this many optimizer steps, "trained too briefly" is the first suspect


def chance_macro_f1(support: list[int]) -> float:
    """Expected macro-F1 of uniform random guessing: class c with share p gets F1 2p(1/k)/(p + 1/k)."""
    total, classes = sum(support), len(support)
    if not total or classes < 2:
        return 0.0
    uniform = 1.0 / classes
    return sum(2 * (count / total) * uniform / (count / total + uniform) for count in support) / classes


def detect_collapse(metrics: dict) -> dict | None:
    """The evidence when ``metrics`` (one split's, with a confusion matrix) show a degenerate classifier, else None."""
    confusion = metrics.get("confusion_matrix")
    if not confusion:
        return None
    labels, matrix = confusion["labels"], confusion["matrix"]
    support = [sum(row) for row in matrix]
    predicted = [sum(column) for column in zip(*matrix)]
    total = sum(support)
    if total < MIN_ROWS or len(labels) < 2:
        return None
    top = max(range(len(labels)), key=predicted.__getitem__)
    predicted_share, true_share = predicted[top] / total, support[top] / total
    chance = chance_macro_f1(support)
    evidence = {"predicted_class": labels[top], "predicted_share": round(predicted_share, 4),
                "true_share": round(true_share, 4), "macro_f1": round(metrics["macro_f1"], 4),
                "chance_macro_f1": round(chance, 4), "rows": total}
    if predicted_share >= ONE_CLASS_SHARE and true_share < ONE_CLASS_SHARE - IMBALANCE_MARGIN:
        return {"kind": "one-class", **evidence}
    if metrics["macro_f1"] <= chance + CHANCE_MARGIN:
        return {"kind": "chance", **evidence}
    return None


def collapse_message(evidence: dict, split: str, training: dict) -> str:
    """The loud warning: what was seen, the likely cause from this run's facts, and what to do."""
    if evidence["kind"] == "one-class":
        seen = (f"the model predicts {evidence['predicted_class']!r} for {evidence['predicted_share']:.0%} of the "
                f"{split} rows, which are {evidence['true_share']:.0%} {evidence['predicted_class']!r}")
    else:
        seen = (f"{split} macro-F1 {evidence['macro_f1']:.3f} is at chance (random guessing: "
                f"{evidence['chance_macro_f1']:.3f})")
    steps, rate = training.get("steps"), training.get("learning_rate")
    schedule = training.get("schedule") or {}
    causes, fixes = [], []
    if steps is not None and steps < FEW_STEPS:
        causes.append(f"too few optimizer steps ({steps})")
        fixes.append("train longer (leave --epochs at auto, or raise --epochs/--max-steps)")
    if training.get("stopped_early") and schedule.get("patience") is not None and schedule["patience"] <= 2:
        causes.append(f"early stopping after {schedule['patience']} flat evaluations")
        fixes.append("raise --patience")
    weighting = training.get("class_weights") or {}
    ratio = weighting.get("imbalance_ratio")
    if evidence["kind"] == "one-class" and weighting.get("mode") in (None, "none") and (ratio is None or ratio >= 1.5):
        causes.append("the majority class dominating the loss")
        fixes.append("--class-weights balanced")
    causes.append(f"a learning rate that does not suit the method ({rate})")
    fixes.append("--learning-rate auto (a short range test)")
    return (f"DEGENERATE MODEL: {seen}. Likely cause: {' or '.join(causes)}. Fix: {'; '.join(fixes)}. "
            "The bundle is written with training.status 'degenerate'.")
