"""Serving throughput and latency: dynamic batching vs batching disabled, same bundle, one run.

Starts `fmkit serve` twice on loopback (batching on: --max-batch 32 --max-wait-ms 5 by default;
off: --max-batch 1, every request runs alone) and drives each with 32 connections sending single-text requests of real
test sentences for --seconds; then measures the no-op /healthz as the server's own ceiling.
The load comes from `wrk` (Debian package; C, so the client takes little of the 2 cores)
or, with --client python, from httpx.

    apt-get install -y wrk
    .venv/bin/python bench/serve.py --bundle runs/DATE-full/finetune-full [--seconds 20] [--precision bf16]

It also reports the bundle's test accuracy as served (with --precision) next to its stored weights.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(bundle: str, workspace: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "fmkit", "serve", "--bundle", f"m={bundle}", "--port", str(port),
                                "--workspace", str(workspace), "--rate-limit", "1e6", "--rate-burst", "1000000",
                                *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode()[-2000:])
        time.sleep(0.3)
    raise RuntimeError("server did not become ready")


async def drive(base: str, key: str | None, texts: list[str], clients: int, seconds: float, path: str) -> dict:
    import httpx
    import numpy as np

    latencies, errors = [], 0
    stop = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(index: int, session: httpx.AsyncClient):
        nonlocal errors
        i = index
        while time.perf_counter() < stop:
            started = time.perf_counter()
            if path == "/healthz":
                response = await session.get(path)
            else:
                response = await session.post(path, headers=headers, json={"texts": [texts[i % len(texts)]]})
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200
            i += clients

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, session) for i in range(clients)))
        elapsed = time.perf_counter() - started
    values = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": errors, "requests_per_second": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))}


WRK_SCRIPT = """
local bodies = {%s}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("%s", "%s", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %s"},
                    bodies[(counter %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%f %%f %%f\\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99),
    summary.duration))
end
"""


def drive_wrk(base: str, key: str | None, texts: list[str], clients: int, seconds: float, path: str) -> dict:
    method = "GET" if path == "/healthz" else "POST"
    bodies = ",".join("[==[" + json.dumps({"texts": [t]}) + "]==]" for t in texts) if method == "POST" else "''"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(WRK_SCRIPT % (bodies, method, path, key or ""))
    output = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{int(seconds)}s", "--timeout", "10s", "-s", handle.name,
                             base], capture_output=True, text=True).stdout
    os.unlink(handle.name)
    requests, errors, p50, p99, duration = output.split("RESULT ", 1)[1].split()[:5]
    return {"requests": int(requests), "errors": int(errors), "requests_per_second": int(requests) / (float(duration) / 1e6),
            "p50_ms": float(p50) / 1000, "p99_ms": float(p99) / 1000, "client": "wrk"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def served_accuracy(bundle: str, precision: str | None, texts: list[str], labels: list[str]) -> dict:
    """Test accuracy of the bundle as served (its --precision) and as stored, and how often they agree."""
    import numpy as np

    import fmkit

    def predicted(**options):
        runtime = fmkit.load(bundle, **options)
        return np.array(runtime.labels)[runtime.predict_proba(texts).argmax(axis=1)]

    stored = predicted()
    served = predicted(precision=precision) if precision and precision != "fp32" else stored
    truth = np.array(labels)
    return {"precision": precision or "fp32", "test_rows": len(texts),
            "accuracy_served": float((served == truth).mean()), "accuracy_stored": float((stored == truth).mean()),
            "agreement": float((served == stored).mean())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--threads", type=int, help="model threads in the server (default: all cores)")
    parser.add_argument("--precision", choices=["fp32", "bf16", "auto"], help="the server's --precision")
    parser.add_argument("--inference-batch", type=int, help="the server's --inference-batch (default: its own)")
    parser.add_argument("--max-batch", type=int, default=32, help="batching mode: texts per batch (default 32)")
    parser.add_argument("--max-wait-ms", type=float, default=5, help="batching mode: wait window (default 5)")
    args = parser.parse_args()

    from fmkit.bundle import read_manifest
    from fmkit.compress.methods import CompressContext
    from fmkit.compress.stage import test_texts
    from fmkit.serve.keys import KeyStore

    texts, labels = test_texts(CompressContext(Path(args.bundle), read_manifest(args.bundle), 0.0))
    accuracy = served_accuracy(args.bundle, args.precision, texts, labels)
    workspace = Path(tempfile.mkdtemp(prefix="fmkit-serve-bench-"))
    key, _ = KeyStore(workspace).create("predict")
    results = {}
    # "no-batching" is --max-batch 1: with only --max-wait-ms 0 the batcher still drains whatever queued
    # while the model was busy, which under 32 clients is batching by another name.
    for mode, extra in (("batching", ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]),
                        ("no-batching", ["--max-batch", "1", "--max-wait-ms", "0"])):
        if args.threads:
            extra += ["--threads", str(args.threads)]
        if args.inference_batch:
            extra += ["--inference-batch", str(args.inference_batch)]
        if args.precision:
            extra += ["--precision", args.precision]
        process, base = start_server(args.bundle, workspace, extra)

        def load(seconds, path, with_key=True):
            if args.client == "wrk":
                return drive_wrk(base, key if with_key else None, texts, args.clients, seconds, path)
            return asyncio.run(drive(base, key if with_key else None, texts, args.clients, seconds, path))

        try:
            load(2, "/v1/models/m:predict")  # warm-up
            before = rss_mb(process.pid)
            results[mode] = load(args.seconds, "/v1/models/m:predict")
            results[mode]["rss_mb_before"], results[mode]["rss_mb_after"] = before, rss_mb(process.pid)
            if mode == "batching":
                results["healthz"] = load(5, "/healthz", with_key=False)
        finally:
            process.terminate()
            process.wait(timeout=60)
    results["accuracy"] = accuracy
    print(json.dumps(results, indent=2))
    on, off = results["batching"], results["no-batching"]
    print(f"\nthroughput with batching / without: {on['requests_per_second'] / off['requests_per_second']:.2f}x "
          f"({on['requests_per_second']:.1f} vs {off['requests_per_second']:.1f} req/s); p99 {on['p99_ms']:.1f} ms "
          f"vs {off['p99_ms']:.1f} ms; errors {on['errors']} / {off['errors']}; /healthz ceiling "
          f"{results['healthz']['requests_per_second']:.0f} req/s; test accuracy as served "
          f"{accuracy['accuracy_served']:.4f} (stored weights {accuracy['accuracy_stored']:.4f}, agreement "
          f"{accuracy['agreement']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
