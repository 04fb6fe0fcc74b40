"""Schemathesis against the live server's own OpenAPI spec: no 5xx, documented status codes,
responses that match the schema, 405 with Allow for undeclared methods.

Runs the schemathesis CLI (its pytest plugin does not support pytest 9 yet) with a fixed seed.
"""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fmkit.serve.keys import KeyStore

SCHEMATHESIS = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_live_api_conforms_to_its_openapi_spec(tiny_bundle, tmp_path):
    key, _ = KeyStore(tmp_path).create("admin")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "fmkit", "serve", "--bundle", f"reviews={tiny_bundle}",
                               "--port", str(port), "--workspace", str(tmp_path), "--rate-limit", "100000",
                               "--rate-burst", "100000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if server.poll() is not None:
                pytest.fail(server.stderr.read().decode()[-2000:])
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        result = subprocess.run(
            [SCHEMATHESIS, "run", f"{base}/openapi.json", "-H", f"Authorization: Bearer {key}",
             "--max-examples", "25", "--seed", "1", "--phases", "examples,coverage,fuzzing"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-6000:]
        assert "No issues found" in result.stdout or " passed" in result.stdout
    finally:
        server.terminate()
        server.wait(timeout=60)
