"""Monitor routes (``fmkit serve --monitor NAME=monitor.yaml``): ingest events, read alerts and the trend series,
list the monitors a key may use, and the trend page /ui/monitors/NAME.

A monitor is M2's ``Monitor`` (fmkit/apps/monitor/engine.py) running in this process, served like a model:
the same keys (a key's allowlist names it), roles (ingest: predict; reading: read), rate limit, body limit
and audit row (texts only under --log-inputs). A request's events are checked one by one: a bad event is
refused alone (its index and reason in ``rejected``), the rest are scored, stored by id (sending an event
twice counts it once) and the series and alerts are recomputed; new alerts go to the monitor's
alerts.jsonl and webhook as in ``fmkit monitor run``. Ingests run off the event loop, one at a time per
monitor (the scorer uses every core).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request  # module level: FastAPI resolves the string annotations against these globals

from fmkit.serve.access import PREDICT, READ
from fmkit.serve.config import MODEL_NAME
from fmkit.serve.errors import ApiError
from fmkit.serve.routes.server import ERRORS, JSON_ERRORS, Server, log, run_in_turn

INGEST_SCHEMA = {"type": "object", "required": ["events"], "additionalProperties": False, "properties": {
    "events": {"type": "array", "minItems": 1, "description": "JSON objects with id, time (ISO 8601) and text; "
               "other fields are stored with the event", "items": {"type": "object", "properties": {
                   "id": {"type": "string"}, "time": {"type": "string"}, "text": {"type": "string"}}}}}}


def read_monitor_config(path: Path, workspace: Path):
    """The monitor YAML as a MonitorConfig; its run folder defaults to WORKSPACE/monitors/NAME (set by the caller)."""
    import yaml

    from fmkit.apps.monitor.config import MonitorConfig
    from fmkit.errors import BadInputError

    try:
        settings = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise BadInputError(f"--monitor: {path} does not exist; write a monitor YAML (docs/monitor.md)") from None
    except yaml.YAMLError as error:
        raise BadInputError(f"--monitor: {path} is not valid YAML ({error})") from None
    if not isinstance(settings, dict):
        raise BadInputError(f"--monitor: {path} must be a mapping of monitor settings, not a {type(settings).__name__}")
    from pydantic import ValidationError

    try:
        return MonitorConfig.model_validate(settings)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in error.errors())
        raise BadInputError(f"--monitor {path}: {problems}") from None


def run_folder(cfg, name: str, workspace: Path) -> Path:
    return Path(cfg.out) if cfg.out else Path(workspace) / "monitors" / name


@dataclass
class MonitorSlot:
    name: str
    path: Path
    monitor: object  # fmkit.apps.monitor.engine.Monitor
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0


class MonitorMetrics:
    def __init__(self, registry):
        from prometheus_client import Counter, Histogram

        self.events = Counter("fmkit_monitor_events_total", "ingested events by outcome (accepted, duplicate, "
                              "rejected)", ["monitor", "outcome"], registry=registry)
        self.alerts = Counter("fmkit_monitor_alerts_total", "alerts raised by served monitors", ["monitor"],
                              registry=registry)
        self.ingest = Histogram("fmkit_monitor_ingest_seconds", "seconds per :ingest (score, store, refresh)",
                                ["monitor"], buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=registry)


class MonitorHost:
    """The served monitors: opened (and their scorers loaded) at start, closed (series + manifest) at stop."""

    def __init__(self, server: Server):
        self.server, self.config = server, server.config
        self.slots: dict[str, MonitorSlot] = {}
        self.metrics = MonitorMetrics(server.state.metrics.registry)

    async def start(self) -> None:
        from fmkit.apps.monitor.engine import Monitor

        loop = asyncio.get_running_loop()
        for name, path in self.config.monitors.items():
            cfg = read_monitor_config(Path(path), self.config.workspace)

            def open_monitor(cfg=cfg, name=name):
                monitor = Monitor(cfg, run_folder(cfg, name, self.config.workspace), log=log.info)
                monitor.scorer  # load it now (the default sentiment bundle may be built: the log says so)
                return monitor

            self.slots[name] = MonitorSlot(name, Path(path), await loop.run_in_executor(None, open_monitor))
        if self.slots:
            self._refresher = asyncio.create_task(self.refresh_idle())

    async def refresh_idle(self) -> None:
        """An ingest within refresh_seconds of the last refresh only marks the monitor dirty; once the traffic
        stops, this refreshes it, so the last batch's alert is raised now, not at the next ingest."""
        every = min(slot.monitor.cfg.refresh_seconds for slot in self.slots.values()) or 1.0
        while True:
            await asyncio.sleep(max(every, 0.5))
            for slot in self.slots.values():
                if getattr(slot.monitor, "_dirty", False) and not slot.lock.locked():
                    try:
                        alerts = await run_in_turn(slot, slot.monitor.refresh, self.config.request_timeout_s * 3)
                        self.metrics.alerts.labels(slot.name).inc(len(alerts))
                    except Exception:  # noqa: BLE001 - a failed refresh is logged; the next ingest tries again
                        log.exception("monitor %s: idle refresh failed", slot.name)

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        refresher = getattr(self, "_refresher", None)
        if refresher is not None:
            refresher.cancel()
        for slot in self.slots.values():
            async with slot.lock:  # an ingest in flight finishes first
                await loop.run_in_executor(None, slot.monitor.close)

    def slot_for(self, name: str, key=None) -> MonitorSlot:
        slot = self.slots.get(name)
        if slot is None:
            visible = sorted(n for n in self.slots if key is None or key.may_use(n))
            raise ApiError(404, "unknown_monitor", f"no monitor {name!r}; served: {', '.join(visible) or 'none'}")
        return slot

    async def ingest(self, slot: MonitorSlot, events: list) -> dict:
        if slot.waiting >= self.config.queue_size:
            raise ApiError(503, "overloaded", "the queue is full; retry shortly", "queue_size",
                           headers={"Retry-After": "1"})
        timeout = self.config.request_timeout_s * 3  # scoring a full request of events takes ~1 s on 2 cores
        try:
            return (await run_in_turn(slot, lambda: slot.monitor.ingest(events), timeout)).to_dict()
        except asyncio.TimeoutError:  # the events are still stored once scored: resending them is safe (by id)
            raise ApiError(504, "timeout", f"not ingested within {timeout} s; resend (events are stored once by id)",
                           "request_timeout_s") from None
        except ApiError:
            raise
        except Exception:
            log.exception("monitor %s (%s) failed on an ingest", slot.name, slot.path)
            raise ApiError(500, "monitor_failed", f"monitor {slot.name!r} failed on this request; the server log "
                           "has the details") from None

    def describe(self, slot: MonitorSlot, sees_paths: bool) -> dict:
        from fmkit.serve.redact import redact

        monitor = slot.monitor
        settings = monitor.cfg.model_dump(mode="json", include={"interval", "detector", "topic_threshold",
                                                                "max_text_chars", "evidence"})
        scorer = monitor.scorer.describe()
        body = {"name": slot.name, "settings": settings, "scorer": scorer if sees_paths else redact(scorer),
                "counts": dict(monitor.counts), "alerts": len(monitor.alerts())}
        if sees_paths:
            body |= {"config": str(slot.path), "run_folder": str(monitor.out_dir), "store": monitor.store_url}
        return body


