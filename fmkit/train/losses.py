"""Classification losses for imbalanced data: class-weighted cross-entropy and focal loss.

On a team's data the largest class is often 10-15x the smallest (issue 15: 62 to 920 texts per
class); plain cross-entropy then learns the big classes and leaves the rare ones at zero recall.
``class_weights: auto`` turns weighting on when that ratio reaches ``imbalance_ratio``, with
weights ∝ 1/sqrt(class frequency): rare classes count more, without trading away the accuracy on
the common ones that full inverse-frequency (``balanced``) weighting costs. The options model is
here so that both finetune configs (text and images) share it; torch is imported only by
``criterion``.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LossConfig(BaseModel):
    """The classification loss: plain or focal cross-entropy, with or without class weights."""

    model_config = ConfigDict(extra="forbid")

    function: Literal["cross-entropy", "focal"] = Field(
        "cross-entropy", description="cross-entropy, or focal (down-weights examples the model already gets right)")
    focal_gamma: float = Field(2.0, description="focal loss focusing strength (0 = cross-entropy; typical 1-3)")
    class_weights: Literal["auto", "sqrt", "balanced", "none"] = Field(
        "auto", description="per-class loss weights: sqrt (∝ 1/sqrt(frequency)), balanced (∝ 1/frequency), none; "
        "auto: sqrt when the largest/smallest class ratio is >= imbalance_ratio, else none")
    imbalance_ratio: float = Field(4.0, description="largest/smallest class ratio at which auto class weights turn on")

    @model_validator(mode="after")
    def _check(self) -> "LossConfig":
        errors = []
        if not 0 <= self.focal_gamma <= 10:
            errors.append(f"focal_gamma={self.focal_gamma}: must be in [0, 10]; typical 1-3")
        if self.imbalance_ratio < 1:
            errors.append(f"imbalance_ratio={self.imbalance_ratio}: must be >= 1 (1 weights any imbalance)")
        if errors:
            raise ValueError("; ".join(errors))
        return self


def class_counts(label_ids: Sequence[int], classes: int) -> list[int]:
    counts = Counter(label_ids)
    return [counts.get(index, 0) for index in range(classes)]


def imbalance(counts: Sequence[int]) -> float:
    """Largest / smallest class count among the classes present (inf when a class has no rows)."""
    present = [count for count in counts if count > 0]
    if not present:
        return 1.0
    return float("inf") if len(present) < len(counts) else max(present) / min(present)


def resolve_class_weights(cfg: LossConfig, label_ids: Sequence[int], classes: int) -> tuple[list[float] | None, dict]:
    """(weights per class or None, the record for ``training.class_weights``); weights average 1 over the rows."""
    counts = class_counts(label_ids, classes)
    ratio = imbalance(counts)
    mode = cfg.class_weights
    if mode == "auto":
        mode = "sqrt" if ratio >= cfg.imbalance_ratio else "none"
    record = {"mode": mode, "requested": cfg.class_weights, "imbalance_ratio": round(ratio, 3) if ratio != float("inf")
              else None, "threshold": cfg.imbalance_ratio}
    if mode == "none":
        return None, record
    power = 0.5 if mode == "sqrt" else 1.0
    raw = [(1.0 / count) ** power if count else 0.0 for count in counts]
    mean = sum(weight * count for weight, count in zip(raw, counts)) / max(1, sum(counts))
    weights = [round(weight / mean, 6) for weight in raw]
    record["weights"] = weights
    return weights, record


class ClassificationCriterion:
    """``criterion(logits, labels) -> loss``: weighted and/or focal cross-entropy, computed in fp32."""

    def __init__(self, weights: Sequence[float] | None = None, focal_gamma: float | None = None):
        self.weights = list(weights) if weights is not None else None
        self.focal_gamma = focal_gamma
        self._weight_tensor = None

    def __call__(self, logits, labels):
        import torch
        import torch.nn.functional as F

        logits = logits.float()
        weight = None
        if self.weights is not None:
            if self._weight_tensor is None or self._weight_tensor.device != logits.device:
                self._weight_tensor = torch.tensor(self.weights, dtype=torch.float32, device=logits.device)
            weight = self._weight_tensor
        if not self.focal_gamma:
            return F.cross_entropy(logits, labels, weight=weight)
        log_probabilities = F.log_softmax(logits, dim=-1).gather(1, labels[:, None]).squeeze(1)
        focal = -((1 - log_probabilities.exp()) ** self.focal_gamma) * log_probabilities  # Lin et al. 2017
        if weight is None:
            return focal.mean()
        row_weights = weight[labels]
        return (focal * row_weights).sum() / row_weights.sum()  # the same normalisation as weighted cross-entropy

    def describe(self) -> dict:
        return {"function": "focal" if self.focal_gamma else "cross-entropy", "focal_gamma": self.focal_gamma,
                "weighted": self.weights is not None}


def criterion_for(cfg: LossConfig | None, label_ids: Sequence[int], classes: int) -> tuple[ClassificationCriterion | None, dict]:
    """The criterion a classification task's loss should use (None: the plain, unweighted cross-entropy) and the
    facts for the manifest."""
    if cfg is None:
        return None, {}
    weights, record = resolve_class_weights(cfg, label_ids, classes)
    gamma = cfg.focal_gamma if cfg.function == "focal" else None
    facts = {"loss": cfg.function, "class_weights": record}
    if gamma is not None:
        facts["focal_gamma"] = gamma
    if weights is None and not gamma:
        return None, facts
    return ClassificationCriterion(weights, gamma), facts
