"""The drift route: GET /v1/models/NAME/drift, the watch's figures for a served model (``--watch``).

Read access like the model card (a key's allowlist names the model); the report is computed fresh
(a check: it updates the gauges and may raise the alert) off the event loop.
"""

from __future__ import annotations

from fastapi import Request  # module level: FastAPI resolves the string annotations against these globals

from fmkit.serve.access import READ
from fmkit.serve.errors import ApiError
from fmkit.serve.routes.server import ERRORS, Server
from fmkit.serve.schemas import ErrorResponse


def add_routes(app, server: Server) -> None:
    from fmkit.serve.drift import DriftHost

    host = app.state.drift = DriftHost(server)

    @app.get("/v1/models/{name}/drift", tags=["models"], responses={**ERRORS, 409: {"model": ErrorResponse}})
    async def drift(name: str, request: Request):
        """Drift of the model's recent traffic vs its test split: PSI of the predicted labels, the mean-confidence
        drop and an MMD two-sample test on its features, each with its threshold and whether it is past it."""
        key = server.access.authorize(request, READ, name)
        server.slot_for(name, key)  # 404 for a model that is not served (or not this key's)
        if not server.config.watch:
            raise ApiError(404, "not_watched", "this server does not watch drift; start it with --watch")
        host.sync()
        if name in host.problems:
            raise ApiError(409, "no_drift_reference", host.problems[name])
        if name not in host.watches:
            raise ApiError(503, "not_ready", f"the drift watch of {name!r} is starting; retry shortly",
                           headers={"Retry-After": "1"})
        return await host.report(name)
