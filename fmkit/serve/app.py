"""The FastAPI application: predict, models, health, metrics, keys, the dashboard."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager, contextmanager

from fastapi import Request  # module level: FastAPI resolves the string annotations against these globals

from fmkit._version import __version__
from fmkit.serve.config import ServeConfig
from fmkit.serve.schemas import (ErrorResponse, ExplainRequest, ExplainResponse, KeyRequest, LoadRequest,
                                 ModelSummary, PredictRequest, PredictResponse)

READ_ROLES = ("admin", "predict", "read")
ERRORS = {400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
          413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 429: {"model": ErrorResponse},
          503: {"model": ErrorResponse}, 504: {"model": ErrorResponse}}


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse bodies over ``limit`` bytes (413), declared or streamed. A plain ASGI middleware:
    Starlette's BaseHTTPMiddleware would add a task and stream copies to every request."""

    def __init__(self, app, limit: int, respond):
        self.app, self.limit, self.respond = app, limit, respond

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send, f"request body is {int(declared)} bytes")
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, send)
        except _BodyTooLarge:
            await self._refuse(scope, receive, send, f"request body exceeds {self.limit} bytes")

    async def _refuse(self, scope, receive, send, what: str):
        response = self.respond(413, "body_too_large", f"{what}; the limit is {self.limit}", "max_body_bytes")
        await response(scope, receive, send)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, limit: str | None = None, headers=None):
        self.status, self.code, self.message, self.limit, self.headers = status, code, message, limit, headers or {}


