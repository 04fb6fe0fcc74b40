"""Measure a bundle on its deployment runtime, in a fresh process so peak RSS is its own.

Latency: p50/p95 over single-text calls (batch 1) on real sentences. Throughput: sentences/s
at batch 32 through the runtime's own length-sorted batching. Size: bytes of the model files.

    python -m fmkit.runtime.measure BUNDLE --texts texts.json [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL_SUFFIXES = (".safetensors", ".onnx", ".data")


def model_size_bytes(bundle: Path) -> int:
    """Bytes of weights on disk (adapters and reports excluded: they are not what is deployed)."""
    return sum(p.stat().st_size for p in Path(bundle).glob("*") if p.suffix in MODEL_SUFFIXES)


def parameter_count(bundle: Path) -> int:
    """Parameters stored in the weight files (zeros of unstructured pruning still count)."""
    bundle = Path(bundle)
    total = 0
    for path in bundle.glob("*.safetensors"):
        with open(path, "rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count
    for path in bundle.glob("*.onnx"):
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        for initializer in model.graph.initializer:
            count = 1
            for dim in initializer.dims:
                count *= dim
            # Quantized graphs keep scales/zero points as tiny initializers: count only weights.
            if count > 1:
                total += count
    return total


def measure_here(bundle: Path, texts: list[str], *, threads: int | None, latency_samples: int,
                 throughput_batch: int, warmup: int = 5) -> dict:
    import numpy as np

    import fmkit

    if threads:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass
    runtime = fmkit.load(bundle, device="cpu", threads=threads)
    for text in texts[:warmup]:
        runtime.logits([text])
    latencies = []
    for text in texts[:latency_samples]:
        started = time.perf_counter()
        runtime.logits([text])
        latencies.append((time.perf_counter() - started) * 1000)
    encoded = runtime.encode(texts, warn=False)
    for _ in runtime.iter_logits(encoded, throughput_batch):  # warm the batch shapes
        break
    started = time.perf_counter()
    for _ in runtime.iter_logits(encoded, throughput_batch):
        pass
    elapsed = time.perf_counter() - started
    return {
        "runtime": runtime.backend,
        "threads": threads,
        "latency_p50_ms": float(np.percentile(latencies, 50)),
        "latency_p95_ms": float(np.percentile(latencies, 95)),
        "latency_samples": len(latencies),
        "throughput_batch": throughput_batch,
        "throughput_per_second": len(texts) / elapsed,
        "throughput_texts": len(texts),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "size_bytes": model_size_bytes(bundle),
        "parameters": parameter_count(bundle),
    }


def measure_bundle(bundle: Path, texts: list[str], *, threads: int | None = None, latency_samples: int = 200,
                   throughput_batch: int = 32) -> dict:
    """Run :func:`measure_here` in a child process and return its figures."""
    import datetime

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(texts, handle)
    command = [sys.executable, "-m", "fmkit.runtime.measure", str(bundle), "--texts", handle.name,
               "--latency-samples", str(latency_samples), "--throughput-batch", str(throughput_batch)]
    if threads:
        command += ["--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True)
    Path(handle.name).unlink(missing_ok=True)
    if result.returncode != 0:
        from fmkit.errors import FmkitError

        raise FmkitError(f"measuring {bundle} failed:\n{result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["measured"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--texts", required=True, help="JSON list of texts")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--throughput-batch", type=int, default=32)
    args = parser.parse_args()
    texts = json.loads(Path(args.texts).read_text())
    figures = measure_here(Path(args.bundle), texts, threads=args.threads, latency_samples=args.latency_samples,
                           throughput_batch=args.throughput_batch)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
