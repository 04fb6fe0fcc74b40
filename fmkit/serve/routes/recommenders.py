"""Recommender routes: rank items for a user or a history (POST /v1/recommenders/NAME:recommend), items
like one item (POST /v1/recommenders/NAME:similar), the recommenders a key may use, and a card.

A recommender is served like a model: the same keys (a key's allowlist names it), roles, rate limit,
body limit and audit row (the request's user/history only under --log-inputs). Its body is read only
after the caller is authenticated, so an anonymous request learns 401 whatever it sends. Ranking is
CPU-bound (a query encoding, dot products, the ranker): one request at a time per recommender, off
the event loop; the waiting line is bounded by --queue-size.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request  # module level: FastAPI resolves the string annotations against these globals
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fmkit.serve.access import PREDICT, READ
from fmkit.serve.errors import ApiError
from fmkit.serve.routes.server import ERRORS, JSON_ERRORS, Server, log, run_in_turn

ItemId = int | str


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: ItemId | None = Field(None, description="a user id the recommender was trained on", examples=[42])
    history: list[ItemId] | None = Field(None, max_length=500, description="item ids the user interacted with, "
                                         "oldest first: for a user the recommender has not seen",
                                         examples=[[318, 296, 593]])
    k: int = Field(10, ge=1, le=100, description="how many items to return")
    model: str | None = Field(None, max_length=64, description="which model ranks (default: the recommender's "
                              "serving model, normally hybrid)")
    exclude_seen: bool = Field(True, description="leave out items already in the history")


class SimilarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: ItemId = Field(description="the item id", examples=[318])
    k: int = Field(10, ge=1, le=100)
    model: str = Field("text", max_length=64, description="which model judges similarity (default: text)")


@dataclass
class RecommenderSlot:
    name: str
    path: Path
    recommender: object  # fmkit.apps.recommend.recommender.Recommender
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0


class RecommenderHost:
    """The served recommenders, opened (digest-verified) at start."""

    def __init__(self, server: Server):
        self.server, self.config = server, server.config
        self.slots: dict[str, RecommenderSlot] = {}

    async def start(self) -> None:
        from fmkit.apps.recommend.recommender import Recommender

        loop = asyncio.get_running_loop()
        for name, path in getattr(self.config, "recommenders", {}).items():
            opened = await loop.run_in_executor(None, lambda p=path: Recommender.open(Path(p),
                                                                                      threads=self.config.threads))
            self.slots[name] = RecommenderSlot(name, Path(path), opened)

    def slot_for(self, name: str, key=None) -> RecommenderSlot:
        slot = self.slots.get(name)
        if slot is None:
            visible = sorted(n for n in self.slots if key is None or key.may_use(n))
            raise ApiError(404, "unknown_recommender", f"no recommender {name!r}; served: {', '.join(visible) or 'none'}")
        return slot

    async def call(self, slot: RecommenderSlot, function) -> dict:
        from fmkit.errors import BadInputError

        if slot.waiting >= self.config.queue_size:
            raise ApiError(503, "overloaded", "the queue is full; retry shortly", "queue_size",
                           headers={"Retry-After": "1"})
        try:
            return await run_in_turn(slot, function, self.config.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, "timeout", f"no answer within {self.config.request_timeout_s} s",
                           "request_timeout_s") from None
        except BadInputError as error:  # an unknown user or item id, a bad k or model name
            raise ApiError(422, "bad_input", str(error).replace(str(slot.path), slot.name)) from None
        except ApiError:
            raise
        except Exception:
            log.exception("recommender %s (%s) failed on a request", slot.name, slot.path)
            raise ApiError(500, "recommender_failed", f"recommender {slot.name!r} failed on this request; the server "
                           "log has the details") from None


def parse(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p)[:100] for p in e['loc']) or 'body'}: {e['msg']}"
                             for e in error.errors()[:20])
        raise ApiError(422, "invalid_request", problems) from None


def add_routes(app, server: Server) -> None:
    from fastapi.responses import HTMLResponse

    access, config = server.access, server.config
    host = app.state.recommenders = RecommenderHost(server)

    def schema(model):
        return {"requestBody": {"required": True, "content": {"application/json": {
            "schema": model.model_json_schema()}}}}

    @app.post("/v1/recommenders/{name}:recommend", tags=["recommenders"], responses=ERRORS,
              openapi_extra=schema(RecommendRequest))
    async def recommend(name: str, request: Request):
        """The top ``k`` items for a known ``user``, or for a ``history`` of item ids (a user not seen at training);
        items already in the history are left out unless ``exclude_seen`` is false."""
        raw = await request.body()  # read, not parsed: over --max-body-bytes it is the body limit's 413 (audited)
        logged: list[str] = []
        with server.observed("recommend", name, 1, logged) as record:
            record["key"] = access.authorize(request, PREDICT, name)
            slot = host.slot_for(name, record["key"])
            body = parse(RecommendRequest, raw)
            if config.log_inputs:
                logged.append(json.dumps({"user": body.user, "history": body.history}))
            return await host.call(slot, lambda: slot.recommender.recommend(
                user=body.user, history=body.history, k=body.k, model=body.model, exclude_seen=body.exclude_seen))

    @app.post("/v1/recommenders/{name}:similar", tags=["recommenders"], responses=ERRORS,
              openapi_extra=schema(SimilarRequest))
    async def similar(name: str, request: Request):
        """Items like ``item``: what the model ranks for someone whose whole history is that one item."""
        raw = await request.body()
        logged: list[str] = []
        with server.observed("similar", name, 1, logged) as record:
            record["key"] = access.authorize(request, PREDICT, name)
            slot = host.slot_for(name, record["key"])
            body = parse(SimilarRequest, raw)
            if config.log_inputs:
                logged.append(str(body.item))
            return await host.call(slot, lambda: slot.recommender.similar(body.item, k=body.k, model=body.model))

    @app.get("/v1/recommenders", tags=["recommenders"], responses=ERRORS)
    async def list_recommenders(request: Request):
        """The recommenders this key may use: models, serving model, evaluation, catalogue size."""
        from fmkit.serve.redact import redact

        key = access.authorize(request, READ)
        return [{"name": name} | (slot.recommender.describe() if access.sees_paths(key)
                                  else redact(slot.recommender.describe()))
                for name, slot in host.slots.items() if key is None or key.may_use(name)]

    @app.get("/v1/recommenders/{name}/card", tags=["recommenders"], response_class=HTMLResponse,
             responses=JSON_ERRORS)
    async def recommender_card(name: str, request: Request):
        """The recommender's card (HTML): data, every model's test and cold-item figures, limits."""
        from fmkit.apps.recommend.card import render_recommender_markdown
        from fmkit.audit.card import render_html
        from fmkit.serve.redact import redact

        key = access.authorize(request, READ, name)
        slot = host.slot_for(name, key)
        description = slot.recommender.describe()
        if not access.sees_paths(key):
            description = redact(description)
        return HTMLResponse(render_html(render_recommender_markdown(description, name), f"Recommender card: {name}"))
