"""The counterfactual check: swap identity terms in the sampled texts and count prediction flips."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fmkit.audit.checks.base import AUDIT_CHECKS, TEXT_INPUT, TEXT_ONLY_DECISIONS, AuditCheck, AuditContext


class CounterfactualOptions(BaseModel):
    """swap identity terms (he/she, names, nationality, religion) and count prediction flips"""

    model_config = ConfigDict(extra="forbid")

    terms: str | None = Field(None, description="JSON file with extra identity-term pairs")


def run(context: AuditContext, options: CounterfactualOptions) -> dict:
    from fmkit.audit.counterfactual import counterfactual_audit, load_term_pairs

    return counterfactual_audit(context.predict_proba, context.manifest.labels, context.rows.texts,
                                load_term_pairs(options.terms))


def summary(result: dict) -> str:
    return (f"{result['swapped']} swapped sentences, flip rate {result.get('flip_rate', 0):.4f}, "
            f"worst pair {result.get('worst_pair')}")


AUDIT_CHECKS.register("counterfactual")(
    AuditCheck(CounterfactualOptions, run, summary, requires=(TEXT_INPUT, TEXT_ONLY_DECISIONS)))
