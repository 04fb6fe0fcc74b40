"""What a monitor is given: its models, the interval, the detector, the webhook, the store, the limits.

``MonitorConfig`` validates on construction and reports every problem at once. ``fmkit monitor`` reads
it from ``--config monitor.yaml`` and makes a flag of every field (``--sentiment``, ``--topics``,
``--interval``, ``--detector``, ``--webhook``, ``--store``, ...); ``fmkit serve --monitor NAME=FILE``
reads the same file. Loads nothing heavy (no pandas, no SQLAlchemy): the CLI checks a config first.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fmkit.apps.monitor.detectors.config import DetectorConfig
from fmkit.apps.monitor.sinks import WebhookConfig

# "30min", "1h", "6h", "1d", "7d": a number and a unit pandas understands (trends.interval_delta parses it)
INTERVAL_PATTERN = re.compile(r"^\s*\d+(\.\d+)?\s*(s|min|h|d|w)\s*$")
STDIN = "-"


class MonitorConfig(BaseModel):
    """One monitor; every problem with the settings is reported at once."""

    model_config = ConfigDict(extra="forbid")

    input: str | None = Field(None, description="events to read: a JSONL file, a folder of *.jsonl files, or - "
                              "for stdin (one JSON object per line with id, time, text)")
    out: str | None = Field(None, description="run folder for alerts.jsonl, series.parquet, manifest.json and the "
                            "default store monitor.db")
    sentiment: str | None = Field(None, description="sentiment bundle (negative/neutral/positive); default: the "
                                  "project's financial sentiment bundle, built on first use and cached in the "
                                  "workspace")
    topics: str | None = Field(None, description="topics file (YAML/JSON: topic -> example texts) or a topic "
                               "classifier bundle; default: one topic 'all'")
    topic_threshold: float | None = Field(None, description="similarity (topics file) or probability (bundle) a "
                                          "text needs to be in a topic; default: the scorer's")
    topic_encoder: str = Field("auto", description="encoder of a topics file: sentiment (the sentiment bundle's "
                               "own: one forward per text for both), minilm (or another base: the zero-shot "
                               "encoder on ONNX Runtime INT8, built once in the workspace), a text-retrieval "
                               "bundle, or auto (the sentiment bundle's own when its embedding was distilled to "
                               "minilm's (the default bundle built with student_layers); else minilm: sharing a plain "
                               "fine-tuned encoder ruins the topics, docs/monitor_gold.md)")
    interval: str = Field("1d", description="length of one trend interval: 1h, 6h, 1d, ...")
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    store: str | None = Field(None, description="database URL of the event store: sqlite:///path.db or "
                              "postgresql://user@host/db (several workers share one); default: sqlite OUT/monitor.db")
    batch_size: int = Field(256, description="events scored and stored together (one micro-batch, one transaction; "
                            "sorted by length inside it, so a longer one pads less). A followed input is read as it "
                            "comes: a micro-batch is never held back to fill up")
    max_text_chars: int = Field(2000, description="longest event text accepted; longer events are rejected with "
                                "their line number")
    evidence: int = Field(5, description="most negative texts attached to each alert as its evidence")
    poll_seconds: float = Field(0.5, description="run: how often a followed file or folder is checked for new "
                                "lines, and the longest a partial micro-batch waits")
    refresh_seconds: float = Field(2.0, description="run/serve: the series and alerts are recomputed from the "
                                   "store at most this often (and whenever the input is idle)")
    workspace: str = Field(".", description="workspace folder where the default sentiment bundle (and the INT8 "
                           "topic encoder) is cached")

    @model_validator(mode="after")
    def _check(self) -> "MonitorConfig":
        errors = []
        if not INTERVAL_PATTERN.match(self.interval):
            errors.append(f"interval={self.interval!r}: write a number and a unit (s, min, h, d, w), e.g. 1h or 1d")
        elif float(re.match(r"\s*(\d+(\.\d+)?)", self.interval).group(1)) <= 0:
            errors.append(f"interval={self.interval!r}: must be longer than zero")
        if self.topic_threshold is not None and not -1.0 <= self.topic_threshold <= 1.0:
            errors.append(f"topic_threshold={self.topic_threshold}: must be between -1 and 1 (cosine) or 0 and 1")
        if self.store is not None and not self.store.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            errors.append(f"store={self.store.split('@')[-1]!r}: use sqlite:///path/to/file.db or "
                          "postgresql://user:password@host:5432/database")
        if not self.topic_encoder.strip():
            errors.append("topic_encoder='': use auto, sentiment, minilm or a text-retrieval bundle")
        if not 1 <= self.batch_size <= 100_000:
            errors.append(f"batch_size={self.batch_size}: must be between 1 and 100000")
        if self.max_text_chars < 1:
            errors.append(f"max_text_chars={self.max_text_chars}: must be at least 1")
        if not 0 <= self.evidence <= 100:
            errors.append(f"evidence={self.evidence}: must be between 0 and 100 texts")
        if self.poll_seconds <= 0:
            errors.append(f"poll_seconds={self.poll_seconds}: must be positive (e.g. 0.5)")
        if self.refresh_seconds < 0:
            errors.append(f"refresh_seconds={self.refresh_seconds}: must be 0 (every batch) or more")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def store_url(self, out_dir) -> str:
        """The configured store, or SQLite ``OUT/monitor.db``."""
        if self.store:
            return self.store
        from fmkit.store import sqlite_url
        from pathlib import Path

        return sqlite_url(Path(out_dir) / "monitor.db")
