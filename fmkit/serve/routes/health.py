"""Health routes: liveness and readiness (unauthenticated, for probes) and Prometheus metrics."""

from __future__ import annotations

from fastapi import Request  # module level: FastAPI resolves the string annotations against these globals

from fmkit.serve.errors import ApiError
from fmkit.serve.routes.server import ERRORS, Server
from fmkit.serve.schemas import ErrorResponse


def add_routes(app, server: Server) -> None:
    from fastapi.responses import PlainTextResponse

    state = server.state

    @app.get("/healthz", tags=["health"])
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorResponse}})
    async def readyz():  # unauthenticated (for probes): says how many models, not which
        if not state.ready:
            raise ApiError(503, "not_ready", "models are loading")
        return {"status": "ready", "models": len(state.models)}

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse, responses=ERRORS)
    async def metrics(request: Request):
        from prometheus_client import generate_latest

        server.access.authorize(request, ("admin", "read"))
        for name, slot in state.models.items():
            state.metrics.queue_depth.labels(name).set(slot.batcher.depth)
        return PlainTextResponse(generate_latest(state.metrics.registry).decode(),
                                 media_type="text/plain; version=0.0.4")
