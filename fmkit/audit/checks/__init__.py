"""The audit checks. Each file here registers one check with its own small config; a new check is a
new file here (and its name in the import below). ``fmkit.audit.run`` runs them, and the names and
help of ``fmkit audit`` come from this registry.
"""

from fmkit.audit.checks.base import AUDIT_CHECKS, AuditCheck, AuditContext, bundle_capabilities
from fmkit.audit.checks import (  # noqa: F401  (register themselves)
    counterfactual,
    explanations,
    fairness,
    pii,
    privacy,
    robustness,
)

__all__ = ["AUDIT_CHECKS", "AuditCheck", "AuditContext", "bundle_capabilities"]
