"""Classification metrics computed streaming: memory is O(classes² + bins), never O(examples).

Everything derives from the confusion matrix and a calibration histogram, so evaluating a
million texts costs the same memory as evaluating ten.
"""

from __future__ import annotations

import numpy as np


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=float), where=denominator > 0)


class StreamingClassificationMetrics:
    def __init__(self, label_names: list[str], calibration_bins: int = 15):
        self.label_names = list(label_names)
        classes = len(label_names)
        self.confusion = np.zeros((classes, classes), dtype=np.int64)  # rows: true, columns: predicted
        self.bins = calibration_bins
        self.bin_count = np.zeros(calibration_bins, dtype=np.int64)
        self.bin_confidence = np.zeros(calibration_bins)
        self.bin_correct = np.zeros(calibration_bins)
        self.negative_log_likelihood = 0.0

    def update(self, probabilities: np.ndarray, labels: np.ndarray) -> None:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        predicted = probabilities.argmax(axis=1)
        np.add.at(self.confusion, (labels, predicted), 1)
        confidence = probabilities.max(axis=1)
        # Bin edges as in Guo et al. 2017: (k/B, (k+1)/B], confidence 1.0 in the last bin.
        index = np.clip(np.ceil(confidence * self.bins).astype(np.int64) - 1, 0, self.bins - 1)
        np.add.at(self.bin_count, index, 1)
        np.add.at(self.bin_confidence, index, confidence)
        np.add.at(self.bin_correct, index, (predicted == labels).astype(float))
        true_probability = probabilities[np.arange(len(labels)), labels]
        self.negative_log_likelihood += float(-np.log(np.clip(true_probability, 1e-12, 1.0)).sum())

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    def compute(self) -> dict:
        total = self.count
        true_positive = np.diag(self.confusion).astype(float)
        support = self.confusion.sum(axis=1).astype(float)
        predicted_count = self.confusion.sum(axis=0).astype(float)
        precision = _safe_divide(true_positive, predicted_count)
        recall = _safe_divide(true_positive, support)
        f1 = _safe_divide(2 * precision * recall, precision + recall)
        weights = support / total if total else support
        ece = float(np.abs(self.bin_correct - self.bin_confidence).sum() / total) if total else 0.0
        return {
            "count": total,
            "accuracy": float(true_positive.sum() / total) if total else 0.0,
            "macro_precision": float(precision.mean()),
            "macro_recall": float(recall.mean()),  # = balanced accuracy
            "min_recall": float(recall[support > 0].min()) if (support > 0).any() else 0.0,  # the worst-served class
            "macro_f1": float(f1.mean()),
            "weighted_precision": float((precision * weights).sum()),
            "weighted_recall": float((recall * weights).sum()),
            "weighted_f1": float((f1 * weights).sum()),
            "expected_calibration_error": ece,
            "log_loss": self.negative_log_likelihood / total if total else 0.0,
            "per_class": {
                name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                       "support": int(support[i])}
                for i, name in enumerate(self.label_names)
            },
            "confusion_matrix": {"labels": self.label_names, "matrix": self.confusion.tolist()},
        }


def per_class_recall(metrics: dict) -> dict[str, float]:
    """{class: recall} from a split's metrics (empty for metrics without classes, e.g. retrieval), rarest class first:
    the number that shows a rare class the model gave up on."""
    per_class = metrics.get("per_class") or {}
    ordered = sorted(per_class.items(), key=lambda item: (item[1]["support"], item[0]))
    return {name: values["recall"] for name, values in ordered}


def metrics_from_logits(batches, label_ids, label_names) -> dict:
    """Streaming metrics over (row indices, logits) batches from any runtime."""
    from fmkit.runtime.base import softmax

    metrics = StreamingClassificationMetrics(label_names)
    label_array = np.asarray(label_ids)
    for indices, logits in batches:
        metrics.update(softmax(logits), label_array[indices])
    return metrics.compute()
