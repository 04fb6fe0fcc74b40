"""The monitor: events in -> scored in micro-batches -> stored by id -> series and alerts recomputed from the store.

    monitor = Monitor(MonitorConfig(), "runs/news")
    monitor.ingest([{"id": "g1", "time": "2020-03-09T08:00:00Z", "text": "Oil prices crash"}])
    monitor.refresh()       # the series from every stored event; new alerts go to alerts.jsonl and the webhook
    monitor.close()         # writes series.parquet and manifest.json

One object serves the CLI (``fmkit monitor replay|run``: stream.py feeds it lines) and the server
(``fmkit serve --monitor``: a request's events go to ``ingest``); a lock makes it safe for one server
process's threads. Idempotent by event id: an id already stored is neither re-scored nor re-counted, so
a restart after kill -9 re-reads its input and ends with exactly the events it was given. Alerts are
stateless over the whole series (M3's detect), deduped by (topic, start) in the store.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fmkit.apps.monitor.config import MonitorConfig
from fmkit.apps.monitor.events import BadEvent, Event, parse_event, parse_line
from fmkit.apps.monitor.sources import Line

MANIFEST_FILE = "manifest.json"
SERIES_FILE = "series.parquet"
BAD_LINES_FILE = "bad_lines.jsonl"
COUNTS = ("read", "ingested", "duplicates", "rejected", "bad_lines")


@dataclass(frozen=True)
class IngestResult:
    """What one ``ingest`` did: new events stored, ids already there, refused events (index, reason), new alerts."""

    accepted: int
    duplicates: int
    rejected: list[tuple[int, str]] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": [{"index": index, "reason": reason} for index, reason in self.rejected],
                "alerts": self.alerts}


class Monitor:
    """A running monitor over the store ``cfg.store`` (default SQLite ``out_dir/monitor.db``)."""

    def __init__(self, cfg: MonitorConfig, out_dir, scorer=None, *, log: Callable[[str], None] = print):
        from fmkit.apps.monitor.sinks import AlertSinks
        from fmkit.apps.monitor.store import MonitorStore
        from fmkit.store import redact_url

        self.cfg, self.out_dir, self.log = cfg, Path(out_dir), log
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.store_url = redact_url(cfg.store_url(self.out_dir))
        self.store = MonitorStore(cfg.store_url(self.out_dir))
        self.sinks = AlertSinks(self.out_dir, cfg.webhook, log=log)
        self.counts: Counter = Counter({name: 0 for name in COUNTS})
        self.started = time.time()
        self._scorer = scorer
        self._lock = threading.RLock()
        self._dirty = True  # the store may hold events from an earlier run: the first refresh recomputes
        self._last_refresh = 0.0
        self._deliver(self.store.undelivered())  # alerts a kill cut off between record and delivery

    @property
    def scorer(self):
        """M1's scorer, loaded on first use (the default sentiment bundle may be built then: the log says so)."""
        if self._scorer is None:
            from fmkit.apps.monitor.scoring import load_scorer

            self._scorer = load_scorer(self.cfg.sentiment, self.cfg.topics, workspace=Path(self.cfg.workspace),
                                       threshold=self.cfg.topic_threshold, batch_size=self.cfg.batch_size,
                                       topic_encoder=self.cfg.topic_encoder, log=self.log)
        return self._scorer

    # -- ingest ---------------------------------------------------------------------------------------------
    def ingest(self, events: list[dict], *, refresh: bool = True) -> IngestResult:
        """Validate, score and store ``events`` (JSON objects); one bad event is refused alone, by its index."""
        parsed, rejected = [], []
        for index, record in enumerate(events):
            try:
                parsed.append((parse_event(record, max_text_chars=self.cfg.max_text_chars), "api", index))
            except BadEvent as error:
                rejected.append((index, str(error)))
        return self._ingest(parsed, rejected, len(events), refresh)

    def ingest_lines(self, lines: list[Line], *, refresh: bool = True) -> IngestResult:
        """Parse and ingest JSONL lines; a bad line is reported with its source and line number, and skipped."""
        parsed, rejected, bad = [], [], []
        for index, line in enumerate(lines):
            try:
                parsed.append((parse_line(line.text, max_text_chars=self.cfg.max_text_chars), line.source, line.number))
            except BadEvent as error:
                rejected.append((index, str(error)))
                bad.append({"source": line.source, "line": line.number, "reason": str(error)})
                self.log(f"{line.source}:{line.number}: skipped: {error}")
        if bad:
            from fmkit.apps.monitor.sinks import append_jsonl

            append_jsonl(self.out_dir / BAD_LINES_FILE, bad)
            with self._lock:
                self.counts["bad_lines"] += len(bad)
        return self._ingest(parsed, rejected, len(lines), refresh)

    def _ingest(self, parsed: list[tuple[Event, str, int]], rejected, read: int, refresh: bool) -> IngestResult:
        with self._lock:
            fresh, seen = [], set()
            for item in parsed:  # the same id twice in one batch: the first one counts
                if item[0].id not in seen:
                    seen.add(item[0].id)
                    fresh.append(item)
            known = self.store.known_ids([event.id for event, _, _ in fresh])
            fresh = [item for item in fresh if item[0].id not in known]
            inserted: set[str] = set()
            for start in range(0, len(fresh), self.cfg.batch_size):
                chunk = fresh[start:start + self.cfg.batch_size]
                scores = self.scorer.score([event.text for event, _, _ in chunk])
                inserted |= self.store.add([(event, score, source, line)
                                            for (event, source, line), score in zip(chunk, scores)])
            accepted = len(inserted)  # another worker may have stored some of ``fresh`` meanwhile: not ours
            duplicates = len(parsed) - accepted
            self.counts.update(read=read, ingested=accepted, duplicates=duplicates, rejected=len(rejected))
            self._dirty = self._dirty or accepted > 0
            alerts = self.refresh() if refresh and self._due() else []
            return IngestResult(accepted, duplicates, rejected, alerts)

    def _due(self) -> bool:
        return time.monotonic() - self._last_refresh >= self.cfg.refresh_seconds

    # -- series and alerts ----------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> list[dict]:
        """Recompute the series from every stored event, detect, record and deliver new alerts; returns them."""
        from fmkit.apps.monitor.alerts import detect
        from fmkit.apps.monitor.trends import compute_series

        with self._lock:
            if not (self._dirty or force):
                return []
            self._last_refresh = time.monotonic()
            self._dirty = False
            series = compute_series(self.store.events_frame(), self.cfg.interval, window=self.cfg.detector.window)
            self._series = series
            self._write_series(series)
            found = detect(series, self.cfg.detector, self.store.evidence, evidence_count=self.cfg.evidence) \
                if len(series) else []
            new = self.store.add_alerts(found)
            self._deliver(new)
            return new

    def _deliver(self, alerts: list[dict]) -> None:
        if alerts:
            self.sinks.emit(alerts)
            self.store.mark_delivered(alerts)
            for alert in alerts:
                self.log(f"ALERT {alert['topic']} from {alert['start']}: negative share {alert['negative_share']} "
                         f"vs baseline {alert['baseline']} ({alert['count']} events, score {alert['score']})")

    def _write_series(self, series) -> None:
        from fmkit.fileio import atomic_file

        with atomic_file(self.out_dir / SERIES_FILE) as path:
            series.to_parquet(path, index=False)

    def series(self):
        """The per-topic, per-interval table (trends.SERIES_COLUMNS) over every stored event."""
        with self._lock:
            if self._dirty or getattr(self, "_series", None) is None:
                self.refresh(force=True)
            return self._series.copy()

    def alerts(self, since=None) -> list[dict]:
        """Every alert recorded in the store (latest figures); ``since``: those starting at or after that time."""
        if since is not None:  # strict ISO 8601 like an event's time (no "now", no empty string); no offset = UTC
            from datetime import datetime, timezone

            from fmkit.apps.monitor.events import parse_time

            moment = since if isinstance(since, datetime) else parse_time(since)  # BadEvent is a ValueError
            since = (moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None
                     else moment.astimezone(timezone.utc)).isoformat()
        return self.store.alerts(since)

    # -- the run's record -----------------------------------------------------------------------------------
    def manifest(self) -> dict:
        with self._lock:
            scorer = self._scorer.describe() if self._scorer is not None else None
            return {"kind": "fmkit-monitor-run", "settings": self.cfg.model_dump(mode="json"),
                    "store": self.store_url, "scorer": scorer, "counts": dict(self.counts),
                    "stored_events": self.store.count(), "alerts": len(self.store.alerts()),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "seconds": round(time.time() - self.started, 3),
                    "files": {"alerts": self.sinks.alerts_path.name, "series": SERIES_FILE,
                              "bad_lines": BAD_LINES_FILE}}

    def write_manifest(self) -> Path:
        from fmkit.fileio import write_json_atomic

        path = self.out_dir / MANIFEST_FILE
        write_json_atomic(path, self.manifest())
        return path

    def close(self) -> None:
        """Final refresh, series.parquet and manifest.json; the store is released."""
        with self._lock:
            self.refresh(force=True)
            self.write_manifest()
            self.store.close()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def describe_counts(counts) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {counts.get(name, 0)}" for name in COUNTS)


