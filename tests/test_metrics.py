"""Streaming metrics against scikit-learn and a slow calibration reference."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from fmkit.evaluate.metrics import StreamingClassificationMetrics


def random_predictions(n=997, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes))
    labels = rng.integers(0, classes, size=n)
    logits[np.arange(n), labels] += rng.uniform(0, 2, size=n)  # better than chance, imperfect
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities, labels


def slow_ece(probabilities, labels, bins=15):
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = (confidence > low) & (confidence <= high)
        if members.any():
            total += members.sum() / len(labels) * abs(correct[members].mean() - confidence[members].mean())
    return total


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_streaming_matches_sklearn_and_reference(chunk):
    probabilities, labels = random_predictions()
    metrics = StreamingClassificationMetrics(["a", "b", "c", "d"])
    for start in range(0, len(labels), chunk):
        metrics.update(probabilities[start:start + chunk], labels[start:start + chunk])
    result = metrics.compute()
    predicted = probabilities.argmax(axis=1)
    assert result["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(labels, predicted, average=average, zero_division=0)
        assert result[f"{average}_precision"] == pytest.approx(p)
        assert result[f"{average}_recall"] == pytest.approx(r)
        assert result[f"{average}_f1"] == pytest.approx(f)
    assert result["confusion_matrix"]["matrix"] == confusion_matrix(labels, predicted).tolist()
    assert result["expected_calibration_error"] == pytest.approx(slow_ece(probabilities, labels))
    expected_nll = -np.log(probabilities[np.arange(len(labels)), labels]).mean()
    assert result["log_loss"] == pytest.approx(expected_nll)


def test_memory_is_independent_of_examples():
    metrics = StreamingClassificationMetrics(["a", "b"])
    probabilities, labels = random_predictions(n=5000, classes=2)
    metrics.update(probabilities, labels)
    state = [v for v in vars(metrics).values() if isinstance(v, np.ndarray)]
    assert sum(a.size for a in state) == 2 * 2 + 3 * 15


def test_class_never_predicted_has_zero_precision():
    metrics = StreamingClassificationMetrics(["a", "b"])
    metrics.update(np.array([[0.9, 0.1], [0.8, 0.2]]), np.array([0, 1]))
    result = metrics.compute()
    assert result["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
