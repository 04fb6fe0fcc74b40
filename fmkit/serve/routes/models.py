"""Model routes: the models a key may use, predict, explain (integrated gradients) and the model card."""

from __future__ import annotations

import asyncio

from fastapi import Request  # module level: FastAPI resolves the string annotations against these globals

from fmkit.serve.access import PREDICT, READ
from fmkit.serve.errors import ApiError
from fmkit.serve.routes.server import ERRORS, JSON_ERRORS, Server
from fmkit.serve.schemas import ExplainRequest, ExplainResponse, ModelSummary, PredictRequest, PredictResponse


def add_routes(app, server: Server) -> None:
    from fastapi.responses import HTMLResponse

    access, config = server.access, server.config

    @app.get("/v1/models", tags=["models"], response_model=list[ModelSummary], responses=ERRORS)
    async def list_models(request: Request):
        """The models this key may use (server paths only for admin keys)."""
        from fmkit.serve.redact import public_summary

        key = access.authorize(request, READ)
        return [slot.summary if access.sees_paths(key) else public_summary(slot.summary)
                for name, slot in server.state.models.items() if key is None or key.may_use(name)]

    @app.post("/v1/models/{name}:predict", tags=["models"], response_model=PredictResponse, responses=ERRORS)
    async def predict(name: str, body: PredictRequest, request: Request):
        """Classify ``texts`` (text models) or ``images`` (image models, base64 files)."""
        from fmkit.serve.inputs import IMAGES, check_texts, decode_images, image_digests

        sent = "texts" if body.texts is not None else "images"
        values = body.texts if body.texts is not None else body.images
        logged = (values if sent == "texts" else image_digests(values)) if config.log_inputs else None
        with server.observed("predict", name, len(values), logged) as record:
            record["key"] = access.authorize(request, PREDICT, name)
            slot = server.slot_for(name, record["key"])
            kind = slot.inputs
            if sent != kind.field:
                raise ApiError(422, "wrong_input_kind", f"model {name!r} classifies {kind.noun}s: send "
                               f"\"{kind.field}\", not \"{sent}\"")
            if kind is IMAGES:  # decoding is CPU work: off the event loop
                inputs = await asyncio.get_running_loop().run_in_executor(
                    None, decode_images, values, config, slot.runtime)
            else:
                inputs = check_texts(values, config, config.max_texts, "max_texts")
            probabilities = await server.run_model(slot, inputs)
            labels = slot.summary["labels"]
            return {"model": name, "predictions": [
                {"label": labels[int(row.argmax())], "probabilities": {l: float(p) for l, p in zip(labels, row)}}
                for row in probabilities]}

    add_explain_route(app, server)

    @app.get("/v1/models/{name}/card", tags=["models"], response_class=HTMLResponse, responses=JSON_ERRORS)
    async def card(name: str, request: Request):
        """The model card (HTML), generated from the served bundle's manifest (paths: admin keys only)."""
        from pathlib import PurePath

        from fmkit.audit.card import render_html, render_markdown
        from fmkit.serve.redact import public_manifest

        key = access.authorize(request, READ, name)
        slot = server.slot_for(name, key)
        manifest = slot.runtime.manifest  # verified at load: what is served, not a later edit on disk
        if not access.sees_paths(key):
            manifest, shown = public_manifest(manifest), PurePath(name)
        else:
            shown = slot.path
        return HTMLResponse(render_html(render_markdown(manifest, shown), f"Model card: {name}"))


def refuse_unexplainable(name: str, slot) -> None:
    """The one place that asks whether a served model can be explained."""
    if not slot.summary["explainable"]:
        from fmkit.tasks import TASKS

        if not TASKS.get(slot.summary["task"]).capabilities.explanations:
            raise ApiError(422, "not_explainable", f"model {name!r} is a {slot.summary['task']} model: its task has "
                           "no explanations (integrated gradients attribute the words of a text); use :predict")
        raise ApiError(422, "not_explainable", f"model {name!r} is a {slot.summary['task']} model on "
                       f"{slot.summary['runtime']}; explanations need a text model with PyTorch weights "
                       "(serve the bundle it was compressed from)")


def add_explain_route(app, server: Server) -> None:
    access, config, state = server.access, server.config, server.state

    async def explain(name: str, body: ExplainRequest, request: Request):
        """Per-word attributions (Captum layer integrated gradients); PyTorch text bundles only, one at a time."""
        import math

        from fmkit.serve.inputs import check_texts

        with server.observed("explain", name, len(body.texts), body.texts if config.log_inputs else None) as record:
            record["key"] = access.authorize(request, PREDICT, name)
            slot = server.slot_for(name, record["key"])
            refuse_unexplainable(name, slot)
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
