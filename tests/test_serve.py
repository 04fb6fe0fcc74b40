"""The HTTP API on the tiny model: auth for every role x endpoint, limits, batching, reloads, audit."""

import asyncio
import json

import httpx
import pytest

from fmkit.serve.app import create_app
from fmkit.serve.config import ServeConfig
from fmkit.serve.keys import KeyStore


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return tiny_bundle


@pytest.fixture
def workspace(tmp_path):
    return tmp_path


@pytest.fixture
def keys(workspace):
    store = KeyStore(workspace)
    return {role: store.create(role, models)[0] for role, models in
            (("admin", None), ("predict", ["reviews"]), ("read", None))} | {
        "other": store.create("predict", ["something-else"])[0]}


def serve(bundle, workspace, **settings):
    return create_app(ServeConfig(bundles={"reviews": bundle}, workspace=workspace, **settings))


async def with_client(app, body):
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await body(client)


def run(app, body):
    return asyncio.run(with_client(app, body))


def auth(key):
    return {"Authorization": f"Bearer {key}"} if key else {}


PREDICT = ("post", "/v1/models/reviews:predict", {"texts": ["a great and warm film"]})
ENDPOINTS = {
    "predict": PREDICT,
    "models": ("get", "/v1/models", None),
    "metrics": ("get", "/metrics", None),
    "keys": ("post", "/v1/keys", {"role": "read"}),
    "explain": ("post", "/v1/models/reviews:explain", {"texts": ["a great film"], "steps": 4}),
    "card": ("get", "/v1/models/reviews/card", None),
}
# role -> endpoint -> expected status
MATRIX = {
    None: {"predict": 401, "models": 401, "metrics": 401, "keys": 401, "explain": 401, "card": 401},
    "bogus": {"predict": 401, "models": 401, "metrics": 401, "keys": 401, "explain": 401, "card": 401},
    "read": {"predict": 403, "models": 200, "metrics": 200, "keys": 403, "explain": 403, "card": 200},
    "predict": {"predict": 200, "models": 200, "metrics": 403, "keys": 403, "explain": 200, "card": 200},
    "other": {"predict": 403, "models": 200, "metrics": 403, "keys": 403, "explain": 403, "card": 403},
    "admin": {"predict": 200, "models": 200, "metrics": 200, "keys": 200, "explain": 200, "card": 200},
}


def test_every_role_on_every_endpoint(bundle, workspace, keys):
    async def body(client):
        results = {}
        for role, expected in MATRIX.items():
            key = {"bogus": "fmk_00000000_notakey"}.get(role, keys.get(role))
            for endpoint, (method, path, payload) in ENDPOINTS.items():
                response = await client.request(method, path, headers=auth(key), json=payload)
                results[(role, endpoint)] = response.status_code
                if response.status_code >= 400:
                    assert "message" in response.json()["error"]
        return results

    results = run(serve(bundle, workspace), body)
    for role, expected in MATRIX.items():
        for endpoint, status in expected.items():
            assert results[(role, endpoint)] == status, (role, endpoint)


def test_predict_health_models_and_openapi(bundle, workspace, keys):
    async def body(client):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        predicted = (await client.post("/v1/models/reviews:predict", headers=auth(keys["predict"]),
                                       json={"texts": ["a superb, moving film", "dull and tedious"]})).json()
        models = (await client.get("/v1/models", headers=auth(keys["read"]))).json()
        spec = (await client.get("/openapi.json")).json()
        page = (await client.get("/ui")).text
        return predicted, models, spec, page

    predicted, models, spec, page = run(serve(bundle, workspace), body)
    assert [p["label"] for p in predicted["predictions"]] == ["pos", "neg"]
    assert models[0]["name"] == "reviews" and models[0]["metrics"]["test"]["accuracy"] >= 0.9
    assert "/v1/models/{name}:predict" in spec["paths"]
    assert "Try it" in page and "reviews" not in page  # the page fetches the models with the key it asks for


@pytest.mark.parametrize("payload, status, fragment", [
    ({"texts": []}, 422, "texts"),
    ({"texts": "not a list"}, 422, "texts"),
    ({"texts": [1, 2]}, 422, "texts"),
    ({"text": ["x"]}, 422, "text"),
    ({"texts": ["x"] * 65}, 413, "max_texts"),
    ({"texts": ["x" * 5001]}, 422, "max_chars"),
])
def test_bad_requests_get_clear_4xx(bundle, workspace, keys, payload, status, fragment):
    async def body(client):
        return await client.post("/v1/models/reviews:predict", headers=auth(keys["predict"]), json=payload)

    response = run(serve(bundle, workspace), body)
    assert response.status_code == status
    assert fragment in json.dumps(response.json()["error"])