def create_app(config: ServeConfig):
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from fmkit.bundle.manifest import utc_now
    from fmkit.serve.batcher import QueueFullError
    from fmkit.serve.state import ServerState

    state = ServerState.create(config)

    async def flush_audit_forever():
        while True:
            await asyncio.sleep(0.5)
            await flush_audit()

    async def flush_audit():
        rows, state.audit = state.audit, []
        if rows:
            await asyncio.get_running_loop().run_in_executor(None, state.keys.write_audit, rows)

    @asynccontextmanager
    async def lifespan(app):
        for name, path in config.bundles.items():
            await state.load(name, path)
        state.ready = True
        flusher = asyncio.get_running_loop().create_task(flush_audit_forever())
        yield
        state.ready = False
        for name in list(state.models):  # graceful: every accepted request is answered
            await state.unload(name)
        flusher.cancel()
        await flush_audit()

    app = FastAPI(title="fmkit serve", version=__version__, lifespan=lifespan,
                  description="Predict with fmkit bundles. Send `Authorization: Bearer <key>`; "
                  "keys come from `fmkit keys create`.")
    app.state.fmkit = state

    def error_response(status, code, message, limit=None, headers=None):
        body = {"error": {"code": code, "message": message}}
        if limit:
            body["error"]["limit"] = limit
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request, error: ApiError):
        return error_response(error.status, error.code, error.message, error.limit, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        return error_response(422, "invalid_request", problems or "invalid request body")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, error):
        # keep the exception's headers: a 405 must say which methods are Allowed
        return error_response(error.status_code, "http_error", str(error.detail), headers=error.headers)

    app.add_middleware(BodyLimit, limit=config.max_body_bytes, respond=error_response)

    def authorize(request: Request, roles, model: str | None = None):
        if not config.auth:
            return None
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise ApiError(401, "unauthorized", "send `Authorization: Bearer <key>` (make one with `fmkit keys create`)",
                           headers={"WWW-Authenticate": "Bearer"})
        key = state.keys.verify(header[7:].strip())
        if key is None:
            raise ApiError(401, "unauthorized", "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        if key.role not in roles:
            raise ApiError(403, "forbidden", f"role {key.role!r} may not do this; needs one of {', '.join(roles)}")
        if model is not None and not key.may_use(model):
            raise ApiError(403, "forbidden", f"this key may not use model {model!r}")
        wait = state.buckets.take(key.id)
        if wait:
            raise ApiError(429, "rate_limited", f"rate limit of {config.rate_per_second}/s exceeded",
                           "rate_per_second", headers={"Retry-After": str(max(1, round(wait)))})
        return key

    def audit(key, endpoint, model, texts, status, started, inputs=None):
        state.audit.append((utc_now(), key.id if key else None, endpoint, model, len(texts) if texts else None,
                            status, round((time.perf_counter() - started) * 1000, 3),
                            "\n".join(inputs) if inputs and config.log_inputs else None))

    def slot_for(name: str):
        slot = state.models.get(name)
        if slot is None:
            raise ApiError(404, "unknown_model", f"no model {name!r}; served: {', '.join(sorted(state.models)) or 'none'}")
        return slot

    @app.get("/healthz", tags=["health"])
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorResponse}})
    async def readyz():
        if not state.ready:
            raise ApiError(503, "not_ready", "models are loading")
        return {"status": "ready", "models": sorted(state.models)}

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse, responses=ERRORS)
    async def metrics(request: Request):
        from prometheus_client import generate_latest

        authorize(request, ("admin", "read"))
        for name, slot in state.models.items():
            state.metrics.queue_depth.labels(name).set(slot.batcher.depth)
        return PlainTextResponse(generate_latest(state.metrics.registry).decode(),
                                 media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", tags=["models"], response_model=list[ModelSummary], responses=ERRORS)
    async def list_models(request: Request):
        authorize(request, READ_ROLES)
        return [slot.summary for slot in state.models.values()]

    @contextmanager
    def observed(endpoint: str, name: str, texts: list[str]):
        """Metrics and the audit row of one model request, whatever its outcome; the caller sets ``key``."""
        record = {"key": None, "status": 500}
        started = time.perf_counter()
        try:
            yield record
            record["status"] = 200
        except ApiError as error:
            record["status"] = error.status
            raise
        finally:
            state.metrics.requests.labels(endpoint, name, str(record["status"])).inc()
            state.metrics.latency.labels(endpoint, name).observe(time.perf_counter() - started)
            audit(record["key"], endpoint, name, texts, record["status"], started, texts)

    def check_texts(texts: list[str], limit: int, setting: str) -> None:
        if len(texts) > limit:
            raise ApiError(413, "too_many_texts", f"{len(texts)} texts; the limit is {limit} per request", setting)
        long = [i for i, t in enumerate(texts) if len(t) > config.max_chars]
        if long:
            raise ApiError(422, "text_too_long", f"texts {long[:5]} exceed {config.max_chars} characters",
                           "max_chars")

    @app.post("/v1/models/{name}:predict", tags=["models"], response_model=PredictResponse, responses=ERRORS)
    async def predict(name: str, body: PredictRequest, request: Request):
        with observed("predict", name, body.texts) as record:
            record["key"] = authorize(request, ("admin", "predict"), name)
            slot = slot_for(name)
            check_texts(body.texts, config.max_texts, "max_texts")
            try:
                probabilities = await asyncio.wait_for(slot.batcher.submit(body.texts), config.request_timeout_s)
            except QueueFullError:
                raise ApiError(503, "overloaded", "the queue is full; retry shortly", "queue_size",
                               headers={"Retry-After": "1"}) from None
            except asyncio.TimeoutError:
                raise ApiError(504, "timeout", f"no answer within {config.request_timeout_s} s",
                               "request_timeout_s") from None
            labels = slot.summary["labels"]
            return {"model": name, "predictions": [
                {"label": labels[int(row.argmax())], "probabilities": {l: float(p) for l, p in zip(labels, row)}}
                for row in probabilities]}

    async def explain(name: str, body: ExplainRequest, request: Request):
        """Per-word attributions (Captum layer integrated gradients); PyTorch bundles only, one at a time."""
        with observed("explain", name, body.texts) as record:
            record["key"] = authorize(request, ("admin", "predict"), name)
            slot = slot_for(name)
            if not slot.summary["explainable"]:
                raise ApiError(422, "not_explainable", f"model {name!r} runs on {slot.summary['runtime']}; "
                               "explanations need PyTorch weights: serve the bundle it was compressed from")
            check_texts(body.texts, config.max_explain_texts, "max_explain_texts")
            if body.target is not None and body.target not in slot.summary["labels"]:
                raise ApiError(404, "unknown_label", f"target {body.target!r} is not a label of {name!r}; use one "
                               f"of {slot.summary['labels']}")
            loop = asyncio.get_running_loop()

            def run():
                from fmkit.audit.explain import Explainer

                if slot.explainer is None:  # its own copy: Captum hooks the embeddings while it runs,
                    slot.explainer = Explainer(slot.path, device="cpu")  # which must not touch serving traffic
                slot.explainer.n_steps = body.steps
                return slot.explainer.explain(body.texts, target=body.target)

            try:
                async with state.explain_lock:
                    explanations = await asyncio.wait_for(loop.run_in_executor(None, run),
                                                          config.request_timeout_s * 3)
            except asyncio.TimeoutError:
                raise ApiError(504, "timeout", f"no explanation within {config.request_timeout_s * 3} s; send fewer "
                               "texts or fewer steps", "request_timeout_s") from None
            return {"model": name, "method": "layer integrated gradients (word embeddings)",
                    "explanations": [{"label": e.label, "probability": e.probability, "words": e.words,
                                      "convergence_delta": e.convergence_delta} for e in explanations]}

    # The per-request text limit is a setting, so the body model (and the OpenAPI spec) is made here:
    # clients and fuzzers see maxItems, and too many texts is a schema violation (422) like any other.
    from pydantic import Field, create_model

    explain.__annotations__["body"] = create_model(
        "ExplainRequest", __base__=ExplainRequest,
        texts=(list[str], Field(min_length=1, max_length=config.max_explain_texts, description="texts to explain")))
    explain.__annotations__["request"] = Request
    app.post("/v1/models/{name}:explain", tags=["models"], response_model=ExplainResponse, responses=ERRORS)(explain)

    @app.get("/v1/models/{name}/card", tags=["models"], response_class=HTMLResponse, responses=ERRORS)
    async def card(name: str, request: Request):
        """The model card (HTML), generated from the served bundle's manifest."""
        from fmkit.audit.card import render_html, render_markdown
        from fmkit.bundle import read_manifest

        authorize(request, READ_ROLES, name)
        slot = slot_for(name)
        return HTMLResponse(render_html(render_markdown(read_manifest(slot.path), slot.path), f"Model card: {name}"))

    @app.post("/v1/models/{name}:load", tags=["admin"], response_model=ModelSummary, responses=ERRORS)
    async def load(name: str, body: LoadRequest, request: Request):
        from pathlib import Path

        from fmkit.errors import FmkitError

        key = authorize(request, ("admin",))
        started = time.perf_counter()
        if not Path(body.bundle).is_dir():
            audit(key, "load", name, None, 404, started)
            raise ApiError(404, "bundle_not_found", f"no bundle directory {body.bundle!r} on the server")
        try:
            slot = await state.load(name, Path(body.bundle))
        except FmkitError as error:
            audit(key, "load", name, None, 422, started)
            raise ApiError(422, "bad_bundle", str(error)) from None
        audit(key, "load", name, None, 200, started)
        return slot.summary

    @app.delete("/v1/models/{name}", tags=["admin"], responses=ERRORS)
    async def unload(name: str, request: Request):
        key = authorize(request, ("admin",))
        slot_for(name)
        await state.unload(name)
        audit(key, "unload", name, None, 200, time.perf_counter())
        return {"unloaded": name}

    @app.post("/v1/keys", tags=["admin"], responses=ERRORS)
    async def create_key(body: KeyRequest, request: Request):
        from fmkit.errors import BadInputError

        authorize(request, ("admin",))
        try:
            token, record = state.keys.create(body.role, body.models, body.note)
        except BadInputError as error:
            raise ApiError(422, "invalid_role", str(error)) from None
        return {"key": token, "id": record.id, "role": record.role, "models": list(record.models),
                "note": "shown once: store it now"}

    @app.delete("/v1/keys/{key_id}", tags=["admin"], responses=ERRORS)
    async def revoke_key(key_id: str, request: Request):
        from fmkit.errors import BadInputError

        authorize(request, ("admin",))
        try:
            record = state.keys.revoke(key_id)
        except BadInputError as error:
            raise ApiError(404, "unknown_key", str(error)) from None
        return {"revoked": record.id}

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard():
        from fmkit.audit.card import markdown_to_html, render_markdown
        from fmkit.bundle import read_manifest
        from fmkit.serve.dashboard import render_dashboard

        cards = {name: markdown_to_html(render_markdown(read_manifest(slot.path), slot.path))
                 for name, slot in state.models.items()}
        return render_dashboard([slot.summary for slot in state.models.values()], cards)

    return app