def parse_events(raw: bytes, limit: int) -> list:
    """The request's ``events`` list; a body that is not that is refused whole (each item is checked later)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError, huge ints, deep nesting
        raise ApiError(422, "invalid_request", f"body: not valid JSON ({str(error)[:120]})") from None
    if not isinstance(body, dict) or set(body) != {"events"} or not isinstance(body["events"], list):
        raise ApiError(422, "invalid_request", 'send {"events": [{"id": ..., "time": ..., "text": ...}, ...]} and '
                       "nothing else")
    events = body["events"]
    if not events:
        raise ApiError(422, "invalid_request", "events: send at least one event")
    if len(events) > limit:
        raise ApiError(413, "too_many_events", f"{len(events)} events; at most {limit} per request", "max_events")
    return events


def series_records(series) -> list[dict]:
    columns = [c for c in ("topic", "start", "end", "count", "negatives", "negative_share", "mean_sentiment",
                           "baseline_share") if c in series.columns]
    frame = series[columns].copy()
    for column in ("start", "end"):
        if column in frame:
            frame[column] = frame[column].map(lambda t: t.isoformat() if hasattr(t, "isoformat") else str(t))
    return json.loads(frame.to_json(orient="records", double_precision=6))


def add_routes(app, server: Server) -> None:
    from fastapi.responses import HTMLResponse

    access, config = server.access, server.config
    host = app.state.monitors = MonitorHost(server)
    body_schema = {"requestBody": {"required": True, "content": {"application/json": {"schema": INGEST_SCHEMA}}}}

    @app.post("/v1/monitors/{name}:ingest", tags=["monitors"], responses=ERRORS, openapi_extra=body_schema)
    async def ingest(name: str, request: Request):
        """Score and store events; a bad event is refused alone (``rejected``: index and reason), an id already
        stored counts as a duplicate, and alerts the new events raise come back in ``alerts``."""
        import time

        raw = await request.body()  # read, not parsed: over --max-body-bytes it is the body limit's 413 (audited)
        logged: list[str] = []
        with server.observed("ingest", name, None, logged) as record:
            record["key"] = access.authorize(request, PREDICT, name)
            slot = host.slot_for(name, record["key"])
            events = parse_events(raw, config.max_events)
            if config.log_inputs:
                logged.extend(str(e.get("text")) for e in events if isinstance(e, dict))
            started = time.perf_counter()
            result = await host.ingest(slot, events)
            host.metrics.ingest.labels(name).observe(time.perf_counter() - started)
            for outcome, count in (("accepted", result["accepted"]), ("duplicate", result["duplicates"]),
                                   ("rejected", len(result["rejected"]))):
                if count:
                    host.metrics.events.labels(name, outcome).inc(count)
            if result["alerts"]:
                host.metrics.alerts.labels(name).inc(len(result["alerts"]))
            return {"monitor": name} | result

    @app.get("/v1/monitors/{name}/alerts", tags=["monitors"], responses=ERRORS)
    async def monitor_alerts(name: str, request: Request, since: str | None = None):
        """Every alert of the monitor (``since``: those whose interval starts at or after that ISO 8601 time),
        with topic, start, end, negative share, baseline, score, count, detector and evidence."""
        key = access.authorize(request, READ, name)
        slot = host.slot_for(name, key)
        try:
            alerts = await asyncio.get_running_loop().run_in_executor(None, slot.monitor.alerts, since)
        except ValueError:
            raise ApiError(422, "bad_since", f"since={since[:80]!r} is not an ISO 8601 time; write e.g. "
                           "2020-03-01T00:00:00Z") from None
        return {"monitor": name, "alerts": alerts}

    @app.get("/v1/monitors/{name}/series", tags=["monitors"], responses=ERRORS)
    async def monitor_series(name: str, request: Request):
        """Per topic and interval: count, negatives, negative share, mean sentiment, trailing baseline share."""
        key = access.authorize(request, READ, name)
        slot = host.slot_for(name, key)
        series = await asyncio.get_running_loop().run_in_executor(None, slot.monitor.series)
        return {"monitor": name, "interval": slot.monitor.cfg.interval, "series": series_records(series)}

    @app.get("/v1/monitors", tags=["monitors"], responses=ERRORS)
    async def list_monitors(request: Request):
        """The monitors this key may use: settings, scorer, counts (config paths: admin keys only)."""
        key = access.authorize(request, READ)
        return [host.describe(slot, access.sees_paths(key)) for name, slot in host.slots.items()
                if key is None or key.may_use(name)]

    @app.get("/ui/monitors/{name}", response_class=HTMLResponse, include_in_schema=False, responses=JSON_ERRORS)
    async def monitor_page(name: str):
        """The trend page: no data in it (not even whether NAME is served); it asks for a key and fetches with it."""
        from fmkit.serve.monitor_page import PAGE

        if not MODEL_NAME.fullmatch(name):
            raise ApiError(404, "not_found", "no such page")
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})
