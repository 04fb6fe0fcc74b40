"""Group fairness with Fairlearn: per-group rates, parity gaps and bootstrap confidence intervals.

A classifier's decision "positive" is one label (``positive_label``; one-vs-rest for multi-class).
Per group: count, accuracy, selection rate, true- and false-positive rate. Across groups:
demographic-parity difference and ratio, equalized-odds difference (the worse of the TPR and FPR
gaps), accuracy difference -- each with a percentile bootstrap interval over resampled rows.

Groups with fewer than ``min_group_size`` rows are reported but left out of the gaps: a TPR from a
handful of positives is noise, and a gate must not pass or fail on noise. The report says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GAP_METRICS = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
               "accuracy_difference")
MISSING_GROUP = "(missing)"


@dataclass(frozen=True)
class FairnessSettings:
    positive_label: str
    n_bootstrap: int = 200
    confidence: float = 0.95
    min_group_size: int = 50
    seed: int = 0


def _metric_frame(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray):
    from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import accuracy_score

    return MetricFrame(
        metrics={"count": count, "accuracy": accuracy_score, "selection_rate": selection_rate,
                 "tpr": lambda t, p: true_positive_rate(t, p, pos_label=1),
                 "fpr": lambda t, p: false_positive_rate(t, p, pos_label=1)},
        y_true=y_true, y_pred=y_pred, sensitive_features=groups,
    )


def _gaps(frame) -> dict[str, float]:
    by_group = frame.by_group
    difference, ratio = frame.difference(method="between_groups"), frame.ratio(method="between_groups")
    return {
        "demographic_parity_difference": float(difference["selection_rate"]),
        "demographic_parity_ratio": float(ratio["selection_rate"]) if by_group["selection_rate"].max() > 0 else 1.0,
        # Fairlearn's equalized_odds_difference: the larger of the TPR and FPR gaps
        "equalized_odds_difference": float(max(difference["tpr"], difference["fpr"])),
        "accuracy_difference": float(difference["accuracy"]),
    }


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def group_fairness(y_true: np.ndarray, y_pred: np.ndarray, groups, settings: FairnessSettings) -> dict:
    """Fairness of binary decisions ``y_pred`` (0/1, 1 = positive) against ``y_true`` over one attribute."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    groups = np.asarray([g if g else MISSING_GROUP for g in groups], dtype=object)
    if not (len(y_true) == len(y_pred) == len(groups)):
        raise ValueError(f"lengths differ: {len(y_true)} labels, {len(y_pred)} predictions, {len(groups)} groups")
    names, sizes = np.unique(groups, return_counts=True)
    large = {str(n) for n, size in zip(names, sizes) if size >= settings.min_group_size}
    frame = _metric_frame(y_true, y_pred, groups)
    per_group = {
        str(group): {"count": int(row["count"]), **{k: _finite(row[k]) for k in ("accuracy", "selection_rate", "tpr", "fpr")},
                     "in_gaps": str(group) in large}
        for group, row in frame.by_group.iterrows()
    }
    result = {"positive_label": settings.positive_label, "rows": int(len(y_true)), "groups": per_group,
              "min_group_size": settings.min_group_size,
              "excluded_small_groups": sorted(str(n) for n in names if str(n) not in large)}
    if len(large) < 2:
        result["note"] = (f"fewer than two groups have {settings.min_group_size}+ rows; gaps not computed "
                          "(lower min_group_size or audit more rows)")
        return result
    keep = np.isin(groups, list(large))
    y_true, y_pred, groups = y_true[keep], y_pred[keep], groups[keep]
    result.update(_gaps(_metric_frame(y_true, y_pred, groups)))
    result["confidence_intervals"] = bootstrap_gaps(y_true, y_pred, groups, settings)
    return result


def bootstrap_gaps(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, settings: FairnessSettings) -> dict:
    """Percentile intervals of every gap over ``n_bootstrap`` resamples, stratified by group."""
    if settings.n_bootstrap <= 0:
        return {}
    rng = np.random.default_rng(settings.seed)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    samples: dict[str, list[float]] = {name: [] for name in GAP_METRICS}
    for _ in range(settings.n_bootstrap):
        # resample within each group so no group vanishes from a resample
        rows = np.concatenate([rng.choice(m, size=len(m), replace=True) for m in members])
        for name, value in _gaps(_metric_frame(y_true[rows], y_pred[rows], groups[rows])).items():
            samples[name].append(value)
    tail = (1 - settings.confidence) / 2 * 100
    return {name: [float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))]
            for name, values in samples.items()}


def binary_decisions(labels: list[str], predicted: list[str], positive_label: str) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([label == positive_label for label in labels], dtype=int),
            np.array([label == positive_label for label in predicted], dtype=int))
