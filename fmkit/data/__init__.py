"""Data layer: read a table, clean it, split it, fingerprint it, batch it, find PII in it (pii.py)."""

from fmkit.data.config import DataConfig
from fmkit.data.dataset import TextClassificationData, load_text_classification

__all__ = ["DataConfig", "TextClassificationData", "load_text_classification"]
