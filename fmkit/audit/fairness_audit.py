"""``fmkit audit fairness``: a bundle + data with group columns -> per-group metrics and gaps in the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fmkit.errors import BadInputError

FAIRNESS_REPORT = "fairness.json"


class FairnessAuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: str | None = Field(None, description="file or built-in dataset (default: the bundle's training data)")
    sensitive: list[str] = Field(default_factory=list,
                                 description="group columns to audit (default: the built-in dataset's, e.g. sex, race)")
    split: Literal["train", "validation", "test", "all"] = Field("test", description="rows to audit")
    positive_label: str | None = Field(None, description="the favourable decision (default: the second of two labels)")
    n_bootstrap: int = Field(200, ge=0, le=10000, description="bootstrap resamples for confidence intervals (0: none)")
    confidence: float = Field(0.95, gt=0, lt=1, description="confidence level of the intervals")
    min_group_size: int = Field(50, ge=1, description="groups with fewer rows are reported but left out of the gaps")
    seed: int = Field(0, description="seed of the bootstrap")
    batch_size: int = Field(64, ge=1, description="texts per inference batch")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")

    @model_validator(mode="after")
    def _check(self) -> "FairnessAuditConfig":
        if len(set(self.sensitive)) != len(self.sensitive):
            raise ValueError(f"sensitive={self.sensitive}: a column is named twice")
        return self


def resolve_positive_label(labels: list[str], positive_label: str | None) -> str:
    if positive_label is None:
        if len(labels) != 2:
            raise BadInputError(f"the model has {len(labels)} labels {labels}; name the favourable one with "
                                "--positive-label (fairness is measured one-vs-rest)")
        return labels[1]
    if positive_label not in labels:
        raise BadInputError(f"--positive-label {positive_label!r} is not a label of this model; use one of {labels}")
    return positive_label


def predicted_labels(bundle: Path, texts: list[str], groups: dict[str, list[str]], *, device: str, batch_size: int,
                     seed: int = 0) -> list[str]:
    """The bundle's decisions: its model, then its group-aware post-processing when it has one."""
    from fmkit.bundle import read_manifest

    manifest = read_manifest(bundle)
    if manifest.postprocess:
        from fmkit.audit.mitigate import GroupThresholdClassifier

        return GroupThresholdClassifier(bundle, device=device).predict_labels(texts, groups, seed=seed)
    from fmkit.runtime import load_runtime

    runtime = load_runtime(bundle, device=device, batch_size=batch_size)
    return [p.label for p in runtime.predict(texts)]


def audit_fairness(bundle: Path, cfg: FairnessAuditConfig, *, record: bool = True) -> dict:
    from fmkit.audit.fairness import FairnessSettings, binary_decisions, group_fairness
    from fmkit.audit.inputs import default_sensitive_columns, load_audit_rows
    from fmkit.bundle import read_manifest, update_manifest
    from fmkit.bundle.store import REPORTS_DIR
    from fmkit.fileio import write_json_atomic

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    source = cfg.data or manifest.data.get("source") or ""
    sensitive = cfg.sensitive or default_sensitive_columns(source)
    if not sensitive:
        raise BadInputError(f"name the group columns to audit with --sensitive COL[,COL] ({source!r} has no defaults)")
    positive = resolve_positive_label(manifest.labels, cfg.positive_label)
    rows = load_audit_rows(bundle, data=cfg.data, split=cfg.split, group_columns=sensitive)
    predicted = predicted_labels(bundle, rows.texts, rows.groups, device=cfg.device, batch_size=cfg.batch_size,
                                 seed=cfg.seed)
    y_true, y_pred = binary_decisions(rows.labels, predicted, positive)
    settings = FairnessSettings(positive_label=positive, n_bootstrap=cfg.n_bootstrap, confidence=cfg.confidence,
                                min_group_size=cfg.min_group_size, seed=cfg.seed)
    report = {}
    for column in sensitive:
        report[column] = group_fairness(y_true, y_pred, rows.groups[column], settings)
        report[column].update({"split": rows.split, "data_fingerprint": rows.data_fingerprint,
                               "confidence": cfg.confidence, "n_bootstrap": cfg.n_bootstrap})
    if record:
        write_json_atomic(bundle / REPORTS_DIR / FAIRNESS_REPORT, report)
        update_manifest(bundle, lambda m: m.audits.__setitem__("fairness", report))
    return report
