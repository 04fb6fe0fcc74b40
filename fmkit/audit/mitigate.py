"""Fairness mitigation by post-processing: Fairlearn's ``ThresholdOptimizer`` -> a new bundle.

The optimizer picks, per group, a (possibly randomized) threshold on the model's score for the
favourable label that maximizes accuracy under a parity constraint, fitted on the validation split.
The new bundle keeps the parent's weights and stores the thresholds as JSON (``postprocess`` in
the manifest). Its decisions need the group at prediction time, so plain runtimes refuse it and
its card says so; ``GroupThresholdClassifier`` runs it, through Fairlearn's own thresholder.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fmkit.errors import BadInputError

CONSTRAINTS = ("demographic_parity", "equalized_odds", "true_positive_rate_parity", "false_positive_rate_parity")
METHOD = "threshold-optimizer"


class MitigateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attribute: str | None = Field(None, description="group column the thresholds depend on (default: the first "
                                                    "sensitive column)")
    constraint: Literal[CONSTRAINTS] = Field("demographic_parity", description="parity to enforce")
    data: str | None = Field(None, description="file or built-in dataset (default: the bundle's training data)")
    fit_split: Literal["train", "validation"] = Field("validation", description="rows the thresholds are fitted on")
    positive_label: str | None = Field(None, description="the favourable decision (default: the second of two labels)")
    seed: int = Field(0, description="seed of the randomized thresholds at evaluation")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")


def _score_column():
    """A prefit 'estimator' whose score is column 0 of X: the bundle's probability of the favourable label."""
    from sklearn.base import BaseEstimator

    class ScoreColumn(BaseEstimator):
        def fit(self, X, y=None, **kwargs):  # noqa: N803 (scikit-learn's names)
            return self

        def predict(self, X):  # noqa: N803
            import numpy as np

            return np.asarray(X, dtype=float)[:, 0]

        def __sklearn_is_fitted__(self):
            return True

    return ScoreColumn()


def _threshold_to_json(value: float) -> float | str:
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def interpolation_to_json(interpolation_dict) -> dict:
    out = {}
    for group, rule in interpolation_dict.items():
        entry = {"p0": float(rule.p0), "operation0": [rule.operation0.operator, _threshold_to_json(rule.operation0.threshold)],
                 "p1": float(rule.p1), "operation1": [rule.operation1.operator, _threshold_to_json(rule.operation1.threshold)]}
        if "p_ignore" in rule:
            entry.update(p_ignore=float(rule.p_ignore), prediction_constant=float(rule.prediction_constant))
        out[str(group)] = entry
    return out


def interpolation_from_json(data: dict) -> dict:
    from fairlearn.postprocessing._threshold_operation import ThresholdOperation
    from sklearn.utils import Bunch

    rules = {}
    for group, entry in data.items():
        rule = Bunch(p0=entry["p0"], p1=entry["p1"],
                     operation0=ThresholdOperation(entry["operation0"][0], float(entry["operation0"][1])),
                     operation1=ThresholdOperation(entry["operation1"][0], float(entry["operation1"][1])))
        if "p_ignore" in entry:
            rule.update(p_ignore=entry["p_ignore"], prediction_constant=entry["prediction_constant"])
        rules[group] = rule
    return rules


class GroupThresholdClassifier:
    """Runs a mitigated bundle: the model's score, then Fairlearn's per-group thresholder."""

    def __init__(self, bundle, *, device: str = "auto", batch_size: int = 64):
        from fairlearn.postprocessing._interpolated_thresholder import InterpolatedThresholder

        from fmkit.bundle import read_manifest
        from fmkit.runtime import load_runtime

        self.manifest = read_manifest(bundle)
        self.rule = self.manifest.postprocess
        if self.rule.get("method") != METHOD:
            raise BadInputError(f"{bundle} has no {METHOD} post-processing")
        self.attribute, self.positive_label = self.rule["attribute"], self.rule["positive_label"]
        self.runtime = load_runtime(bundle, device=device, batch_size=batch_size, allow_postprocess=True)
        self.thresholder = InterpolatedThresholder(_score_column(), interpolation_from_json(self.rule["thresholds"]),
                                                   prefit=True, predict_method="predict").fit(None, None)

    def positive_proba(self, texts: list[str], groups: dict[str, list[str]]):
        """P(favourable decision) per text after the group's thresholds (the thresholds may be randomized)."""
        import numpy as np

        if self.attribute not in groups:
            raise BadInputError(f"this bundle's decisions need the group column {self.attribute!r} for every text")
        values = np.asarray(groups[self.attribute], dtype=object)
        unknown = sorted(set(values) - set(self.rule["thresholds"]))
        if unknown:
            raise BadInputError(f"group values {unknown} of {self.attribute!r} were not seen when the thresholds were "
                                f"fitted (seen: {sorted(self.rule['thresholds'])}); mitigate again on data with them")
        scores = self.runtime.predict_proba(texts)[:, self.manifest.labels.index(self.positive_label)]
        return self.thresholder._pmf_predict(scores[:, None], sensitive_features=values)[:, 1]

    def predict_labels(self, texts: list[str], groups: dict[str, list[str]], seed: int = 0) -> list[str]:
        import numpy as np

        positive = self.positive_proba(texts, groups) >= np.random.default_rng(seed).random(len(texts))
        others = [label for label in self.manifest.labels if label != self.positive_label]
        if len(others) != 1:
            raise BadInputError("threshold post-processing supports two-label models only")
        return [self.positive_label if p else others[0] for p in positive]


