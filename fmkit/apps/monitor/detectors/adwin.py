"""ADWIN (river.drift.ADWIN) on the stream of negative (1) / other (0) events of one topic.

ADWIN keeps a variable-length window and cuts it where two halves' means differ beyond what
``adwin_delta`` allows; an interval alerts when a cut happens while its events are fed, its share
is above the mean ADWIN held before it (a rise, not a recovery), and it passes the common gate.
"""

from __future__ import annotations

import pandas as pd

from fmkit.apps.monitor.detectors.base import eligible, register_detector, spread_events
from fmkit.apps.monitor.detectors.config import DetectorConfig


@register_detector("adwin")
def flags(table: pd.DataFrame, cfg: DetectorConfig) -> pd.Series:
    from river.drift import ADWIN

    detector = ADWIN(delta=cfg.adwin_delta, clock=1)  # test every event: a one-interval surge is short
    raised = []
    for count, negatives in zip(table["count"], table["negatives"]):
        before, cut = detector.estimation, False
        for value in spread_events(int(count), int(negatives)):
            detector.update(value)
            cut = cut or detector.drift_detected
        raised.append(cut and count > 0 and negatives / count > before)
    return eligible(table, cfg) & pd.Series(raised, index=table.index)
