"""Drift watch: the statistics against slow references, the reference a bundle carries (written by fine-tuning,
added to an existing bundle, refused when edited), and ``--watch`` on a served model: in-distribution traffic
stays quiet, shifted traffic raises one alert per signal (alerts.jsonl, webhook, /metrics, /v1/models/NAME/drift)."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from conftest import NEGATIVE, synthetic_reviews
from fmkit.errors import BadInputError, BundleIntegrityError
from fmkit.evaluate.drift import label_shares, mean_confidence_drop, mmd_permutation_test, population_stability_index


def test_psi_matches_its_formula_and_is_zero_without_shift():
    assert population_stability_index([0.5, 0.5], [0.5, 0.5]) == 0.0
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert population_stability_index([0.5, 0.5], [0.8, 0.2]) == pytest.approx(expected)
    shares = label_shares(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]), 2)
    assert shares.tolist() == [0.75, 0.25]
    assert mean_confidence_drop(np.array([[0.9, 0.1]]), np.array([[0.6, 0.4]])) == pytest.approx(0.3)


def slow_mmd2(x, y, bandwidth):
    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * bandwidth ** 2))

    xx = np.mean([k(a, b) for a in x for b in x])
    yy = np.mean([k(a, b) for a in y for b in y])
    xy = np.mean([k(a, b) for a in x for b in y])
    return xx + yy - 2 * xy


def test_mmd_equals_the_slow_formula_and_separates_shifted_samples():
    rng = np.random.default_rng(0)
    x, same, shifted = rng.normal(size=(150, 8)), rng.normal(size=(150, 8)), rng.normal(0.4, 1.0, size=(150, 8))
    quiet = mmd_permutation_test(x, same, permutations=200)
    loud = mmd_permutation_test(x, shifted, permutations=200)
    assert quiet.p_value > 0.05 and loud.p_value < 0.01, (quiet, loud)
    small_x, small_y = x[:20], shifted[:15]
    result = mmd_permutation_test(small_x, small_y, permutations=50)
    assert result.mmd2 == pytest.approx(slow_mmd2(small_x, small_y, result.bandwidth), rel=1e-9)
    with pytest.raises(ValueError, match="same width"):
        mmd_permutation_test(x, shifted[:, :4])


def test_finetuning_writes_a_reference_from_the_test_split(tiny_bundle):
    import fmkit
    from fmkit.bundle import open_bundle
    from fmkit.bundle.split import read_split
    from fmkit.evaluate.reference import read_reference

    manifest = open_bundle(tiny_bundle)  # written before publishing: the bundle verifies as it is
    reference = read_reference(tiny_bundle, manifest)
    test_rows = read_split(tiny_bundle)["indices"]["test"]
    assert reference.record["rows"] == len(test_rows) == len(reference.probabilities)
    import csv

    texts = [row["text"] for row in csv.DictReader(open(manifest.data["source"], encoding="utf-8"))]
    expected = fmkit.load(tiny_bundle).predict_proba([texts[i] for i in test_rows])
    np.testing.assert_allclose(reference.probabilities, expected, atol=1e-5)
    assert reference.features.shape == (len(test_rows), 32)  # what the classifier head reads (hidden 32)
    assert reference.labels == manifest.labels


def test_a_reference_is_added_to_an_existing_bundle_and_an_edited_one_is_refused(tiny_bundle, tmp_path):
    from fmkit.bundle import open_bundle, update_manifest
    from fmkit.cli.main import main
    from fmkit.evaluate.reference import REFERENCE_FILE, read_reference

    copy = tmp_path / "old-bundle"
    shutil.copytree(tiny_bundle, copy)
    (copy / REFERENCE_FILE).unlink()
    update_manifest(copy, lambda m: m.audits.pop("drift_reference"))  # a bundle made before references existed
    digest = open_bundle(copy).content_digest
    with pytest.raises(BadInputError, match="--write-reference"):
        read_reference(copy, open_bundle(copy))
    assert main(["serve", "--bundle", f"reviews={copy}", "--watch", "--workspace", str(tmp_path)]) == 2
    assert main(["evaluate", str(copy), "--write-reference", "--no-baseline", "--no-record"]) == 0
    manifest = open_bundle(copy)
    assert manifest.content_digest == digest  # reports/ is outside the model's identity
    assert read_reference(copy, manifest).record["rows"] > 0
    with open(copy / REFERENCE_FILE, "r+b") as handle:  # an edit of the arrays is caught by the sealed SHA-256
        handle.seek(-4, 2)
        handle.write(b"\x00\x00\x80\x7f")
    with pytest.raises(BundleIntegrityError, match="changed since it was recorded"):
        read_reference(copy, open_bundle(copy))


class Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        Receiver.received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def negative_reviews(count: int) -> list[str]:
    rng = np.random.default_rng(1)
    return [f"the plot was {rng.choice(NEGATIVE)} and {rng.choice(NEGATIVE)} {i}" for i in range(count)]


def test_watch_stays_quiet_on_familiar_traffic_and_alerts_once_on_a_shift(tiny_bundle, tmp_path):
    import httpx

    from fmkit.serve.app import create_app
    from fmkit.serve.config import ServeConfig
    from fmkit.serve.keys import KeyStore

    receiver = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    Receiver.received = []
    key = KeyStore(tmp_path).create("admin", None)[0]
    config = ServeConfig(bundles={"reviews": tiny_bundle}, workspace=tmp_path, watch=True, watch_window=60,
                         watch_min_rows=40, watch_every=20, watch_webhook=f"http://127.0.0.1:{receiver.server_port}/")
    app = create_app(config)
    headers = {"Authorization": f"Bearer {key}"}
    familiar = [text for text, _ in synthetic_reviews(60, seed=7)]

    async def scenario():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                warming = (await client.get("/v1/models/reviews/drift", headers=headers)).json()
                for start in range(0, 60, 10):
                    response = await client.post("/v1/models/reviews:predict", headers=headers,
                                                 json={"texts": familiar[start:start + 10]})
                    assert response.status_code == 200, response.text
                quiet = (await client.get("/v1/models/reviews/drift", headers=headers)).json()
                for batch in np.array_split(np.array(negative_reviews(60)), 6):
                    await client.post("/v1/models/reviews:predict", headers=headers, json={"texts": batch.tolist()})
                shifted = (await client.get("/v1/models/reviews/drift", headers=headers)).json()
                again = (await client.get("/v1/models/reviews/drift", headers=headers)).json()
                metrics = (await client.get("/metrics", headers=headers)).text
                unknown = await client.get("/v1/models/nope/drift", headers=headers)
                return warming, quiet, shifted, again, metrics, unknown

    warming, quiet, shifted, again, metrics, unknown = asyncio.run(scenario())
    receiver.shutdown()
    assert warming["status"] == "warming up"
    assert quiet["status"] == "ok", quiet
    assert quiet["prediction"]["psi"] < 0.1 and quiet["input"]["p_value"] >= 0.01
    assert shifted["prediction"]["label_shares"]["neg"] == 1.0 and shifted["prediction"]["psi"] > 1.0
    assert "prediction" in shifted["drifting"] and "input" in shifted["drifting"], shifted
    assert again["status"] == "drifting"
    alerts = [json.loads(line) for line in (tmp_path / ".fmkit/drift/reviews/alerts.jsonl").read_text().splitlines()]
    assert sorted(a["signal"] for a in alerts) == sorted(shifted["drifting"])  # one per signal, not one per check
    assert {a["signal"] for a in Receiver.received} == set(shifted["drifting"])
    assert alerts[0]["model"] == "reviews" and alerts[0]["bundle_digest"].startswith("sha256:")
    assert 'fmkit_drift_psi{model="reviews"}' in metrics and 'fmkit_drift_alerts_total{model="reviews",signal=' \
        '"prediction"} 1.0' in metrics
    assert unknown.status_code == 404
