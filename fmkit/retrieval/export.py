"""ONNX export of a bi-encoder and what compression needs from a text-retrieval bundle.

The graph takes ``input_ids``/``attention_mask`` and returns ``embeddings`` (pooled, L2-normalised:
the same unit vectors as PyTorch, parity-checked to 1e-4 on the bundle's own training queries and
documents). `fmkit compress --method export-onnx` keeps it fp32; `--method quantize-dynamic`
quantizes it to INT8 with ONNX Runtime. Variants are scored with the ranking metrics on the
parent's own test questions against the whole index (``accuracy`` = Recall@1 for the budget).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError, CheckFailedError

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "embeddings"
PARITY_TOLERANCE = 1e-4
PARITY_TEXTS = 32


def export_encoder_onnx(model, path: Path, *, opset: int = 17) -> Path:
    """The bi-encoder: (input_ids, attention_mask) -> ``embeddings``, through the classifier export's mechanism."""
    from fmkit.export.onnx import export_tensor_module

    return export_tensor_module(model, model, path, output_name=OUTPUT_NAME, opset=opset)


def check_encoder_parity(model, onnx_path: Path, texts: list[str], tokenizer, max_length: int) -> float:
    import onnxruntime as ort
    import torch

    from fmkit.data.batching import encode_texts, pad_arrays, sorted_batches

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    encoded = encode_texts(tokenizer, texts, max_length, warn=False)
    worst = 0.0
    with torch.inference_mode():
        for rows in sorted_batches(encoded.lengths, 8):
            feed = pad_arrays([encoded.input_ids[i] for i in rows], tokenizer.pad_token_id)
            reference = model(*(torch.from_numpy(feed[name]) for name in INPUT_NAMES)).numpy()
            (ours,) = session.run([OUTPUT_NAME], feed)
            worst = max(worst, float(np.abs(ours - reference).max()))
    if worst > PARITY_TOLERANCE:
        raise CheckFailedError(f"ONNX Runtime and PyTorch embeddings differ by {worst:.2e} (> {PARITY_TOLERANCE:.0e}) "
                               "on the bundle's own texts; the export is not trustworthy")
    return worst


# -- compression hooks (fmkit/compress/tasks.py RETRIEVAL_HOOKS) -------------------------------------

def parent_data(context):
    """The parent's training pairs, fingerprint-checked (compression scores on the parent's own split)."""
    from fmkit.compress.tasks import recorded_data
    from fmkit.retrieval.config import RetrievalDataConfig
    from fmkit.retrieval.data import load_pairs

    return recorded_data(context, load_pairs, RetrievalDataConfig)


def export_fp32(context, directory: Path, opset: int) -> Path:
    from transformers import AutoTokenizer

    from fmkit.retrieval.encoder_model import load_bi_encoder

    model = load_bi_encoder(context.parent)
    tokenizer = AutoTokenizer.from_pretrained(str(context.parent))
    path = export_encoder_onnx(model, Path(directory) / "fp32.onnx", opset=opset)
    data = context.data
    rng = np.random.default_rng(context.seed)
    texts = [data.queries[i] for i in rng.permutation(len(data.queries))[:PARITY_TEXTS // 2]]
    texts += [data.documents[i] for i in rng.permutation(len(data.documents))[:PARITY_TEXTS // 2]]
    check_encoder_parity(model, path, texts, tokenizer, context.manifest.max_length)
    return path


def test_queries(context) -> tuple[list[str], list[str]]:
    from fmkit.bundle.split import split_rows

    data = context.data
    rows = split_rows(context.parent, data, "test")
    return [data.queries[i] for i in rows], [data.labels[i] for i in rows]


def evaluate_variant(path: Path, context) -> dict:
    """The variant's ranking metrics on its own runtime: the parent's test questions against every document."""
    from fmkit.bundle.split import split_rows
    from fmkit.retrieval.metrics import ranking_metrics
    from fmkit.runtime.embeddings import load_encoder

    data = context.data
    rows = split_rows(context.parent, data, "test")
    encoder = load_encoder(path, device="cpu")
    metrics = ranking_metrics(encoder.encode([data.queries[i] for i in rows]), encoder.encode(data.documents),
                              data.relevant(rows))
    return {**metrics, "runtime": encoder.runtime}


def measure_encoder(path: Path, texts: list[str], measure) -> dict:
    """Latency of one query (p50/p95/p99), texts/s at batch ``throughput_batch``, size; in this process."""
    import datetime
    import resource
    import time

    from fmkit.runtime.embeddings import load_encoder
    from fmkit.runtime.measure import model_size_bytes, parameter_count

    encoder = load_encoder(path, device="cpu", threads=measure.threads)
    samples = [texts[i % len(texts)] for i in range(max(measure.latency_samples, 1))]
    for text in samples[:5]:
        encoder.encode([text])
    latencies = []
    for text in samples:
        started = time.perf_counter()
        encoder.encode([text])
        latencies.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    encoder.encode(texts, batch_size=measure.throughput_batch)
    elapsed = time.perf_counter() - started
    return {"runtime": encoder.runtime, "threads": measure.threads,
            **{f"latency_p{q}_ms": float(np.percentile(latencies, q)) for q in (50, 95, 99)},
            "latency_samples": len(latencies), "throughput_batch": measure.throughput_batch,
            "throughput_per_second": len(texts) / elapsed, "throughput_texts": len(texts),
            # the process's peak so far, as the classification measure reports it (same column in compare)
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "size_bytes": model_size_bytes(Path(path)), "parameters": parameter_count(Path(path)),
            "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
