"""Assistant routes: ask a support assistant (POST /v1/assistants/NAME:ask), list the assistants a key
may use, an assistant's card, and its chat page (/ui/assistants/NAME).

An assistant is served like a model: the same keys (a key's allowlist names it), roles, rate limit,
body limit and audit row (the question only under --log-inputs). Its body is read only after the
caller is authenticated, so an anonymous request learns 401 whatever it sends. One ask runs at a
time per assistant (CPU-bound, off the event loop); the waiting line is bounded by --queue-size.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request  # module level: FastAPI resolves the string annotations against these globals
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fmkit.serve.access import PREDICT, READ
from fmkit.serve.config import MODEL_NAME
from fmkit.serve.errors import ApiError
from fmkit.serve.routes.server import ERRORS, JSON_ERRORS, Server, log, run_in_turn


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="the customer's question", examples=["how long does a roof "
                          "replacement take?"])
    top_k: int = Field(5, ge=1, le=20, description="how many ranked matches to return")


@dataclass
class AssistantSlot:
    name: str
    path: Path
    assistant: object  # fmkit.apps.assistant.Assistant
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one ask at a time: the encoder is CPU-bound
    waiting: int = 0


class AssistantMetrics:
    """Per-assistant series beside the server's request counter and latency (endpoint="ask")."""

    def __init__(self, registry):
        from prometheus_client import Counter, Histogram

        self.outcomes = Counter("fmkit_assistant_answers_total", "assistant answers by outcome (answered from the "
                                "FAQ, drafted from passages, handed off)", ["assistant", "outcome"], registry=registry)
        self.confidence = Histogram("fmkit_assistant_confidence", "calibrated confidence of each answer",
                                    ["assistant"], buckets=(.1, .2, .3, .4, .5, .6, .7, .8, .9, .95, 1.0),
                                    registry=registry)
        self.generation = Histogram("fmkit_assistant_generation_seconds", "seconds per grounded draft",
                                    ["assistant"], buckets=(.25, .5, 1, 2, 4, 8, 16, 32), registry=registry)


