"""Page-Hinkley (river.drift.PageHinkley, mode "up") on the stream of negative (1) / other (0) events.

It accumulates how far each event sits above the running mean (less ``ph_delta``, forgetting with
``ph_alpha``) and signals when that sum climbs ``ph_threshold`` above its minimum; it then resets.
An interval alerts when a signal fires while its events are fed and it passes the common gate.
"""

from __future__ import annotations

import pandas as pd

from fmkit.apps.monitor.detectors.base import eligible, register_detector, spread_events
from fmkit.apps.monitor.detectors.config import DetectorConfig

MIN_INSTANCES = 30  # events before the first test: a running mean of fewer is too noisy to deviate from


@register_detector("page-hinkley")
def flags(table: pd.DataFrame, cfg: DetectorConfig) -> pd.Series:
    from river.drift import PageHinkley

    detector = PageHinkley(min_instances=MIN_INSTANCES, delta=cfg.ph_delta, threshold=cfg.ph_threshold,
                           alpha=cfg.ph_alpha, mode="up")
    raised = []
    for count, negatives in zip(table["count"], table["negatives"]):
        signal = False
        for value in spread_events(int(count), int(negatives)):
            detector.update(value)
            signal = signal or detector.drift_detected
        raised.append(signal)
    return eligible(table, cfg) & pd.Series(raised, index=table.index)
