"""Schemathesis against the live server's own OpenAPI spec: no 5xx, documented status codes,
responses that match the schema, 405 with Allow for undeclared methods.

Runs the schemathesis CLI (its pytest plugin does not support pytest 9 yet) with a fixed seed.
"""

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import live_server
from fmkit.serve.keys import KeyStore

SCHEMATHESIS = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
# One predict route serves text and image models, so a schema-valid body can be the wrong kind for
# the model named (images to a text model) or bytes that are no image: a 422 there is right.
CONFIG = """
[[operations]]
include-path-regex = ":predict$"
checks.positive_data_acceptance.expected-statuses = ["2XX", "401", "403", "404", "413", "422", "429"]
"""


def test_live_api_conforms_to_its_openapi_spec(tiny_bundle, tmp_path):
    key, _ = KeyStore(tmp_path).create("admin")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    with live_server(tiny_bundle, tmp_path, "--rate-limit", "100000", "--rate-burst", "100000") as (_, base):
        result = subprocess.run(
            [SCHEMATHESIS, "--config-file", str(config), "run", f"{base}/openapi.json", "-H", f"Authorization: Bearer {key}",
             "--max-examples", "25", "--seed", "1", "--phases", "examples,coverage,fuzzing"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "No issues found" in result.stdout or " passed" in result.stdout
