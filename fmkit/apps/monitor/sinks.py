"""Where an alert goes: appended to ``alerts.jsonl`` and POSTed as JSON to a webhook.

A webhook that is down must not stop the monitor: each POST is retried with exponential backoff
and a timeout, and an alert that still was not delivered is recorded in ``webhook_failures.jsonl``
(with the attempts and the last error) instead of raising. The whole delivery is bounded by
``(retries + 1) * timeout_s + backoff_s * (2**retries - 1)`` seconds. Loads no httpx until a POST.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

ALERTS_FILE = "alerts.jsonl"
FAILURES_FILE = "webhook_failures.jsonl"
RETRIED_STATUSES = (408, 425, 429)  # besides every 5xx: the receiver may take it a moment later


class WebhookConfig(BaseModel):
    """A receiver for alerts; no ``url`` means no webhook. Every problem is reported at once."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="http(s) URL each alert is POSTed to as JSON (none: no webhook)")
    timeout_s: float = Field(5.0, description="seconds one POST may take before it counts as failed")
    retries: int = Field(3, description="further attempts after a failed POST (connection error, timeout, 5xx)")
    backoff_s: float = Field(0.5, description="wait before the first retry; doubled before each next one")
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers (e.g. Authorization)")

    @model_validator(mode="after")
    def _check(self) -> "WebhookConfig":
        errors = []
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            errors.append(f"url={self.url!r}: use an http:// or https:// URL")
        if self.timeout_s <= 0:
            errors.append(f"timeout_s={self.timeout_s}: must be positive (e.g. 5)")
        if not 0 <= self.retries <= 20:
            errors.append(f"retries={self.retries}: must be between 0 and 20")
        if self.backoff_s < 0:
            errors.append(f"backoff_s={self.backoff_s}: must be 0 or more seconds")
        if errors:
            raise ValueError("; ".join(errors))
        return self


@dataclass(frozen=True)
class Delivery:
    """What happened to one POST: delivered or not, after how many attempts, the last status or error."""

    delivered: bool
    attempts: int
    status: int | None = None
    error: str | None = None


def post_webhook(payload: dict, cfg: WebhookConfig, *, sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """POST ``payload`` as JSON to ``cfg.url``, retrying connection errors, timeouts and 5xx; never raises."""
    import httpx

    if cfg.url is None:
        return Delivery(False, 0, error="no webhook url configured")
    headers = {"content-type": "application/json", "user-agent": "fmkit-monitor", **cfg.headers}
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    status, error = None, None
    with httpx.Client(timeout=cfg.timeout_s) as client:
        for attempt in range(1, cfg.retries + 2):
            try:
                response = client.post(cfg.url, content=body, headers=headers)
                status, error = response.status_code, None
                if response.status_code < 300:
                    return Delivery(True, attempt, status)
                error = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code not in RETRIED_STATUSES:
                    return Delivery(False, attempt, status, error)  # the receiver refused it: retrying won't help
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            if attempt <= cfg.retries:
                sleep(cfg.backoff_s * 2 ** (attempt - 1))
    return Delivery(False, cfg.retries + 1, status, error)


def append_jsonl(path: Path, records: list[dict]) -> None:
    """Append one JSON object per line and fsync, so a kill after this call loses none of them."""
    if not records:
        return
    text = "".join(json.dumps(record, ensure_ascii=False, default=str) + "\n" for record in records)
    with open(path, "a", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


class AlertSinks:
    """The alert log in ``out_dir`` and the optional webhook; ``emit`` sends each new alert to both.

    The caller dedupes (M2's store keys alerts by topic and start); this only delivers.
    """

    def __init__(self, out_dir: Path, webhook: WebhookConfig | None = None, *, log: Callable[[str], None] = print,
                 sleep: Callable[[float], None] = time.sleep):
        self.out_dir = Path(out_dir)
        self.webhook = webhook or WebhookConfig()
        self.log = log
        self._sleep = sleep

    @property
    def alerts_path(self) -> Path:
        return self.out_dir / ALERTS_FILE

    @property
    def failures_path(self) -> Path:
        return self.out_dir / FAILURES_FILE

    def emit(self, alerts: list[dict]) -> list[Delivery]:
        """Log every alert, then POST each to the webhook; undelivered ones land in webhook_failures.jsonl."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        append_jsonl(self.alerts_path, alerts)
        if self.webhook.url is None:
            return []
        deliveries = []
        for alert in alerts:
            delivery = post_webhook(alert, self.webhook, sleep=self._sleep)
            deliveries.append(delivery)
            if not delivery.delivered:
                self.log(f"webhook {self.webhook.url}: alert {alert.get('topic')}@{alert.get('start')} not "
                         f"delivered after {delivery.attempts} attempt(s) ({delivery.error}); recorded in "
                         f"{self.failures_path}")
                append_jsonl(self.failures_path, [{"alert": alert, "url": self.webhook.url,
                                                   "attempts": delivery.attempts, "status": delivery.status,
                                                   "error": delivery.error,
                                                   "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}])
        return deliveries
