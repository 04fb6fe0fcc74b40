"""Calibrated confidence and the handoff threshold.

The confidence is a logistic regression, fitted on validation questions, of "the first answer is
the right one" on what the ranking shows: the first answer's cosine, its margin over the next
ones, whether dense search and BM25 put it first, and the intent classifier's probability of
its category. The threshold is the lowest confidence at which the answered validation
questions are still right ``target_precision`` of the time (so the assistant answers as many
as it can at that precision); below it the assistant hands off to a person.
"""

from __future__ import annotations

import warnings

import numpy as np

FEATURES = ("top_cosine", "margin", "dense_agrees", "lexical_agrees", "intent_of_answer", "intent_top")
MARGIN_DEPTH = 10  # the margin is over the best of the next entries down to this rank


def features(ranking) -> np.ndarray:
    if not len(ranking.indices):
        return np.zeros(len(FEATURES), dtype=np.float64)  # nothing retrieved: the lowest confidence there is
    cosine = ranking.cosine
    margin = float(cosine[0] - cosine[1:MARGIN_DEPTH].max()) if len(cosine) > 1 else float(cosine[0])
    first = int(ranking.indices[0])
    intent_of_answer = float(ranking.category_probability[0]) if ranking.category_probability is not None else 0.0
    intent_top = ranking.intent["probability"] if ranking.intent else 0.0
    return np.array([float(cosine[0]), margin, float(first == ranking.dense_top),
                     float(first == ranking.lexical_top), intent_of_answer, intent_top], dtype=np.float64)


class Calibrator:
    """sigmoid(w . standardized features + b); stored as plain numbers in assistant.json."""

    def __init__(self, mean, scale, weights, bias):
        self.mean, self.scale = np.asarray(mean, float), np.asarray(scale, float)
        self.weights, self.bias = np.asarray(weights, float), float(bias)

    @classmethod
    def fit(cls, rows: np.ndarray, correct: np.ndarray, seed: int = 0) -> "Calibrator":
        from sklearn.linear_model import LogisticRegression

        mean, scale = rows.mean(axis=0), rows.std(axis=0)
        scale[scale == 0] = 1.0  # a constant feature (no intent model): weight 0, not a division by zero
        if correct.min() == correct.max():  # all right or all wrong: the rate is the only thing to learn
            rate = float(np.clip(correct.mean(), 1e-3, 1 - 1e-3))
            return cls(mean, scale, np.zeros(rows.shape[1]), np.log(rate / (1 - rate)))
        model = LogisticRegression(C=1.0, random_state=seed, max_iter=1000)
        model.fit((rows - mean) / scale, correct.astype(int))
        return cls(mean, scale, model.coef_[0], model.intercept_[0])

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        logits = ((np.atleast_2d(rows) - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-logits))

    def as_dict(self) -> dict:
        return {"features": list(FEATURES), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "weights": self.weights.tolist(), "bias": self.bias}

    @classmethod
    def from_dict(cls, data: dict) -> "Calibrator":
        return cls(data["mean"], data["scale"], data["weights"], data["bias"])


def coverage_precision(confidence: np.ndarray, correct: np.ndarray) -> list[dict]:
    """For each distinct confidence as threshold: the share answered and the precision of those answered."""
    order = np.argsort(-confidence, kind="stable")
    sorted_confidence, hits = confidence[order], correct[order].astype(float)
    answered = np.arange(1, len(order) + 1)
    precision = np.cumsum(hits) / answered
    last_of_tie = np.r_[sorted_confidence[1:] != sorted_confidence[:-1], True]  # answered = confidence >= t
    return [{"threshold": float(t), "coverage": float(n / len(order)), "precision": float(p)}
            for t, n, p in zip(sorted_confidence[last_of_tie], answered[last_of_tie], precision[last_of_tie])]


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, target_precision: float) -> dict:
    """The threshold answering the most questions at ``target_precision``; never answering when none does."""
    curve = coverage_precision(confidence, correct)
    reaching = [point for point in curve if point["precision"] >= target_precision]
    if not reaching:
        warnings.warn(f"no confidence threshold reaches precision {target_precision:.2f} on the calibration "
                      "questions: the assistant will hand every question off. Fine-tune the encoder, add an intent "
                      "bundle, or lower --target-precision", stacklevel=2)
        return {"threshold": 1.0 + 1e-9, "precision": None, "coverage": 0.0, "reached": False}
    best = max(reaching, key=lambda point: point["coverage"])
    return {"threshold": best["threshold"], "precision": best["precision"], "coverage": best["coverage"],
            "reached": True}


def ranking_metrics(ranks: np.ndarray) -> dict:
    """MRR@10 and recall@1/5/10 from 1-based ranks of the right answer (0: not in the ranking)."""
    ranks = np.asarray(ranks)
    found = ranks > 0
    reciprocal = np.where(found & (ranks <= 10), 1.0 / np.maximum(ranks, 1), 0.0)
    return {"mrr@10": float(reciprocal.mean()), "recall@1": float((found & (ranks <= 1)).mean()),
            "recall@5": float((found & (ranks <= 5)).mean()), "recall@10": float((found & (ranks <= 10)).mean()),
            "questions": int(len(ranks))}
