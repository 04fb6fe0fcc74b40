"""The monitor's tables in any fmkit store (fmkit/store: SQLite by default, PostgreSQL for several workers).

``events`` is keyed by the event id: inserting an id that is there is a no-op that the caller counts as a
duplicate, so re-reading a file after a crash, or two workers given the same event, never counts it
twice. The scores are stored with the event, so the series is recomputed from the store (late and
out-of-order events land in their own interval). ``event_topics`` has one row per (event, topic) for
the evidence query. ``alerts`` is keyed by topic and start: one surge, one row, whoever saw it first;
``delivered`` is set after the alert reached alerts.jsonl and the webhook, so one cut off by a kill is
delivered on the next start instead of being lost.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ALL_TOPICS = "all"  # an event the scorer gave no topic counts here, as trends.compute_series does


def _tables(metadata):
    from sqlalchemy import BigInteger, Boolean, Column, Float, ForeignKey, Index, Integer, String, Table, Text

    events = Table(
        "monitor_events", metadata,
        Column("id", String(200), primary_key=True),
        Column("time_us", BigInteger, nullable=False, index=True),  # microseconds since 1970 UTC: exact, portable
        Column("text", Text, nullable=False),
        Column("sentiment", String(16), nullable=False),
        Column("value", Float, nullable=False),
        Column("probs", Text, nullable=False),  # JSON label -> probability
        Column("topics", Text, nullable=False),  # JSON list
        Column("extra", Text, nullable=False),  # JSON: the event's other fields
        Column("source", Text, nullable=False),
        Column("line", Integer, nullable=True),
        Column("ingested_at", Float, nullable=False))
    topics = Table(
        "monitor_event_topics", metadata,
        Column("event_id", String(200), ForeignKey("monitor_events.id", ondelete="CASCADE"), primary_key=True),
        Column("topic", String(200), primary_key=True),
        Column("time_us", BigInteger, nullable=False),
        Column("value", Float, nullable=False),
        Index("monitor_event_topics_by_time", "topic", "time_us"))
    alerts = Table(
        "monitor_alerts", metadata,
        Column("key", String(300), primary_key=True),  # topic + "|" + start
        Column("topic", String(200), nullable=False),
        Column("start", String(40), nullable=False),  # ISO 8601 UTC, as the alert carries it
        Column("payload", Text, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("delivered", Boolean, nullable=False, default=False))
    return events, topics, alerts


def to_micros(moment: datetime) -> int:
    delta = moment.astimezone(timezone.utc) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def alert_key(alert: dict) -> str:
    return f"{alert['topic']}|{alert['start']}"


class MonitorStore:
    """The monitor's events and alerts in the database at ``url``; tables are created when missing."""

    def __init__(self, url: str):
        from sqlalchemy import MetaData
        from sqlalchemy.exc import SQLAlchemyError

        from fmkit.store import check_reachable, open_database

        self.url = url
        self.engine = open_database(url)
        check_reachable(self.engine)
        self.metadata = MetaData()
        self.events, self.topics, self.alerts_table = _tables(self.metadata)
        try:
            self.metadata.create_all(self.engine)
        except SQLAlchemyError:  # another worker created them at the same moment: they exist now
            self.metadata.create_all(self.engine)

    def known_ids(self, ids: list[str]) -> set[str]:
        from sqlalchemy import select

        known: set[str] = set()
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                known.update(connection.execute(select(self.events.c.id).where(self.events.c.id.in_(chunk))).scalars())
        return known

    def add(self, scored: list[tuple]) -> set[str]:
        """Store (event, score, source, line) tuples in one transaction; returns the ids that were new."""
        from fmkit.store import insert_ignoring_duplicates

        now = time.time()
        rows, topic_rows = [], []
        for event, score, source, line in scored:
            micros = to_micros(event.time)
            topics = list(score.topics)
            rows.append({"id": event.id, "time_us": micros, "text": event.text, "sentiment": score.sentiment,
                         "value": float(score.value), "probs": json.dumps({k: float(v) for k, v in score.probs.items()}),
                         "topics": json.dumps(topics), "extra": json.dumps(event.extra, default=str),
                         "source": source, "line": line, "ingested_at": now})
            topic_rows += [{"event_id": event.id, "topic": topic, "time_us": micros, "value": float(score.value)}
                           for topic in (topics or [ALL_TOPICS])]
        with self.engine.begin() as connection:
            inserted = insert_ignoring_duplicates(connection, self.events, rows, "id")
            chosen = [row for row in topic_rows if row["event_id"] in inserted]
            if chosen:
                connection.execute(self.topics.insert(), chosen)
        return inserted

    def count(self) -> int:
        from sqlalchemy import func, select

        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(self.events)).scalar_one())

    def events_frame(self):
        """Every stored event as the table trends.compute_series takes: id, time (UTC), topics, sentiment, value."""
        import pandas as pd
        from sqlalchemy import select

        columns = self.events.c
        with self.engine.connect() as connection:
            rows = connection.execute(select(columns.id, columns.time_us, columns.topics, columns.sentiment,
                                             columns.value)).all()
        frame = pd.DataFrame(rows, columns=["id", "time_us", "topics", "sentiment", "value"])
        frame["time"] = pd.to_datetime(frame["time_us"].astype("int64"), unit="us", utc=True)
        frame["topics"] = [tuple(json.loads(topics)) for topics in frame["topics"]]
        return frame.drop(columns="time_us")

    def evidence(self, topic: str, start, end, k: int) -> list[dict]:
        """The ``k`` most negative texts of ``topic`` in [start, end), most negative first (ties: earliest)."""
        import pandas as pd
        from sqlalchemy import select

        events, topics = self.events, self.topics
        query = (select(events.c.id, events.c.time_us, events.c.text, events.c.sentiment, events.c.value)
                 .join(topics, topics.c.event_id == events.c.id)
                 .where(topics.c.topic == topic, topics.c.time_us >= to_micros(pd.Timestamp(start).to_pydatetime()),
                        topics.c.time_us < to_micros(pd.Timestamp(end).to_pydatetime()))
                 .order_by(topics.c.value, topics.c.time_us, events.c.id).limit(k))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [{"id": row.id, "time": pd.Timestamp(row.time_us, unit="us", tz="UTC").isoformat(), "text": row.text,
                 "sentiment": row.sentiment, "value": round(float(row.value), 4)} for row in rows]

    def add_alerts(self, alerts: list[dict]) -> list[dict]:
        """Record alerts; returns those no one recorded before (the ones to deliver). Known ones get their
        latest figures (a surge that goes on grows its end and counts) but are not delivered again."""
        from sqlalchemy import update

        from fmkit.store import insert_ignoring_duplicates

        now = time.time()
        rows = {alert_key(alert): {"key": alert_key(alert), "topic": alert["topic"], "start": alert["start"],
                                   "payload": json.dumps(alert, default=str), "created_at": now, "delivered": False}
                for alert in alerts}
        with self.engine.begin() as connection:
            inserted = insert_ignoring_duplicates(connection, self.alerts_table, list(rows.values()), "key")
            table = self.alerts_table
            for key in rows.keys() - inserted:
                connection.execute(update(table).where(table.c.key == key).values(payload=rows[key]["payload"]))
        return [alert for alert in alerts if alert_key(alert) in inserted]

    def undelivered(self) -> list[dict]:
        from sqlalchemy import select

        table = self.alerts_table
        with self.engine.connect() as connection:
            payloads = connection.execute(select(table.c.payload).where(table.c.delivered.is_(False))
                                          .order_by(table.c.start, table.c.topic)).scalars().all()
        return [json.loads(payload) for payload in payloads]

    def mark_delivered(self, alerts: list[dict]) -> None:
        from sqlalchemy import update

        if not alerts:
            return
        table = self.alerts_table
        with self.engine.begin() as connection:
            connection.execute(update(table).where(table.c.key.in_([alert_key(a) for a in alerts])).values(delivered=True))

    def alerts(self, since: str | None = None) -> list[dict]:
        """Every recorded alert (its latest figures), by start; ``since``: only those starting at or after it."""
        from sqlalchemy import select

        table = self.alerts_table
        query = select(table.c.payload).order_by(table.c.start, table.c.topic)
        if since is not None:
            query = query.where(table.c.start >= since)
        with self.engine.connect() as connection:
            return [json.loads(payload) for payload in connection.execute(query).scalars()]

    def close(self) -> None:
        self.engine.dispose()
