"""From flagged intervals to alerts: one surge gives one alert, with its figures and its evidence.

``detect`` runs the configured detector over each topic's intervals, merges flagged intervals that
are at most ``cooldown`` quiet intervals apart into one episode, and describes each episode:

    {"topic", "start", "end", "negative_share", "baseline", "score", "count", "negatives",
     "intervals", "peak", "detector", "evidence": [the most negative texts, most negative first]}

``start`` is the first flagged interval's start and never moves as a surge goes on, so
(topic, start) identifies an alert across replays and restarts (the store dedupes on it).
"""

from __future__ import annotations

from typing import Callable

import pandas as pd

from fmkit.apps.monitor.detectors.base import get_detector, surge_z
from fmkit.apps.monitor.detectors.config import DetectorConfig

Evidence = Callable[[str, pd.Timestamp, pd.Timestamp, int], list[dict]]


def _episodes(flagged: list[int], cooldown: int) -> list[list[int]]:
    """Positions of flagged intervals grouped into runs with gaps of at most ``cooldown`` intervals."""
    runs: list[list[int]] = []
    for position in flagged:
        if runs and position - runs[-1][-1] - 1 <= cooldown:
            runs[-1].append(position)
        else:
            runs.append([position])
    return runs


def _iso(value) -> str:
    return pd.Timestamp(value).isoformat()


def detect(series: pd.DataFrame, cfg: DetectorConfig, evidence: Evidence | None = None, *,
           evidence_count: int = 5) -> list[dict]:
    """Every alert in ``series`` (compute_series output), ordered by start then topic."""
    flags = get_detector(cfg.name)
    alerts = []
    for topic, table in series.groupby("topic", sort=True):
        table = table.sort_values("start").reset_index(drop=True)
        flagged = table.index[flags(table, cfg)].tolist()
        if not flagged:
            continue
        scores = surge_z(table)
        for run in _episodes(flagged, cfg.cooldown):
            span = table.iloc[run[0]:run[-1] + 1]
            peak = max(run, key=lambda position: scores[position])
            start, end = table.at[run[0], "start"], table.at[run[-1], "end"]
            count, negatives = int(span["count"].sum()), int(span["negatives"].sum())
            alerts.append({
                "topic": str(topic), "start": _iso(start), "end": _iso(end),
                "negative_share": round(negatives / count, 4) if count else None,
                "baseline": round(float(table.at[run[0], "baseline_share"]), 4),
                "score": round(float(scores[run].max()), 3),
                "count": count, "negatives": negatives, "intervals": len(run),
                "peak": _iso(table.at[peak, "start"]), "detector": cfg.name,
                "evidence": evidence(str(topic), start, end, evidence_count) if evidence else [],
            })
    return sorted(alerts, key=lambda alert: (alert["start"], alert["topic"]))
