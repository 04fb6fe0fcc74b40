"""Policy gates: rules over what a bundle's manifest measured; every broken rule is reported.

A quantity the manifest does not hold counts as broken unless the policy says
``allow_unmeasured: true``: a gate asks for evidence, and "not measured" is not evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from fmkit.bundle.lineage import total_accuracy_drop
from fmkit.errors import BadInputError


class Policy(BaseModel):
    """policy.yaml: every rule is optional; only the rules given are checked."""

    model_config = ConfigDict(extra="forbid")

    min_accuracy: float | None = Field(None, ge=0, le=1, description="test accuracy at least this")
    min_gain_over_baseline: float | None = Field(
        None, ge=-100, le=100, description="test-accuracy points over the baseline (logistic regression on the frozen "
        "base model's features, same test rows), at least; 0 fails a model that does not beat it")
    max_accuracy_drop: float | None = Field(
        None, ge=0, description="test-accuracy points lost in total vs the lineage's task model (the last ancestor "
        "that is not a compression), at most")
    max_step_accuracy_drop: float | None = Field(None, ge=0,
                                                 description="points lost by the last compression vs its parent, at most")
    max_epsilon: float | None = Field(None, gt=0, description="DP privacy budget spent, at most")
    max_fairness_gap: float | None = Field(None, ge=0, description="largest fairness gap (any attribute), at most")
    max_mia_auc: float | None = Field(None, ge=0, le=1, description="membership-inference attack AUC, at most")
    max_p95_latency_ms: float | None = Field(None, gt=0, description="p95 latency at batch 1 on the bundle's runtime")
    max_size_mb: float | None = Field(None, gt=0, description="model files on disk, at most")
    min_stability_rate: float | None = Field(None, ge=0, le=1, description="robustness: lowest stability, at least")
    max_counterfactual_flip_rate: float | None = Field(None, ge=0, le=1,
                                                       description="identity-term swaps that flip the label, at most")
    allow_unmeasured: bool = Field(False, description="pass rules whose quantity the manifest does not hold")


@dataclass
class RuleResult:
    rule: str
    allowed: float
    measured: float | None
    passed: bool

    def describe(self) -> str:
        measured = "not measured" if self.measured is None else f"{self.measured:.4g}"
        comparison = "≥" if self.rule.startswith("min_") else "≤"
        verdict = "ok" if self.passed else "BROKEN"
        return f"{verdict:6s} {self.rule}: measured {measured}, allowed {comparison} {self.allowed:g}"


def _fairness_gap(manifest) -> float | None:
    gaps = [v for attribute in manifest.audits.get("fairness", {}).values() if isinstance(attribute, dict)
            for k, v in attribute.items() if k.endswith("_difference") and isinstance(v, (int, float))]
    return max(gaps) if gaps else None


def _gain_over_baseline(manifest) -> float | None:
    from fmkit.evaluate.baseline import gain_over_baseline  # below audit; numpy and sklearn load on use only

    return gain_over_baseline(manifest)


def _size_mb(manifest) -> float | None:
    figures = manifest.benchmarks.get(manifest.runtime, {})
    return figures["size_bytes"] / 1e6 if "size_bytes" in figures else None


# rule -> how to read the measured quantity from a manifest
MEASURES: dict[str, Callable] = {
    "min_accuracy": lambda m: m.metrics.get("test", {}).get("accuracy"),
    "min_gain_over_baseline": _gain_over_baseline,
    "max_accuracy_drop": total_accuracy_drop,
    "max_step_accuracy_drop": lambda m: m.compression.get("accuracy_drop_points"),
    "max_epsilon": lambda m: m.privacy.get("dp", {}).get("epsilon"),
    "max_fairness_gap": _fairness_gap,
    "max_mia_auc": lambda m: m.privacy.get("membership_inference", {}).get("auc"),
    "max_p95_latency_ms": lambda m: m.benchmarks.get(m.runtime, {}).get("latency_p95_ms"),
    "max_size_mb": _size_mb,
    "min_stability_rate": lambda m: m.audits.get("robustness", {}).get("min_stability_rate"),
    "max_counterfactual_flip_rate": lambda m: m.audits.get("counterfactual", {}).get("flip_rate"),
}


def load_policy(path: Path) -> Policy:
    import yaml
    from pydantic import ValidationError

    from fmkit.validation import format_validation_error

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"policy {path} does not exist")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: a policy is a mapping of rules, e.g. min_accuracy: 0.8")
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        raise BadInputError(f"{path}: {format_validation_error(error, Policy)}") from None


def check_policy(manifest, policy: Policy) -> list[RuleResult]:
    results = []
    for rule, read in MEASURES.items():
        allowed = getattr(policy, rule)
        if allowed is None:
            continue
        measured = read(manifest)
        if measured is None:
            passed = policy.allow_unmeasured
        elif rule.startswith("min_"):
            passed = measured >= allowed
        else:
            passed = measured <= allowed
        results.append(RuleResult(rule, allowed, measured, passed))
    if not results:
        raise BadInputError("the policy sets no rule; set at least one, e.g. min_accuracy: 0.8")
    return results


def read_gated_manifest(path):
    """The manifest a gate may judge: files matching the content digest, manifest matching its seal.

    A gate passes only what fmkit measured on this model, so it refuses (CheckFailedError, exit 1)
    a bundle whose files changed, whose manifest was edited outside fmkit, whose seal this workspace
    cannot check (signed with another key), or that has no seal (made by an older fmkit).
    """
    from fmkit.bundle.seal import check_seal
    from fmkit.bundle.store import read_manifest_data
    from fmkit.bundle.verify import content_problems
    from fmkit.errors import CheckFailedError

    manifest, data = read_manifest_data(path)
    seal = check_seal(data)
    fixes = {
        "edited": "re-create the bundle with fmkit (or restore it from where it was made)",
        "unknown-key": "gate it where it was made (the same workspace, or the same $FMKIT_SIGNING_KEY)",
        "unsealed": f"re-measure it with `fmkit evaluate {path}` (which seals the manifest with this workspace's key) "
                    "and gate again",
    }
    if seal.state != "ok":
        raise CheckFailedError(f"gate refuses {path}: {seal.message}, so its measured values are not evidence; "
                               f"{fixes[seal.state]}")
    problems = content_problems(path, manifest)
    if problems:
        raise CheckFailedError(f"gate refuses {path}: its files do not match the content digest its metrics were "
                               f"measured on ({'; '.join(problems)}); re-create the bundle with fmkit")
    return manifest
