"""The volume-aware z-score: a surge is an interval whose negative share stands ``threshold``
standard errors above the trailing baseline (``surge_z``), is at least ``min_lift`` times that
baseline, and holds at least ``min_count`` events."""

from __future__ import annotations

import pandas as pd

from fmkit.apps.monitor.detectors.base import eligible, register_detector, surge_z
from fmkit.apps.monitor.detectors.config import DetectorConfig


@register_detector("zscore")
def flags(table: pd.DataFrame, cfg: DetectorConfig) -> pd.Series:
    lifted = table["negative_share"] >= cfg.min_lift * table["baseline_share"]
    return eligible(table, cfg) & lifted & (surge_z(table) >= cfg.threshold)
