"""The FastAPI application: predict, models, health, metrics, keys, the dashboard."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager, contextmanager

from typing import Annotated

from fastapi import Path, Request  # module level: FastAPI resolves the string annotations against these globals

from fmkit._version import __version__
from fmkit.serve.access import ADMIN, PREDICT, READ, Access, audit_target
from fmkit.serve.config import MODEL_NAME, MODEL_NAME_RULE, ServeConfig, model_name_problem
from fmkit.serve.errors import ApiError, error_response  # noqa: F401  (ApiError re-exported)
from fmkit.serve.schemas import (ErrorResponse, ExplainRequest, ExplainResponse, KeyRequest, LoadRequest,
                                 ModelSummary, PredictRequest, PredictResponse)

log = logging.getLogger("fmkit.serve")
ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 422, 429, 500, 503, 504)}
# An HTML route's errors are still JSON: say so, or FastAPI documents them under text/html.
JSON_ERRORS = {status: {"description": "error", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/ErrorResponse"}}}} for status in ERRORS}


def create_app(config: ServeConfig):
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, PlainTextResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from fmkit.serve.limits import BodyLimit
    from fmkit.serve.state import ServerState

    state = ServerState.create(config)
    access = Access(state, config)

    async def flush_audit_forever():
        while True:
            await asyncio.sleep(0.5)
            await flush_audit()

    async def flush_audit():
        rows, state.audit = state.audit, []
        if rows:
            try:
                await asyncio.get_running_loop().run_in_executor(None, state.keys.write_audit, rows)
            except Exception:  # a locked or full disk must not stop the flusher (or the server)
                log.exception("could not write %d audit rows", len(rows))

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
                  "keys come from `fmkit keys create`. Text models take `texts`, image models take `images` "
                  "(base64 files); `GET /v1/models` says which (`inputs`).")
    app.state.fmkit = state

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

    def body_too_large(scope, status, code, message, limit):
        started = time.perf_counter()
        endpoint, model = audit_target(scope["path"])
        key = access.key_or_none({k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]})
        access.audit(key, endpoint, model, None, status, started)
        return error_response(status, code, message, limit)

    app.add_middleware(BodyLimit, limit=config.max_body_bytes, respond=body_too_large)

    def slot_for(name: str, key=None):
        slot = state.models.get(name)
        if slot is None:
            visible = sorted(n for n in state.models if key is None or key.may_use(n))
            raise ApiError(404, "unknown_model", f"no model {name!r}; served: {', '.join(visible) or 'none'}")
        return slot

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

        access.authorize(request, ("admin", "read"))
        for name, slot in state.models.items():
            state.metrics.queue_depth.labels(name).set(slot.batcher.depth)
        return PlainTextResponse(generate_latest(state.metrics.registry).decode(),
                                 media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", tags=["models"], response_model=list[ModelSummary], responses=ERRORS)
    async def list_models(request: Request):
        """The models this key may use (server paths only for admin keys)."""
        from fmkit.serve.redact import public_summary

        key = access.authorize(request, READ)
        return [slot.summary if access.sees_paths(key) else public_summary(slot.summary)
                for name, slot in state.models.items() if key is None or key.may_use(name)]

    @contextmanager
    def observed(endpoint: str, name: str, count: int, logged: list[str]):
        """Metrics and the audit row of one model request, whatever its outcome; the caller sets ``key``."""
        record = {"key": None, "status": 500}
        started = time.perf_counter()
        try:
            yield record
            record["status"] = 200
        except ApiError as error:
            record["status"], error.audited = error.status, True
            raise
        finally:
            state.metrics.requests.labels(endpoint, name, str(record["status"])).inc()
            state.metrics.latency.labels(endpoint, name).observe(time.perf_counter() - started)
            access.audit(record["key"], endpoint, name, count, record["status"], started, logged)

    async def run_model(slot, inputs):
        """Probabilities from the slot's batcher; every failure becomes an ApiError naming no server path."""
        from fmkit.errors import BadInputError, NonFiniteOutputError
        from fmkit.serve.batcher import QueueFullError

        try:
            return await asyncio.wait_for(slot.batcher.submit(inputs), config.request_timeout_s)
        except QueueFullError:
            raise ApiError(503, "overloaded", "the queue is full; retry shortly", "queue_size",
                           headers={"Retry-After": "1"}) from None
        except asyncio.TimeoutError:
            raise ApiError(504, "timeout", f"no answer within {config.request_timeout_s} s", "request_timeout_s") from None
        except BadInputError as error:
            raise ApiError(422, "bad_input", str(error).replace(str(slot.path), slot.name)) from None
        except NonFiniteOutputError as error:
            log.error("model %s (%s): %s", slot.name, slot.path, error)
            raise ApiError(500, "model_failed", f"model {slot.name!r} answered non-finite probabilities for this "
                           "request; its weights may be damaged (an admin can check them with `fmkit info`)") from None
        except Exception:
            log.exception("model %s (%s) failed on a request", slot.name, slot.path)
            raise ApiError(500, "model_failed", f"model {slot.name!r} failed on this request; the server log "
                           "has the details") from None

    @app.post("/v1/models/{name}:predict", tags=["models"], response_model=PredictResponse, responses=ERRORS)
    async def predict(name: str, body: PredictRequest, request: Request):
        """Classify ``texts`` (text models) or ``images`` (image models, base64 files)."""
        from fmkit.serve.inputs import IMAGES, check_texts, decode_images, image_digests

        sent = "texts" if body.texts is not None else "images"
        values = body.texts if body.texts is not None else body.images
        logged = (values if sent == "texts" else image_digests(values)) if config.log_inputs else None
        with observed("predict", name, len(values), logged) as record:
            record["key"] = access.authorize(request, PREDICT, name)
            slot = slot_for(name, record["key"])
            kind = slot.inputs
            if sent != kind.field:
                raise ApiError(422, "wrong_input_kind", f"model {name!r} classifies {kind.noun}s: send "
                               f"\"{kind.field}\", not \"{sent}\"")
            if kind is IMAGES:  # decoding is CPU work: off the event loop
                inputs = await asyncio.get_running_loop().run_in_executor(
                    None, decode_images, values, config, slot.runtime)
            else:
                inputs = check_texts(values, config, config.max_texts, "max_texts")
            probabilities = await run_model(slot, inputs)
            labels = slot.summary["labels"]
            return {"model": name, "predictions": [
                {"label": labels[int(row.argmax())], "probabilities": {l: float(p) for l, p in zip(labels, row)}}
                for row in probabilities]}

    async def explain(name: str, body: ExplainRequest, request: Request):
        """Per-word attributions (Captum layer integrated gradients); PyTorch text bundles only, one at a time."""
        import math

        from fmkit.serve.inputs import check_texts

        with observed("explain", name, len(body.texts), body.texts if config.log_inputs else None) as record:
            record["key"] = access.authorize(request, PREDICT, name)
            slot = slot_for(name, record["key"])
            if not slot.summary["explainable"]:
                raise ApiError(422, "not_explainable", f"model {name!r} is a {slot.summary['task']} model on "
                               f"{slot.summary['runtime']}; explanations need a text model with PyTorch weights "
                               "(serve the bundle it was compressed from)")
            check_texts(body.texts, config, config.max_explain_texts, "max_explain_texts")
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
            if not all(math.isfinite(e.probability) for e in explanations):
                raise ApiError(500, "model_failed", f"model {name!r} answered non-finite probabilities")
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

    @app.get("/v1/models/{name}/card", tags=["models"], response_class=HTMLResponse, responses=JSON_ERRORS)
    async def card(name: str, request: Request):
        """The model card (HTML), generated from the served bundle's manifest (paths: admin keys only)."""
        from pathlib import PurePath

        from fmkit.audit.card import render_html, render_markdown
        from fmkit.bundle import read_manifest
        from fmkit.serve.redact import public_manifest

        key = access.authorize(request, READ, name)
        slot = slot_for(name, key)
        manifest = read_manifest(slot.path)
        if not access.sees_paths(key):
            manifest, shown = public_manifest(manifest), PurePath(name)
        else:
            shown = slot.path
        return HTMLResponse(render_html(render_markdown(manifest, shown), f"Model card: {name}"))

    @app.post("/v1/models/{name}:load", tags=["admin"], response_model=ModelSummary, responses=ERRORS)
    async def load(name: Annotated[str, Path(pattern=MODEL_NAME.pattern, description=MODEL_NAME_RULE)],
                   body: LoadRequest, request: Request):
        """Load (or replace) model NAME from a bundle directory on the server (inside --bundle-root when set)."""
        from fmkit.errors import FmkitError

        key = access.authorize(request, ADMIN)
        started = time.perf_counter()
        try:
            path = bundle_path(name, body.bundle)
            slot = await state.load(name, path)
        except ApiError as error:
            access.audit(key, "load", name, None, error.status, started)
            error.audited = True
            raise
        except FmkitError as error:
            access.audit(key, "load", name, None, 422, started)
            raise ApiError(422, "bad_bundle", str(error), audited=True) from None
        except Exception as error:  # damaged weights, unreadable files: the bundle's problem, not the server's
            log.exception("loading %s from %s failed", name, body.bundle)
            access.audit(key, "load", name, None, 422, started)
            raise ApiError(422, "bad_bundle", f"could not load {body.bundle!r}: {type(error).__name__}: {error}",
                           audited=True) from None
        access.audit(key, "load", name, None, 200, started)
        return slot.summary

    def bundle_path(name: str, text: str):
        from pathlib import Path as FilePath

        problem = model_name_problem(name)
        if problem:
            raise ApiError(422, "invalid_model_name", problem)
        try:
            path = FilePath(text).resolve()  # symlinks and .. resolved: what is checked is what is opened
        except (OSError, ValueError, RuntimeError):
            raise ApiError(422, "bad_bundle", f"{text!r} is not a usable path") from None
        root = config.bundle_root
        if root is not None and not path.is_relative_to(FilePath(root).resolve()):
            raise ApiError(403, "outside_bundle_root", f"{text!r} is not inside the server's --bundle-root; "
                           "this server loads bundles from there only")
        try:
            if path.is_dir():
                return path
        except (OSError, ValueError):
            pass
        raise ApiError(404, "bundle_not_found", f"no bundle directory {text!r} on the server")

    @app.delete("/v1/models/{name}", tags=["admin"], responses=ERRORS)
    async def unload(name: str, request: Request):
        key = access.authorize(request, ADMIN)
        slot_for(name)
        await state.unload(name)
        access.audit(key, "unload", name, None, 200, time.perf_counter())
        return {"unloaded": name}

    @app.post("/v1/keys", tags=["admin"], responses=ERRORS)
    async def create_key(body: KeyRequest, request: Request):
        from fmkit.errors import BadInputError

        access.authorize(request, ADMIN)
        try:
            token, record = state.keys.create(body.role, body.models, body.note)
        except BadInputError as error:
            raise ApiError(422, "invalid_key_request", str(error)) from None
        return {"key": token, "id": record.id, "role": record.role, "models": list(record.models),
                "note": "shown once: store it now"}

    @app.delete("/v1/keys/{key_id}", tags=["admin"], responses=ERRORS)
    async def revoke_key(key_id: str, request: Request):
        from fmkit.errors import BadInputError

        access.authorize(request, ADMIN)
        try:
            record = state.keys.revoke(key_id)
        except BadInputError as error:
            raise ApiError(404, "unknown_key", str(error)) from None
        return {"revoked": record.id}

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard():
        """A page with no data in it: it asks for a key and fetches what that key may see."""
        from fmkit.serve.dashboard import PAGE

        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})

    return app
