"""The fairness check: per-group metrics and gaps (Fairlearn) over every row of the split; needs group columns."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fmkit.audit.checks.base import AUDIT_CHECKS, AuditCheck, AuditContext


class FairnessOptions(BaseModel):
    """per-group accuracy, selection rate, TPR, FPR and demographic-parity / equalized-odds gaps with
    bootstrap CIs (Fairlearn; needs group columns)"""

    model_config = ConfigDict(extra="forbid")

    sensitive: list[str] = Field(default_factory=list, description="group columns for fairness (default: dataset's)")
    positive_label: str | None = Field(None, description="favourable label for fairness (default: second of two)")
    n_bootstrap: int = Field(200, ge=0, description="bootstrap resamples for fairness and privacy intervals")
    min_group_size: int = Field(50, ge=1, description="smaller groups are left out of fairness gaps")


def run(context: AuditContext, options: FairnessOptions) -> dict:
    from fmkit.audit.fairness_audit import FairnessAuditConfig, audit_fairness

    s = context.settings
    return audit_fairness(context.bundle, FairnessAuditConfig(
        data=s.data, split=s.split, seed=s.seed, batch_size=s.batch_size, device=s.device, **options.model_dump()),
        record=context.record)


def summary(report: dict) -> str:
    parts = []
    for attribute, values in report.items():
        if "demographic_parity_difference" in values:
            parts.append(f"{attribute}: DP diff {values['demographic_parity_difference']:.4f}, "
                         f"EO diff {values['equalized_odds_difference']:.4f}")
        else:
            parts.append(f"{attribute}: {values.get('note')}")
    return "; ".join(parts)


AUDIT_CHECKS.register("fairness")(AuditCheck(FairnessOptions, run, summary, sampled=False))
