"""The volume-aware z-score: a surge is an interval whose negative share stands ``threshold``
standard errors above the trailing baseline (``surge_z``), has at least ``min_lift`` times the
baseline's odds of a negative, and holds at least ``min_count`` events.

The lift is on the odds p / (1 - p), not on the share itself: a plain ratio could never be met once
the baseline is above 1 / min_lift (a stream that is 70% negative could not alert at a lift of 1.5),
while for small shares the two agree (odds ≈ share)."""

from __future__ import annotations

import pandas as pd

from fmkit.apps.monitor.detectors.base import eligible, register_detector, surge_z
from fmkit.apps.monitor.detectors.config import DetectorConfig


@register_detector("zscore")
def flags(table: pd.DataFrame, cfg: DetectorConfig) -> pd.Series:
    share, baseline = table["negative_share"], table["baseline_share"]
    lifted = share * (1 - baseline) >= cfg.min_lift * baseline * (1 - share)  # odds ratio >= min_lift, no division
    return eligible(table, cfg) & lifted & (surge_z(table) >= cfg.threshold)