def test_malformed_json_huge_body_and_unknown_model(bundle, workspace, keys):
    async def body(client):
        headers = {**auth(keys["admin"]), "Content-Type": "application/json"}
        malformed = await client.post("/v1/models/reviews:predict", headers=headers, content=b"{not json")
        huge = await client.post("/v1/models/reviews:predict", headers=headers, content=b"x" * 2_000_000)
        unknown = await client.post("/v1/models/nope:predict", headers=headers, json={"texts": ["x"]})
        return malformed, huge, unknown

    malformed, huge, unknown = run(serve(bundle, workspace), body)
    assert malformed.status_code == 422
    assert huge.status_code == 413 and huge.json()["error"]["limit"] == "max_body_bytes"
    assert unknown.status_code == 404 and "served: reviews" in unknown.json()["error"]["message"]


def test_rate_limit_answers_429_with_retry_after(bundle, workspace, keys):
    async def body(client):
        return [await client.post(*PREDICT[1:2], headers=auth(keys["predict"]), json=PREDICT[2]) for _ in range(4)]

    responses = run(serve(bundle, workspace, rate_per_second=0.5, rate_burst=2), body)
    assert [r.status_code for r in responses] == [200, 200, 429, 429]
    assert int(responses[2].headers["Retry-After"]) >= 1


def test_concurrent_requests_share_batches_and_reload_drops_nothing(bundle, workspace, keys):
    async def body(client):
        async def one(i):
            return await client.post(PREDICT[1], headers=auth(keys["predict"]), json={"texts": [f"great film {i}"]})

        first = asyncio.gather(*(one(i) for i in range(40)))
        reload = client.post("/v1/models/reviews:load", headers=auth(keys["admin"]), json={"bundle": str(bundle)})
        responses, reloaded = await asyncio.gather(first, reload)
        metrics = (await client.get("/metrics", headers=auth(keys["admin"]))).text
        return responses, reloaded, metrics

    responses, reloaded, metrics = run(serve(bundle, workspace, max_wait_ms=20), body)
    assert [r.status_code for r in responses] == [200] * 40
    assert reloaded.status_code == 200
    count = float(next(l.split()[-1] for l in metrics.splitlines() if l.startswith("fmkit_batch_size_count")))
    assert count < 40  # 40 single-text requests ran in fewer forward passes
    assert 'fmkit_requests_total{endpoint="predict",model="reviews",status="200"} 40.0' in metrics


def test_precision_setting_reaches_the_model_and_loads_settle_the_heap(bundle, workspace, keys):
    import gc
    import weakref

    import torch

    async def body(client):
        state = client._transport.app.state.fmkit
        first = state.models["reviews"].runtime.model
        frozen = gc.get_freeze_count()
        gone = weakref.ref(first)
        reloaded = await client.post("/v1/models/reviews:load", headers=auth(keys["admin"]), json={"bundle": str(bundle)})
        del first
        predicted = await client.post(PREDICT[1], headers=auth(keys["predict"]), json=PREDICT[2])
        listed = (await client.get("/v1/models", headers=auth(keys["read"]))).json()
        assert [m["precision"] for m in listed] == ["bf16"]
        return state.models["reviews"].runtime.model.dtype, frozen, gone, reloaded, predicted

    try:
        dtype, frozen, gone, reloaded, predicted = run(serve(bundle, workspace, precision="bf16"), body)
    finally:
        gc.unfreeze()
    assert dtype == torch.bfloat16 and reloaded.status_code == 200 and predicted.status_code == 200
    assert frozen > 0  # the loaded model sits outside the cyclic collector's walks...
    assert gone() is None  # ...and a replaced one is still freed


def test_full_queue_answers_503(bundle):
    import fmkit
    from fmkit.serve.batcher import MicroBatcher, QueueFullError

    async def body():
        batcher = MicroBatcher(fmkit.load(bundle), max_batch=1, max_wait_ms=0, queue_size=2)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(["great film"]) for _ in range(10)), return_exceptions=True)
        await batcher.close()
        return results

    results = asyncio.run(body())
    rejected = [r for r in results if isinstance(r, QueueFullError)]
    answered = [r for r in results if not isinstance(r, Exception)]
    assert rejected and answered and len(rejected) + len(answered) == 10


