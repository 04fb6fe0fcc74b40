"""Per topic and interval: count, negative share, mean sentiment, and the trailing baseline.

``compute_series`` is a pure function of the scored events, so a replay, a restart and a late
event that is re-scored all give the same series (M2 recomputes it from the store). Every topic
gets the full grid of intervals from the first event to the last — an empty interval is a row with
count 0 — so a baseline is always "the previous ``window`` intervals", not "the previous rows".

    series = compute_series(events, "1d")   # events: time (UTC), topics (tuple), sentiment, value
"""

from __future__ import annotations

import re
from typing import Callable

import pandas as pd

from fmkit.errors import BadInputError

SERIES_COLUMNS = ("topic", "start", "end", "count", "negatives", "negative_share", "mean_sentiment",
                  "baseline_share", "baseline_count", "baseline_events", "baseline_intervals")
EVENT_COLUMNS = ("time", "topics", "sentiment", "value")


def interval_delta(interval: str | pd.Timedelta) -> pd.Timedelta:
    """'1h', '1d', '30min' or a Timedelta -> a positive Timedelta (a clear error otherwise)."""
    if isinstance(interval, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*[dw]\s*", interval):
        interval = interval.strip()[:-1] + interval.strip()[-1].upper()  # pandas deprecates 'd'/'w'; users write 1d
    try:
        delta = pd.Timedelta(interval)
    except (ValueError, TypeError):
        raise BadInputError(f"interval={interval!r}: not a duration; use e.g. '1h', '6h' or '1d'") from None
    if delta <= pd.Timedelta(0):
        raise BadInputError(f"interval={interval!r}: must be a positive duration such as '1h' or '1d'")
    return delta


def _explode_topics(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (event, topic); an event without topics counts in 'all'."""
    topics = events["topics"].map(lambda value: tuple(value) if isinstance(value, (list, tuple)) and len(value)
                                  else ((value,) if isinstance(value, str) and value else ("all",)))
    return events.assign(topic=topics).explode("topic", ignore_index=True)


def compute_series(events: pd.DataFrame, interval: str | pd.Timedelta, *, window: int = 14) -> pd.DataFrame:
    """The per-topic, per-interval table (columns ``SERIES_COLUMNS``), sorted by topic then start.

    ``baseline_share`` pools the previous ``window`` intervals (current one excluded):
    negatives / events there, NaN while none has an event; ``baseline_count`` is their mean count.
    """
    missing = [column for column in EVENT_COLUMNS if column not in events.columns]
    if missing:
        raise BadInputError(f"compute_series: the events lack column(s) {', '.join(missing)}; "
                            f"give {', '.join(EVENT_COLUMNS)}")
    delta = interval_delta(interval)
    if events.empty:
        return pd.DataFrame({column: [] for column in SERIES_COLUMNS})
    rows = _explode_topics(events[list(EVENT_COLUMNS)])
    rows["start"] = pd.to_datetime(rows["time"], utc=True).dt.floor(delta)
    rows["negative"] = (rows["sentiment"] == "negative").astype(int)
    grouped = rows.groupby(["topic", "start"]).agg(count=("negative", "size"), negatives=("negative", "sum"),
                                                    mean_sentiment=("value", "mean"))
    grid = pd.date_range(rows["start"].min(), rows["start"].max(), freq=delta)
    tables = []
    for topic in sorted(grouped.index.get_level_values("topic").unique()):
        table = grouped.loc[topic].reindex(grid)
        table.index.name = "start"
        table[["count", "negatives"]] = table[["count", "negatives"]].fillna(0).astype(int)
        previous = table[["count", "negatives"]].shift(1, fill_value=0)
        trailing = previous.rolling(window, min_periods=1).sum()
        table["baseline_events"] = trailing["count"].astype(int)
        table["baseline_share"] = (trailing["negatives"] / trailing["count"]).where(trailing["count"] > 0)
        table["baseline_count"] = previous["count"].rolling(window, min_periods=1).mean()
        table["baseline_intervals"] = (previous["count"] > 0).astype(int).rolling(window, min_periods=1).sum() \
            .astype(int)
        table["negative_share"] = (table["negatives"] / table["count"]).where(table["count"] > 0)
        table = table.reset_index()
        table.insert(0, "topic", topic)
        table["end"] = table["start"] + delta
        tables.append(table)
    return pd.concat(tables, ignore_index=True)[list(SERIES_COLUMNS)]


def evidence_from_events(events: pd.DataFrame) -> Callable[[str, pd.Timestamp, pd.Timestamp, int], list[dict]]:
    """An ``evidence(topic, start, end, k)`` over an in-memory events table: its k most negative texts.

    The engine passes its own (a store query); this one serves the bench and tests. Needs ``text``.
    """
    rows = _explode_topics(events)
    rows["time"] = pd.to_datetime(rows["time"], utc=True)

    def evidence(topic: str, start, end, k: int) -> list[dict]:
        chosen = rows[(rows["topic"] == topic) & (rows["time"] >= pd.Timestamp(start))
                      & (rows["time"] < pd.Timestamp(end))]
        chosen = chosen.sort_values(["value", "time"], kind="stable").head(k)
        return [{key: (value.isoformat() if isinstance(value, pd.Timestamp) else value)
                 for key, value in record.items()}
                for record in chosen[[c for c in ("id", "time", "text", "sentiment", "value")
                                      if c in chosen.columns]].to_dict("records")]

    return evidence
