"""What a predict request may carry: images as data (never paths), the right kind for each model,
and one bad request never failing the others in its micro-batch."""

import asyncio
import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import corner_picture
from fmkit.runtime.base import require_finite
from fmkit.serve.app import create_app
from fmkit.serve.config import ServeConfig
from fmkit.serve.keys import KeyStore
from test_serve import auth, run

CORNERS = ["bottom-left", "bottom-right", "top-left", "top-right"]  # the bundle's labels, sorted
SHOWN = ["top-left", "top-right", "bottom-left", "bottom-right"]  # corner_picture's label order


def encoded(picture: np.ndarray, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def key(tmp_path):
    return KeyStore(tmp_path).create("predict")[0]


def serve_both(tiny_bundle, tiny_image_bundle, workspace, **settings):
    return create_app(ServeConfig(bundles={"reviews": tiny_bundle, "corners": tiny_image_bundle},
                                  workspace=workspace, **settings))


def test_image_model_takes_base64_images_and_never_opens_a_path(tiny_bundle, tiny_image_bundle, tmp_path, key):
    on_disk = tmp_path / "picture.png"
    Image.fromarray(corner_picture(0)).save(on_disk)  # a file the server could read
    color = corner_picture(1, channels=3, seed=5).repeat(2, axis=0).repeat(2, axis=1)  # 32x32 RGB -> 16x16 gray
    truncated = base64.b64encode(base64.b64decode(encoded(corner_picture(2)))[:60]).decode()

    async def body(client):
        async def post(model, payload):
            return await client.post(f"/v1/models/{model}:predict", headers=auth(key), json=payload)

        return {
            "images": await post("corners", {"images": [encoded(corner_picture(i, seed=50 + i)) for i in range(4)]
                                             + [encoded(color, "JPEG"), "data:image/png;base64," + encoded(color)]}),
            "path_as_text": await post("corners", {"texts": [str(on_disk)]}),
            "etc_as_text": await post("corners", {"texts": ["/etc/passwd", "../../../../etc/passwd"]}),
            "path_as_image": await post("corners", {"images": [str(on_disk)]}),
            "images_to_text_model": await post("reviews", {"images": [encoded(color)]}),
            "corrupt": await post("corners", {"images": [encoded(corner_picture(0)), truncated]}),
            "not_an_image": await post("corners", {"images": [base64.b64encode(b"just some bytes").decode()]}),
            "both": await post("corners", {"texts": ["x"], "images": [encoded(color)]}),
            "neither": await post("corners", {}),
            "spec": await client.get("/openapi.json"),
        }

    responses = run(serve_both(tiny_bundle, tiny_image_bundle, tmp_path), body)
    assert responses["images"].status_code == 200, responses["images"].text
    labels = [p["label"] for p in responses["images"].json()["predictions"]]
    assert labels == SHOWN + ["top-right", "top-right"]
    for name in ("path_as_text", "etc_as_text"):
        error = responses[name].json()["error"]
        assert responses[name].status_code == 422 and error["code"] == "wrong_input_kind", name
        assert "classifies images" in error["message"] and '"images"' in error["message"]
    assert responses["path_as_image"].status_code == 422 and "images[0] is not base64" in responses["path_as_image"].text
    assert responses["images_to_text_model"].status_code == 422
    assert "classifies texts" in responses["images_to_text_model"].json()["error"]["message"]
    corrupt = responses["corrupt"].json()["error"]
    assert responses["corrupt"].status_code == 422 and corrupt["message"].startswith("images[1] ")
    assert responses["not_an_image"].status_code == 422 and "PNG" in responses["not_an_image"].text
    assert responses["both"].status_code == 422 and responses["neither"].status_code == 422
    schema = responses["spec"].json()["components"]["schemas"]["PredictRequest"]
    assert {"texts", "images"} <= set(schema["properties"])
    assert schema["properties"]["images"]["items"]["contentEncoding"] == "base64"
    listed = {m["name"]: m["inputs"] for m in run(serve_both(tiny_bundle, tiny_image_bundle, tmp_path), lambda c: (
        c.get("/v1/models", headers=auth(key)))).json()}
    assert listed == {"reviews": "texts", "corners": "images"}


def test_explaining_an_image_model_is_a_422_naming_its_task(tiny_bundle, tiny_image_bundle, tmp_path, key):
    async def body(client):
        return await client.post("/v1/models/corners:explain", headers=auth(key), json={"texts": ["a picture"]})

    response = run(serve_both(tiny_bundle, tiny_image_bundle, tmp_path), body)
    error = response.json()["error"]
    assert response.status_code == 422 and error["code"] == "not_explainable"
    assert error["message"] == ("model 'corners' is a image-classification model: its task has no explanations "
                                "(integrated gradients attribute the words of a text); use :predict")
    listed = run(serve_both(tiny_bundle, tiny_image_bundle, tmp_path), lambda c: c.get("/v1/models", headers=auth(key)))
    assert {m["name"]: m["explainable"] for m in listed.json()} == {"reviews": True, "corners": False}


def test_image_size_and_pixel_limits_are_checked_before_decoding(tiny_bundle, tiny_image_bundle, tmp_path, key):
    wide = encoded(np.zeros((10, 2000), np.uint8))  # a small file (zeros compress) that decodes to 20,000 pixels

    async def body(client):
        post = lambda payload: client.post("/v1/models/corners:predict", headers=auth(key), json=payload)  # noqa: E731
        return (await post({"images": [encoded(corner_picture(0)), wide]}),
                await post({"images": [encoded(np.random.default_rng(0).integers(0, 255, (60, 60), np.uint8))]}),
                await post({"images": [encoded(corner_picture(0))] * 5}))

    pixels, size, count = run(serve_both(tiny_bundle, tiny_image_bundle, tmp_path, max_image_pixels=10_000,
                                         max_image_bytes=2_000, max_images=4), body)
    assert pixels.status_code == 413 and pixels.json()["error"]["limit"] == "max_image_pixels"
    assert "images[1] is 2000x10 = 20000 pixels" in pixels.json()["error"]["message"]
    assert size.status_code == 413 and size.json()["error"]["limit"] == "max_image_bytes"
    assert count.status_code == 413 and count.json()["error"]["limit"] == "max_images"


def test_one_bad_request_never_fails_the_others_in_its_batch(tiny_bundle, tiny_image_bundle, tmp_path, key):
    good_image = encoded(corner_picture(3, seed=7))
    broken_image = base64.b64encode(base64.b64decode(good_image)[:70]).decode()  # cut inside the pixel data

    async def body(client):
        async def post(model, payload):  # json.dumps escapes the lone surrogate as \ud800, as a client's JSON would
            return await client.post(f"/v1/models/{model}:predict", content=json.dumps(payload),
                                     headers={**auth(key), "Content-Type": "application/json"})

        rounds = []
        for round_index in range(5):
            requests = [post("reviews", {"texts": [f"a great and warm film {round_index} {i}"]}) for i in range(15)]
            requests.append(post("reviews", {"texts": ["fine", "\ud800 broken"]}))
            requests += [post("corners", {"images": [good_image]}) for _ in range(15)]
            requests.append(post("corners", {"images": [good_image, broken_image]}))
            rounds.append(await asyncio.gather(*requests))
        return rounds

    app = serve_both(tiny_bundle, tiny_image_bundle, tmp_path, max_wait_ms=20, rate_per_second=10_000,
                     rate_burst=10_000)
    for responses in run(app, body):
        good = responses[:15] + responses[16:31]
        assert [r.status_code for r in good] == [200] * 30, [r.text for r in good if r.status_code != 200][:2]
        text_error, image_error = responses[15].json()["error"], responses[31].json()["error"]
        assert responses[15].status_code == 422 and text_error["code"] == "invalid_text"
        assert text_error["message"].startswith("texts[1] is not valid Unicode")
        assert responses[31].status_code == 422 and image_error["message"].startswith("images[1] ")


class Poisoned:
    """The real tiny model, except that a text containing a marker breaks it (as an input only the
    model can reject would) or makes it answer NaN: stands in for failures validation cannot foresee."""

    def __init__(self, runtime):
        self.runtime = runtime

    def predict_proba(self, texts):
        from fmkit.errors import BadInputError

        if any("poison" in text for text in texts):
            raise BadInputError("this input cannot be tokenized")
        if any("crash" in text for text in texts):
            raise RuntimeError(f"internal failure reading {self.runtime.path}/model.safetensors")
        if any("overflow" in text for text in texts):  # what the runtimes raise on NaN/inf logits
            require_finite(np.full((1, 2), np.inf), self.runtime.path)
        probabilities = self.runtime.predict_proba(texts)
        probabilities[[i for i, text in enumerate(texts) if "nan" in text]] = np.nan
        return probabilities


def test_a_failed_batch_is_retried_one_by_one_and_non_finite_outputs_are_errors(tiny_bundle, tmp_path, key):
    async def body(client):
        slot = client._transport.app.state.fmkit.models["reviews"]
        slot.batcher.runtime = Poisoned(slot.runtime)

        async def post(text):
            return await client.post("/v1/models/reviews:predict", headers=auth(key), json={"texts": [text]})

        return await asyncio.gather(*(post(f"great film {i}") for i in range(12)), post("poison"), post("crash"),
                                    post("nan"), post("overflow"), post("superb film"))

    app = create_app(ServeConfig(bundles={"reviews": tiny_bundle}, workspace=tmp_path, max_wait_ms=30))
    *good, poisoned, crashed, nan, overflow, last = run(app, body)
    assert [r.status_code for r in good + [last]] == [200] * 13
    assert all(json.dumps(r.json()).count("NaN") == 0 for r in good + [last])
    assert poisoned.status_code == 422 and poisoned.json()["error"] == {
        "code": "bad_input", "message": "this input cannot be tokenized"}
    assert crashed.status_code == 500 and crashed.json()["error"]["code"] == "model_failed"
    assert str(tmp_path) not in crashed.text and str(tiny_bundle) not in crashed.text
    assert nan.status_code == 500 and nan.json()["error"]["code"] == "model_failed"
    for response in (nan, overflow):
        assert response.status_code == 500 and response.json()["error"]["code"] == "model_failed"
        assert "non-finite" in response.json()["error"]["message"] and str(tiny_bundle) not in response.text
