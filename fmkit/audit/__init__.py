"""Audit and transparency: policy gates now; fairness, explanations, cards and reports next."""