def mitigate_fairness(bundle: Path, out: Path, cfg: MitigateConfig, *, overwrite: bool = False) -> dict:
    """Fit per-group thresholds on ``cfg.fit_split`` and write the mitigated bundle to ``out``, fairness-audited."""
    import numpy as np
    from fairlearn.postprocessing import ThresholdOptimizer

    from fmkit.audit.fairness_audit import resolve_positive_label
    from fmkit.audit.inputs import default_sensitive_columns, load_audit_rows
    from fmkit.bundle import LineageEntry, Manifest, read_manifest, write_bundle
    from fmkit.bundle.manifest import MANIFEST_NAME
    from fmkit.bundle.store import REPORTS_DIR
    from fmkit.runtime import load_runtime

    bundle = Path(bundle)
    parent = read_manifest(bundle)
    if parent.postprocess:
        raise BadInputError(f"{bundle} is already post-processed; mitigate its parent instead")
    if len(parent.labels) != 2:
        raise BadInputError(f"threshold post-processing needs a two-label model; {bundle} has {parent.labels}")
    source = cfg.data or parent.data.get("source") or ""
    attribute = cfg.attribute or next(iter(default_sensitive_columns(source)), None)
    if attribute is None:
        raise BadInputError("name the group column with --attribute COL")
    positive = resolve_positive_label(parent.labels, cfg.positive_label)
    rows = load_audit_rows(bundle, data=cfg.data, split=cfg.fit_split, group_columns=[attribute])
    runtime = load_runtime(bundle, device=cfg.device)
    scores = runtime.predict_proba(rows.texts)[:, parent.labels.index(positive)]
    y = np.array([label == positive for label in rows.labels], dtype=int)
    optimizer = ThresholdOptimizer(estimator=_score_column(), constraints=cfg.constraint, objective="accuracy_score",
                                   prefit=True, predict_method="predict")
    optimizer.fit(scores[:, None], y, sensitive_features=np.asarray(rows.groups[attribute], dtype=object))
    thresholds = interpolation_to_json(optimizer.interpolated_thresholder_.interpolation_dict)
    rule = {"method": METHOD, "attribute": attribute, "constraint": cfg.constraint, "positive_label": positive,
            "fitted_on": {"split": cfg.fit_split, "rows": len(rows.texts), "data_fingerprint": rows.data_fingerprint},
            "thresholds": thresholds,
            "needs_at_prediction": [attribute]}
    manifest = Manifest(
        task=parent.task, labels=parent.labels, max_length=parent.max_length, base_model=parent.base_model,
        runtime=parent.runtime, data=parent.data, training=parent.training, privacy=parent.privacy,
        compression=parent.compression, postprocess=rule,
        lineage=parent.lineage + [LineageEntry(stage="mitigate-fairness", config=cfg.model_dump(mode="json"),
                                               parent_digest=parent.content_digest, parent=str(bundle),
                                               data_fingerprint=rows.data_fingerprint)],
    )

    def write_files(directory: Path) -> None:
        for name in parent.files:
            if name != MANIFEST_NAME and not name.startswith(REPORTS_DIR + "/"):
                (directory / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(bundle / name, directory / name)

    def audit_before_publish(directory: Path, _manifest) -> None:
        from fmkit.audit.fairness_audit import FairnessAuditConfig, audit_fairness

        # The mitigated bundle's evidence is its fairness on the test split: recorded before it gets its name.
        audit_fairness(directory, FairnessAuditConfig(data=cfg.data, sensitive=[attribute], positive_label=positive))

    write_bundle(Path(out), manifest, write_files, overwrite=overwrite, before_publish=audit_before_publish)
    return rule
