"""The robustness check: is the prediction stable under typos, casing, punctuation and whitespace noise?"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fmkit.audit.checks.base import AUDIT_CHECKS, TEXT_INPUT, TEXT_ONLY_DECISIONS, AuditCheck, AuditContext


class RobustnessOptions(BaseModel):
    """prediction stability under typos, casing, punctuation and whitespace noise"""

    model_config = ConfigDict(extra="forbid")

    perturbations: list[str] | None = Field(None, description="robustness perturbations (default: all)")

    @field_validator("perturbations")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        from fmkit.audit.robustness import PERTURBATIONS

        unknown = [p for p in value if p not in PERTURBATIONS]
        if unknown:
            raise ValueError(f"perturbations {unknown} unknown; use {', '.join(PERTURBATIONS.names())}")
        return value


def run(context: AuditContext, options: RobustnessOptions) -> dict:
    from fmkit.audit.robustness import robustness_audit

    rows = context.rows
    return robustness_audit(context.predict_proba, context.manifest.labels, rows.texts, rows.labels,
                            options.perturbations, context.settings.seed)


def summary(result: dict) -> str:
    return ", ".join(f"{name} {v['stability_rate']:.4f}" for name, v in result["perturbations"].items())


AUDIT_CHECKS.register("robustness")(
    AuditCheck(RobustnessOptions, run, summary, requires=(TEXT_INPUT, TEXT_ONLY_DECISIONS)))
