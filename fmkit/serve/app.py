"""The FastAPI application: its lifespan (load the models, flush the audit log), the error handlers
that authenticate and audit every refused request, the body limit, and the route groups of
``fmkit/serve/routes/`` (health, models, admin, dashboard, assistants, drift, monitors, recommenders)."""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import asynccontextmanager

from fmkit._version import __version__
from fmkit.serve.access import Access, audit_target
from fmkit.serve.config import ServeConfig
from fmkit.serve.errors import ApiError, error_response
from fmkit.serve.routes.server import Server, log


AUDIT_BACKLOG = 100_000  # audit rows held in memory while the store does not answer


def create_app(config: ServeConfig):
    from fastapi import FastAPI

    from fmkit.serve.limits import BodyLimit
    from fmkit.serve.routes import admin, assistants, dashboard, drift, health, models, monitors, recommenders
    from fmkit.serve.state import ServerState

    state = ServerState.create(config)
    server = Server(state, config, Access(state, config))
    app = FastAPI(title="fmkit serve", version=__version__, lifespan=lifespan(server),
                  description="Predict with fmkit bundles. Send `Authorization: Bearer <key>`; "
                  "keys come from `fmkit keys create`. Text models take `texts`, image models take `images` "
                  "(base64 files); `GET /v1/models` says which (`inputs`).")
    app.state.fmkit = state
    add_error_handlers(app, server.access)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes, respond=body_too_large(server.access))
    app.add_middleware(WorkerHeader)
    for group in (health, models, admin, dashboard, assistants, drift, monitors, recommenders):
        group.add_routes(app, server)
    return app


def lifespan(server: Server):
    state = server.state

    async def flush_audit():
        rows, state.audit = state.audit, []
        if rows:
            try:
                await asyncio.get_running_loop().run_in_executor(None, state.keys.write_audit, rows)
            except Exception:  # a full disk or a restarting database must not stop the flusher (or the server)
                kept = (rows + state.audit)[-AUDIT_BACKLOG:]  # retried next flush; the oldest go past the bound
                log.exception("could not write %d audit rows; %d kept for the next try", len(rows), len(kept))
                state.audit = kept

    async def flush_audit_forever(stop: asyncio.Event):
        """Every 0.5 s until ``stop``; stopped, never cancelled: a cancel landing mid-write would leave the last
        rows in a thread still writing while the server reports it has shut down."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
            await flush_audit()

    @asynccontextmanager
    async def run(app):
        for name, path in server.config.bundles.items():
            await state.load(name, path)
        await app.state.assistants.start()  # fmkit/serve/routes/assistants.py
        await app.state.drift.start()  # --watch: fmkit/serve/drift.py
        await app.state.monitors.start()  # --monitor: fmkit/serve/routes/monitors.py
        await app.state.recommenders.start()  # --recommender: fmkit/serve/routes/recommenders.py
        state.ready = True
        stop_flushing = asyncio.Event()
        flusher = asyncio.get_running_loop().create_task(flush_audit_forever(stop_flushing))
        yield
        state.ready = False
        for name in list(state.models):  # graceful: every accepted request is answered
            await state.unload(name)
        await app.state.drift.stop()
        await app.state.monitors.stop()  # a final refresh, series.parquet and manifest.json per monitor
        stop_flushing.set()
        await flusher  # a write in flight finishes
        await flush_audit()

    return run


def add_error_handlers(app, access: Access) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def refuse(request, status, code, message, limit=None, headers=None):
        """A request refused before its endpoint ran (bad body, 413): authenticated first, always audited."""
        started = time.perf_counter()
        endpoint, model = audit_target(request.url.path)
        key = None
        try:
            key = access.authorize_route(request)
        except ApiError as refusal:
            status, code, message, limit, headers = (refusal.status, refusal.code, refusal.message, refusal.limit,
                                                     refusal.headers)
        access.audit(key, endpoint, model, None, status, started)
        return error_response(status, code, message, limit, headers)

    @app.exception_handler(ApiError)
    async def api_error(request, error: ApiError):
        if not error.audited:  # predict, explain and :load write their own rows, with the key and the count
            endpoint, model = audit_target(request.url.path)
            access.audit(access.key_or_none(request.headers), endpoint, model, None, error.status, time.perf_counter())
        return error_response(error.status, error.code, error.message, error.limit, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p)[:100] for p in e['loc'])}: {e['msg']}" for e in error.errors()[:20])
        return refuse(request, 422, "invalid_request", problems or "invalid request body")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, error):
        if error.status_code in (400, 413, 422):  # the body could not be read: still authenticate first
            return refuse(request, error.status_code, "http_error", str(error.detail), headers=error.headers)
        # keep the exception's headers: a 405 must say which methods are Allowed
        return error_response(error.status_code, "http_error", str(error.detail), headers=error.headers)


def body_too_large(access: Access):
    """The body limit's answer: the refusal is audited under the key the headers carry, if any."""

    def respond(scope, status, code, message, limit):
        started = time.perf_counter()
        endpoint, model = audit_target(scope["path"])
        key = access.key_or_none({k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]})
        access.audit(key, endpoint, model, None, status, started)
        return error_response(status, code, message, limit)

    return respond


class WorkerHeader:
    """Every response says which process answered (``X-Fmkit-Worker: PID``): with ``--workers N`` or replicas
    behind a load balancer, a log line or a client can tell them apart. A process id reveals nothing else."""

    def __init__(self, app):
        self.app, self.header = app, (b"x-fmkit-worker", str(os.getpid()).encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def tagged(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, tagged)

