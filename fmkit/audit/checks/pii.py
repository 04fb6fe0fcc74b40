"""The pii check: PII found in the audited texts (Presidio, offline)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from fmkit.audit.checks.base import AUDIT_CHECKS, AuditCheck, AuditContext


class PiiOptions(BaseModel):
    """PII found in the audited texts (Presidio, offline)"""

    model_config = ConfigDict(extra="forbid")


def run(context: AuditContext, options: PiiOptions) -> dict:
    from fmkit.data.pii import pii_summary

    return pii_summary(context.rows.texts)


def summary(result: dict) -> str:
    return f"{result['texts_with_pii']} of {result['texts']} texts hold PII {result['entities']}"


AUDIT_CHECKS.register("pii")(AuditCheck(PiiOptions, run, summary))
