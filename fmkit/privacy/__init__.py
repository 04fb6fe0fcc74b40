"""Privacy: PII detection (Presidio, offline), and later anonymization, DP-SGD and membership inference."""
