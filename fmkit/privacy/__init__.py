"""Privacy: anonymization (Presidio, offline) and DP-SGD training hooks.

PII detection is data inspection (``fmkit.data.pii``) and the membership-inference attack an audit
check (``fmkit.audit.membership``), so that privacy and audit never import each other.
"""