def test_audit_log_has_a_row_per_request_and_no_texts(bundle, workspace, keys):
    async def body(client):
        await client.post(PREDICT[1], headers=auth(keys["predict"]), json={"texts": ["secret text", "more"]})
        await client.post(PREDICT[1], headers=auth("fmk_00000000_nope"), json={"texts": ["x"]})

    run(serve(bundle, workspace), body)
    rows = KeyStore(workspace).audit_rows()
    assert [(r["status"], r["texts"], r["model"]) for r in rows] == [(401, 1, "reviews"), (200, 2, "reviews")]
    assert all(r["input"] is None for r in rows) and rows[1]["key_id"] == keys["predict"].split("_")[1]


def test_revoked_key_is_refused(bundle, workspace, keys):
    store = KeyStore(workspace)
    token = keys["predict"]
    assert store.verify(token) is not None  # now cached
    store.revoke(token.split("_")[1])
    assert store.verify(token) is None  # revoking clears this process's cache at once

    async def body(client):
        return await client.post(PREDICT[1], headers=auth(keys["predict"]), json=PREDICT[2])

    assert run(serve(bundle, workspace), body).status_code == 401


def test_keys_are_stored_only_as_salted_hashes(workspace):
    import sqlite3

    store = KeyStore(workspace)
    token, record = store.create("predict", ["reviews"])
    secret = token.split("_", 2)[2]
    dump = "\n".join(str(row) for row in sqlite3.connect(store.path).execute("SELECT * FROM api_keys"))
    assert secret not in dump and len(secret) >= 43  # 32 random bytes, url-safe base64
    assert store.verify(token).id == record.id and store.verify(token[:-1] + "x") is None


def test_explain_returns_word_attributions_and_limits_hold(bundle, workspace, keys):
    async def body(client):
        headers = auth(keys["predict"])
        ok = await client.post("/v1/models/reviews:explain", headers=headers,
                               json={"texts": ["the film was superb", "dull plot"], "steps": 16})
        too_many = await client.post("/v1/models/reviews:explain", headers=headers, json={"texts": ["x"] * 9})
        bad_target = await client.post("/v1/models/reviews:explain", headers=headers,
                                       json={"texts": ["x"], "target": "maybe"})
        bad_steps = await client.post("/v1/models/reviews:explain", headers=headers, json={"texts": ["x"], "steps": 1})
        empty = await client.post("/v1/models/reviews:explain", headers=headers, json={"texts": ["", "  "]})
        assert empty.status_code == 200 and [e["words"] for e in empty.json()["explanations"]] == [[], []]
        card = await client.get("/v1/models/reviews/card", headers=headers)
        return ok, too_many, bad_target, bad_steps, card

    ok, too_many, bad_target, bad_steps, card = run(serve(bundle, workspace), body)
    assert ok.status_code == 200, ok.text
    first, second = ok.json()["explanations"]
    assert first["label"] == "pos" and [w["word"] for w in first["words"]] == ["the", "film", "was", "superb"]
    assert max(first["words"], key=lambda w: w["attribution"])["word"] == "superb"
    assert second["label"] == "neg"
    assert too_many.status_code == 422 and "texts" in json.dumps(too_many.json()["error"])  # maxItems 8 in the spec
    assert bad_target.status_code == 404 and "'maybe'" in bad_target.json()["error"]["message"]
    assert bad_steps.status_code == 422
    assert card.status_code == 200 and "<h2>Lineage</h2>" in card.text


def test_explaining_an_onnx_model_is_a_clear_422(bundle, workspace, keys, tmp_path):
    from fmkit.compress import CompressConfig
    from fmkit.compress.stage import run_compress

    onnx_bundle = tmp_path / "onnx"
    run_compress(bundle, CompressConfig(method="export-onnx", max_accuracy_drop=100,
                                        measure={"latency_samples": 10, "threads": 1}), onnx_bundle)

    async def body(client):
        return await client.post("/v1/models/reviews:explain", headers=auth(keys["predict"]), json={"texts": ["x"]})

    response = run(create_app(ServeConfig(bundles={"reviews": onnx_bundle}, workspace=workspace)), body)
    assert response.status_code == 422 and response.json()["error"]["code"] == "not_explainable"
