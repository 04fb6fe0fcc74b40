"""Evaluation: streaming metrics, calibration, confusion matrix, written into the manifest."""

from fmkit.evaluate.metrics import StreamingClassificationMetrics

__all__ = ["StreamingClassificationMetrics"]
