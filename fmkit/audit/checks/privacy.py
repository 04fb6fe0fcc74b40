"""The privacy check: membership inference (training rows vs test rows), recorded as
``privacy.membership_inference`` in the manifest (the attack: fmkit/audit/membership.py)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from fmkit.audit.checks.base import AUDIT_CHECKS, AuditCheck, AuditContext


class PrivacyOptions(BaseModel):
    """membership inference (loss-threshold and calibrated attacks, training rows vs test rows): AUC
    and TPR at 1% and 0.1% FPR with bootstrap CIs"""

    model_config = ConfigDict(extra="forbid")

    reference: str | None = Field(None, description="privacy: a bundle trained without these rows, to calibrate "
                                                    "the attack (default: the held-out population)")
    n_bootstrap: int = Field(200, ge=0, description="bootstrap resamples for fairness and privacy intervals")


def run(context: AuditContext, options: PrivacyOptions) -> dict:
    from fmkit.audit.membership import membership_audit

    s = context.settings
    return membership_audit(context.bundle, reference=Path(options.reference) if options.reference else None,
                            max_members=s.max_rows, n_bootstrap=options.n_bootstrap, seed=s.seed, device=s.device,
                            record=context.record)


def summary(p: dict) -> str:
    return (f"membership-inference AUC {p['auc']:.4f} ({p['strongest_attack']} attack, "
            f"{p['members']} members vs {p['non_members']} non-members), TPR@1%FPR {p['tpr_at_0.01_fpr']:.4f}")


AUDIT_CHECKS.register("privacy")(AuditCheck(PrivacyOptions, run, summary, sampled=False))
