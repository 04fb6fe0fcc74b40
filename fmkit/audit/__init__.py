"""Audit and transparency: the registered audit checks (checks/), fairness mitigation, policy gates,
model cards and the membership-inference attack."""
