"""The detector registry and what every detector shares: the eligibility gate and the surge score.

A detector is a function ``flags(table, cfg) -> pd.Series[bool]`` over ONE topic's intervals (rows
of ``compute_series`` in time order): True where that interval is part of a surge. It registers
itself by name in its own file (``@register_detector("zscore")``). Detectors run over the whole
series every time (stateless across calls), so a replay and a restart flag the same intervals.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from fmkit.apps.monitor.detectors.config import DETECTOR_NAMES, DetectorConfig

Flags = Callable[[pd.DataFrame, DetectorConfig], pd.Series]
DETECTORS: dict[str, Flags] = {}


def register_detector(name: str) -> Callable[[Flags], Flags]:
    if name not in DETECTOR_NAMES:
        raise ValueError(f"detector {name!r}: add it to DETECTOR_NAMES in detectors/config.py first")

    def register(function: Flags) -> Flags:
        DETECTORS[name] = function
        return function

    return register


def get_detector(name: str) -> Flags:
    import fmkit.apps.monitor.detectors.adwin  # noqa: F401  (each file registers itself)
    import fmkit.apps.monitor.detectors.page_hinkley  # noqa: F401
    import fmkit.apps.monitor.detectors.zscore  # noqa: F401

    if name not in DETECTORS:
        raise ValueError(f"detector {name!r} is not registered; use one of {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name]


def eligible(table: pd.DataFrame, cfg: DetectorConfig) -> pd.Series:
    """Intervals that may alert at all: enough events now, and a baseline with enough history."""
    return ((table["count"] >= cfg.min_count) & (table["baseline_intervals"] >= cfg.min_history)
            & table["baseline_share"].notna())


def surge_z(table: pd.DataFrame) -> pd.Series:
    """Two-proportion z of the interval's negative share against its trailing baseline.

    Volume-aware both ways: the standard error shrinks with the interval's count AND the baseline's,
    so 3 negatives out of 4 scores far lower than 30 out of 40. Zero where undefined.
    """
    count = table["count"].astype(float)
    baseline_events = table["baseline_events"].astype(float)
    baseline_negatives = table["baseline_share"].fillna(0.0) * baseline_events
    pooled = (table["negatives"] + baseline_negatives) / (count + baseline_events)
    variance = pooled * (1 - pooled) * (1 / count.where(count > 0) + 1 / baseline_events.where(baseline_events > 0))
    z = (table["negative_share"] - table["baseline_share"]) / np.sqrt(variance.where(variance > 0))
    return z.replace([np.inf, -np.inf], np.nan).fillna(0.0)


def spread_events(count: int, negatives: int) -> list[float]:
    """An interval's events as 1.0 (negative) / 0.0, negatives spread evenly (river needs an order)."""
    return [float((index + 1) * negatives // count - index * negatives // count) for index in range(count)]