class AssistantHost:
    """The served assistants, their metrics and the shared composer (``--generate``)."""

    def __init__(self, server: Server):
        self.server, self.config = server, server.config
        self.slots: dict[str, AssistantSlot] = {}
        self.metrics = AssistantMetrics(server.state.metrics.registry)
        self.composer = None
        self.generate_lock = asyncio.Lock()  # one draft at a time across assistants: it uses every core

    async def start(self) -> None:
        """Open every configured assistant (digest-verified) and, with --generate, load the model once."""
        if not self.config.assistants:
            return
        from fmkit.apps.assistant import Assistant

        loop = asyncio.get_running_loop()
        for name, path in self.config.assistants.items():
            assistant = await loop.run_in_executor(None, Assistant.open, Path(path))
            self.slots[name] = AssistantSlot(name, Path(path), assistant)
        if self.config.generate and self.slots:
            from fmkit.apps.assistant.generate import GroundedComposer

            self.composer = await loop.run_in_executor(None, GroundedComposer().load)

    def slot_for(self, name: str, key=None) -> AssistantSlot:
        slot = self.slots.get(name)
        if slot is None:
            visible = sorted(n for n in self.slots if key is None or key.may_use(n))
            raise ApiError(404, "unknown_assistant", f"no assistant {name!r}; served: {', '.join(visible) or 'none'}")
        return slot

    async def ask(self, slot: AssistantSlot, question: str, top_k: int) -> dict:
        from fmkit.errors import BadInputError

        if slot.waiting >= self.config.queue_size:
            raise ApiError(503, "overloaded", "the queue is full; retry shortly", "queue_size",
                           headers={"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        timeout = self.config.generate_timeout_s if self.composer is not None else self.config.request_timeout_s
        deadline = loop.time() + timeout
        try:
            result = await run_in_turn(slot, lambda: slot.assistant.ask(question, top_k=top_k), timeout)
            if self.composer is not None and result.get("handoff"):
                result = await asyncio.wait_for(self.draft(slot, result, question), max(deadline - loop.time(), 0.001))
            return result
        except asyncio.TimeoutError:
            raise ApiError(504, "timeout", f"no answer within {timeout} s",
                           "generate_timeout_s" if self.composer is not None else "request_timeout_s") from None
        except BadInputError as error:  # an empty question, one over the assistant's length limit
            raise ApiError(422, "bad_question", str(error).replace(str(slot.path), slot.name)) from None
        except ApiError:
            raise
        except Exception:
            log.exception("assistant %s (%s) failed on a request", slot.name, slot.path)
            raise ApiError(500, "assistant_failed", f"assistant {slot.name!r} failed on this request; the server "
                           "log has the details") from None

    async def draft(self, slot: AssistantSlot, result: dict, question: str) -> dict:
        from fmkit.apps.assistant.generate import compose_if_needed

        loop = asyncio.get_running_loop()
        async with self.generate_lock:
            result = await loop.run_in_executor(None, compose_if_needed, result, question, self.composer)
        self.metrics.generation.labels(slot.name).observe(result["generation"]["seconds"])
        return result


def public_answer(name: str, result: dict, sees_paths: bool) -> dict:
    """What a caller gets: the answer and its evidence. A document's ``source`` is cut to its file name for
    non-admins; answers and passages are never redacted (an answer may well contain "8:00/16:00/...")."""
    from fmkit.serve.redact import redact

    def shown(item: dict, keys) -> dict:
        item = {key: item.get(key) for key in keys}
        return item if sees_paths or "source" not in item else item | {"source": redact(item["source"])}

    keys = ("answer", "confidence", "handoff", "handoff_message", "intent", "threshold", "generated")
    body = {"assistant": name} | {key: result.get(key) for key in keys}
    body["matches"] = [shown(match, ("rank", "id", "text", "score", "source", "kind", "question"))
                       for match in result.get("matches") or []]
    if "generation" in result:
        body["generation"] = {key: result["generation"].get(key) for key in ("refused", "reason", "citations",
                                                                                "seconds")}
        body["sources"] = [shown(source, ("id", "source", "kind", "number")) for source in result.get("sources") or []]
    return body


def add_routes(app, server: Server) -> None:
    from fastapi.responses import HTMLResponse

    access, config = server.access, server.config
    host = app.state.assistants = AssistantHost(server)
    body_schema = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": AskRequest.model_json_schema()}}}}

    @app.post("/v1/assistants/{name}:ask", tags=["assistants"], responses=ERRORS, openapi_extra=body_schema)
    async def ask(name: str, request: Request):
        """Answer a customer's question from the assistant's approved answers, or hand off (``handoff: true``).

        The answer comes with its confidence, the intent, the ranked matches and, with --generate, a draft
        grounded in the retrieved passages (``generated: true``, ``sources``) when no FAQ answer is close."""
        raw = await request.body()  # read, not parsed: over --max-body-bytes it is the body limit's 413 (audited)
        logged: list[str] = []  # filled once the body is parsed; stored only under --log-inputs
        with server.observed("ask", name, 1, logged) as record:
            record["key"] = access.authorize(request, PREDICT, name)
            slot = host.slot_for(name, record["key"])
            try:
                question = AskRequest.model_validate_json(raw)
            except ValidationError as error:
                problems = "; ".join(f"{'.'.join(str(p)[:100] for p in e['loc']) or 'body'}: {e['msg']}"
                                     for e in error.errors()[:20])
                raise ApiError(422, "invalid_request", problems) from None
            if config.log_inputs:
                logged.append(question.question)
            started = time.perf_counter()
            result = await host.ask(slot, question.question, question.top_k)
            outcome = "generated" if result.get("generated") else "handoff" if result.get("handoff") else "answered"
            host.metrics.outcomes.labels(name, outcome).inc()
            if isinstance(result.get("confidence"), (int, float)):
                host.metrics.confidence.labels(name).observe(result["confidence"])
            log.debug("assistant %s answered in %.3f s (%s)", name, time.perf_counter() - started, outcome)
            return public_answer(name, result, access.sees_paths(record["key"]))

    @app.get("/v1/assistants", tags=["assistants"], responses=ERRORS)
    async def list_assistants(request: Request):
        """The assistants this key may use, with what they were built from and how well they retrieve."""
        from fmkit.serve.redact import redact

        key = access.authorize(request, READ)
        return [{"name": name} | (slot.assistant.describe() if access.sees_paths(key)
                                  else redact(slot.assistant.describe()))
                for name, slot in host.slots.items() if key is None or key.may_use(name)]

    @app.get("/v1/assistants/{name}/card", tags=["assistants"], response_class=HTMLResponse, responses=JSON_ERRORS)
    async def assistant_card(name: str, request: Request):
        """The assistant's card (HTML): training data, retrieval metrics, handoff threshold and precision."""
        from fmkit.audit.card import render_assistant_markdown, render_html
        from fmkit.serve.redact import redact

        key = access.authorize(request, READ, name)
        slot = host.slot_for(name, key)
        description = slot.assistant.describe()
        if not access.sees_paths(key):
            description = redact(description)
        return HTMLResponse(render_html(render_assistant_markdown(description, name), f"Assistant card: {name}"))

    @app.get("/ui/assistants/{name}", response_class=HTMLResponse, include_in_schema=False)
    async def chat_page(name: str):
        """The chat page: no data in it (not even whether NAME is served); it asks for a key and asks with it."""
        from fmkit.serve.assistant_page import PAGE

        if not MODEL_NAME.fullmatch(name):
            raise ApiError(404, "not_found", "no such page")
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})
