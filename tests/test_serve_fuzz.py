"""Fuzzing the HTTP API beyond its schema: hypothesis-made bodies (every Unicode category, lone
surrogates, NULs, huge numbers, deep nesting, wrong types, raw bytes, bad base64 and broken
images) sent concurrently with valid requests to a real `fmkit serve` on the tiny text and image
models. Every valid request must get 200 with finite probabilities, and nothing may get a 5xx."""

import asyncio
import base64
import io
import json
import math

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import corner_picture, live_server
from fmkit.serve.keys import KeyStore


def png(picture) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD_PNG = png(corner_picture(2, seed=11))
SPECIAL = ["\ud800", "\udfff", "a\ud800b", "\x00", "a\x00b", "\u202e", "\ufeff", "\U0010ffff", "💥" * 50, "", " ",
           "/etc/passwd", "../../../../etc/shadow", "file:///proc/self/environ", "\\\\host\\share", "%00", "\r\n"]
text = st.text(st.characters(exclude_categories=()), max_size=40) | st.sampled_from(SPECIAL)  # Cs included
number = (st.integers() | st.integers(min_value=10**30, max_value=10**60) | st.floats(allow_nan=True, allow_infinity=True)
          | st.sampled_from([2**63, -2**63 - 1, 1e308, 5e-324]))
json_value = st.recursive(st.none() | st.booleans() | number | text,
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
                          max_leaves=12)
image_data = (st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode())
              | st.integers(1, len(GOOD_PNG) - 1).map(lambda n: base64.b64encode(GOOD_PNG[:n]).decode())
              | st.sampled_from(["data:image/png;base64,!!", "====", "iVBORw0KGgo=", base64.b64encode(b"GIF89a").decode()])
              | text)
field = st.sampled_from(["texts", "images", "text", "target", "steps", "bundle", "role", "models"])
body = st.one_of(
    st.fixed_dictionaries({"texts": st.lists(text, min_size=1, max_size=6)}),
    st.fixed_dictionaries({"images": st.lists(image_data, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"texts": json_value}), st.fixed_dictionaries({"images": json_value}),
    st.dictionaries(field | text, json_value, max_size=4), json_value,
)
RAW = [b"", b"{", b"[" * 50_000, b'{"texts": [' + b"9" * 5_000 + b"]}", b'{"texts": ["\\ud800"]}', b"\xff\xfe\x00",
       b'{"texts": ["a"], "texts": 3}', b'{"texts": [NaN]}', b"null", b'"texts"', b"{\x00}"]
raw = st.sampled_from(RAW) | st.binary(max_size=120)
TARGETS = ["/v1/models/reviews:predict", "/v1/models/corners:predict", "/v1/models/fuzz:load", "/v1/keys",
           "/v1/models/reviews:predict", "/v1/models/corners:predict"]  # predict twice as often
attack = st.tuples(st.sampled_from(TARGETS), st.one_of(body.map(lambda b: json.dumps(b).encode()), raw),
                   st.sampled_from(["predict", "admin", "none"]))


@pytest.fixture(scope="module")
def server(tiny_bundle, tiny_image_bundle, tmp_path_factory):
    workspace = tmp_path_factory.mktemp("fuzz")
    store = KeyStore(workspace)
    keys = {"predict": store.create("predict", ["reviews", "corners"])[0], "admin": store.create("admin")[0]}
    with live_server(tiny_bundle, workspace, "--bundle", f"corners={tiny_image_bundle}", "--rate-limit", "1000000",
                     "--rate-burst", "1000000", "--max-wait-ms", "10", "--log-inputs") as (process, base):
        yield process, base, keys


async def send_all(base, keys, attacks, round_index):
    headers = lambda role: {"Content-Type": "application/json",  # noqa: E731
                            **({"Authorization": f"Bearer {keys[role]}"} if role in keys else {})}
    valid = [("/v1/models/reviews:predict", {"texts": [f"a superb and warm film {round_index}", "dull plot"]})] * 4
    valid += [("/v1/models/corners:predict", {"images": [base64.b64encode(GOOD_PNG).decode()]})] * 2
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        good = [client.post(path, json=payload, headers=headers("predict")) for path, payload in valid]
        bad = [client.post(path, content=content, headers=headers(role)) for path, content, role in attacks]
        responses = await asyncio.gather(*good, *bad)
    return responses[:len(good)], list(zip(attacks, responses[len(good):]))


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(attacks=st.lists(attack, min_size=1, max_size=8))
def test_fuzzed_bodies_never_hurt_valid_requests_or_give_5xx(server, attacks):
    process, base, keys = server
    good, bad = asyncio.run(send_all(base, keys, attacks, len(attacks)))
    for response in good:
        assert response.status_code == 200, response.text
        for prediction in response.json()["predictions"]:
            assert all(math.isfinite(p) for p in prediction["probabilities"].values())
    for (path, content, role), response in bad:
        assert response.status_code < 500, (path, content[:200], role, response.text[:500])
        if response.status_code >= 400:
            assert set(response.json()["error"]) >= {"code", "message"}
    assert process.poll() is None  # still serving
