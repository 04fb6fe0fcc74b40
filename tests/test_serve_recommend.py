"""Serving a recommender: POST /v1/recommenders/NAME:recommend (and :similar) under the same keys, roles,
limits and audit log as predict; answers equal to the Recommender's own; a user unseen at training ranked
from the history in the request; bad requests that fail alone with a clear 4xx; the list and the card.

The recommender is real: the synthetic shop of tests/recommend_fixtures.py trained with the CLI on the
tiny in-code BERT (shared with tests/test_recommend_cli.py within a session).
"""

from __future__ import annotations

import asyncio

import pytest

from fmkit.serve.app import create_app
from fmkit.serve.config import ServeConfig
from fmkit.serve.keys import KeyStore
from recommend_fixtures import trained_recommender
from test_serve import auth, run

RECOMMEND = "/v1/recommenders/shop:recommend"


@pytest.fixture(scope="module")
def shop(tmp_path_factory, tiny_bert_dir):
    return trained_recommender(tmp_path_factory, tiny_bert_dir)


@pytest.fixture(scope="module")
def direct(shop):
    from fmkit.apps.recommend.recommender import Recommender

    return Recommender.open(shop)


def serve(workspace, shop, **settings):
    return create_app(ServeConfig(recommenders={"shop": shop}, workspace=workspace, **settings))


def test_recommend_answers_as_the_recommender_does_under_the_keys_of_predict(shop, direct, tmp_path):
    store = KeyStore(tmp_path)
    keys = {"admin": store.create("admin")[0], "mine": store.create("predict", ["shop"])[0],
            "other": store.create("predict", ["reviews"])[0], "read": store.create("read", ["shop"])[0]}
    history = [101, 105, 109]

    async def body(client):
        post = lambda key, payload: client.post(RECOMMEND, headers=auth(key), json=payload)  # noqa: E731
        return {role: await post(key, {"user": 5, "k": 5}) for role, key in keys.items()} | {
            "anonymous": await post(None, {"user": 5}),
            "unseen": await post(keys["mine"], {"history": history, "k": 5, "model": "text"}),
            "similar": await client.post("/v1/recommenders/shop:similar", headers=auth(keys["mine"]),
                                         json={"item": 100, "k": 3}),
            "listed": await client.get("/v1/recommenders", headers=auth(keys["mine"])),
            "listed_other": await client.get("/v1/recommenders", headers=auth(keys["other"])),
            "card": await client.get("/v1/recommenders/shop/card", headers=auth(keys["read"]))}

    answers = run(serve(tmp_path, shop), body)
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {"admin": 200, "mine": 200, "other": 403, "read": 403, "anonymous": 401, "unseen": 200,
                        "similar": 200, "listed": 200, "listed_other": 200, "card": 200}
    served = answers["mine"].json()
    expected = direct.recommend(user=5, k=5)
    assert [e["item"] for e in served["items"]] == [e["item"] for e in expected["items"]]
    assert served["model"] == "hybrid" and served["user"] == 5
    unseen = answers["unseen"].json()
    assert [e["item"] for e in unseen["items"]] == [e["item"] for e in direct.recommend(history=history, k=5,
                                                                                           model="text")["items"]]
    assert not {e["item"] for e in unseen["items"]} & set(history)
    assert [e["item"] for e in answers["similar"].json()["items"]] == [
        e["item"] for e in direct.similar(100, k=3)["items"]]
    assert [r["name"] for r in answers["listed"].json()] == ["shop"] and answers["listed_other"].json() == []
    assert str(shop.parent) not in answers["listed"].text  # server paths: admin keys only
    assert "Recommender card: shop" in answers["card"].text and "hybrid" in answers["card"].text


def test_bad_requests_fail_alone_with_a_clear_4xx_and_are_audited(shop, tmp_path):
    store = KeyStore(tmp_path)
    key, every = store.create("predict", ["shop"])[0], store.create("predict")[0]
    raw = {"Content-Type": "application/json"}

    async def body(client):
        post = lambda payload=None, **kwargs: client.post(RECOMMEND, headers=kwargs.pop("headers", auth(key)),  # noqa: E731
                                                          json=payload, **kwargs)
        requests = {
            "good": post({"user": 7}),
            "unknown_user": post({"user": 777}),
            "unknown_item": post({"history": [100, 5555]}),
            "both": post({"user": 7, "history": [100]}),
            "neither": post({}),
            "k": post({"user": 7, "k": 0}),
            "model": post({"user": 7, "model": "nope"}),
            "extra": post({"user": 7, "texts": ["x"]}),
            "not_json": client.post(RECOMMEND, headers={**raw, **auth(key)}, content=b"{user"),
            "unknown": client.post("/v1/recommenders/nope:recommend", headers=auth(every), json={"user": 7}),
            "anonymous_garbage": client.post(RECOMMEND, headers=raw, content=b"{user"),
            "huge": client.post(RECOMMEND, headers={**raw, **auth(key)}, content=b"x" * 2_000_000),
            "good_again": post({"history": [100, 104]}),
        }
        names = list(requests)
        return dict(zip(names, await asyncio.gather(*requests.values())))

    responses = run(serve(tmp_path, shop), body)
    statuses = {name: response.status_code for name, response in responses.items()}
    assert statuses == {"good": 200, "unknown_user": 422, "unknown_item": 422, "both": 422, "neither": 422,
                        "k": 422, "model": 422, "extra": 422, "not_json": 422, "unknown": 404,
                        "anonymous_garbage": 401, "huge": 413, "good_again": 200}
    message = {name: responses[name].json()["error"]["message"] for name in statuses if statuses[name] >= 400}
    assert "unknown user id 777" in message["unknown_user"] and "5555" in message["unknown_item"]
    assert "not both" in message["both"] and "served: shop" in message["unknown"]
    assert str(shop) not in " ".join(message.values())
    rows = store.audit_rows()
    assert {(r["endpoint"], r["model"]) for r in rows if r["status"] == 200} == {("recommend", "shop")}
    assert all(r["input"] is None for r in rows)  # the user and history are stored only under --log-inputs
