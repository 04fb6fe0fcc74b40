"""Compressed variants vs `transformers.pipeline("text-classification")` in fp32, one run.

Makes the variants of a fine-tuned parent bundle (skipping those already made), then measures
every variant on its own runtime and the plain transformers pipeline on the parent, each in a
fresh process, with the same threads and the same Rotten Tomatoes test sentences.

    .venv/bin/python bench/compression.py --parent runs/DATE-full/finetune-full --work bench-out
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = {  # name -> (parent name, method); parents first
    "onnx-fp32": ("parent", {"name": "export-onnx"}),
    "int8-dynamic": ("parent", {"name": "quantize-dynamic"}),
    "int8-static": ("parent", {"name": "quantize-static"}),
    "bf16": ("parent", {"name": "bf16"}),
    "pruned": ("parent", {"name": "prune-structured", "heads_fraction": 0.25, "ffn_fraction": 0.3}),
    "pruned-int8": ("pruned", {"name": "quantize-dynamic"}),
    "distilled-l3": ("parent", {"name": "distill", "student_layers": 3,
                                "train": {"epochs": 2, "batch_size": 32, "learning_rate": 1e-4}}),
    "distilled-l3-int8": ("distilled-l3", {"name": "quantize-dynamic"}),
}


def pipeline_side(args) -> dict:
    """Plain transformers pipeline, fp32 eager, on the parent bundle."""
    import numpy as np
    import torch
    from transformers import pipeline

    torch.set_num_threads(args.threads)
    texts, labels = json.loads(Path(args.texts).read_text())
    classify = pipeline("text-classification", model=args.parent, tokenizer=args.parent, device=-1)
    for text in texts[:5]:
        classify(text)
    latencies = []
    for text in texts[:args.latency_samples]:
        started = time.perf_counter()
        classify(text)
        latencies.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    outputs = classify(texts, batch_size=32, truncation=True, max_length=128)
    elapsed = time.perf_counter() - started
    accuracy = float(np.mean([o["label"] == label for o, label in zip(outputs, labels)]))
    size = sum(p.stat().st_size for p in Path(args.parent).glob("*.safetensors"))
    return {"latency_p50_ms": float(np.percentile(latencies, 50)), "latency_p95_ms": float(np.percentile(latencies, 95)),
            "throughput_per_second": len(texts) / elapsed, "test_accuracy": accuracy, "size_bytes": size,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bf16_peak_gflops(seconds: float = 3.0) -> float:
    import torch

    a = torch.randn(2048, 2048, dtype=torch.bfloat16)
    b = torch.randn(2048, 2048, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
    return 2 * 2048 ** 3 * count / (time.perf_counter() - started) / 1e9


def flops_per_text(bundle: Path, mean_tokens: float) -> float:
    """2 x (encoder Linear weights) x tokens + attention's QK^T and AV, from the variant's real shapes."""
    import numpy as np
    import onnx
    from safetensors import safe_open

    shapes = []
    onnx_file = bundle / "model.onnx"
    if onnx_file.is_file():
        graph = onnx.load(str(onnx_file)).graph
        for init in graph.initializer:
            if len(init.dims) == 2 and "embeddings" not in init.name:
                shapes.append(tuple(init.dims))
    else:
        with safe_open(str(bundle / "model.safetensors"), "pt") as handle:
            for name in handle.keys():
                shape = handle.get_slice(name).get_shape()
                if len(shape) == 2 and "embeddings" not in name:
                    shapes.append(tuple(shape))
    linear = sum(int(np.prod(s)) for s in shapes if min(s) > 2)  # skip the 2-way head
    config = json.loads((bundle / "config.json").read_text())
    attention = 4 * config["num_hidden_layers"] * mean_tokens ** 2 * config["hidden_size"]
    return 2 * linear * mean_tokens + attention


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parent", required=True, help="fine-tuned fp32 bundle")
    parser.add_argument("--work", default="bench-out", help="where the variants are made (kept between runs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--only", nargs="*", help="variant names to include (default: all)")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "pipeline":
        print("RESULT " + json.dumps(pipeline_side(args)))
        return 0

    from fmkit.bundle import read_manifest
    from fmkit.compress import CompressConfig
    from fmkit.compress.methods import CompressContext
    from fmkit.compress.stage import run_compress, test_texts
    from fmkit.runtime.measure import measure_bundle

    parent = Path(args.parent)
    work = Path(args.work)
    paths = {"parent": parent}
    for name, (source, method) in VARIANTS.items():
        if args.only and name not in args.only and not any(VARIANTS[o][0] == name for o in args.only):
            continue
        out = work / name
        paths[name] = out
        if not (out / "fmkit.json").is_file():
            print(f"making {name} ({method['name']}) ...", flush=True)
            try:
                run_compress(paths[source], CompressConfig(method=method, max_accuracy_drop=100.0,
                                                           measure={"enabled": False}), out, overwrite=True)
            except Exception as error:  # one failing method should not hide the others' figures
                print(f"  {name} failed: {error}", flush=True)
                paths.pop(name)

    manifest = read_manifest(parent)
    texts, labels = test_texts(CompressContext(parent, manifest, 0.0))
    texts_file = work / "test_texts.json"
    texts_file.write_text(json.dumps([texts, labels]))
    command = [sys.executable, __file__, "--side", "pipeline", "--parent", str(parent), "--texts", str(texts_file),
               "--threads", str(args.threads), "--latency-samples", str(args.latency_samples)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr[-3000:], file=sys.stderr)
        return 1
    baseline = json.loads(result.stdout.split("RESULT ", 1)[1])
    peak = bf16_peak_gflops()
    from transformers import AutoTokenizer

    mean_tokens = sum(len(ids) for ids in AutoTokenizer.from_pretrained(str(parent))(texts)["input_ids"]) / len(texts)
    rows = []
    for name, path in paths.items():
        figures = measure_bundle(path, texts, threads=args.threads, latency_samples=args.latency_samples)
        variant = read_manifest(path)
        accuracy = variant.metrics["test"]["accuracy"]
        gflops = flops_per_text(path, mean_tokens) * figures["throughput_per_second"] / 1e9
        rows.append({"variant": name, "runtime": figures["runtime"], "test_accuracy": accuracy,
                     "accuracy_delta_points": 100 * (accuracy - baseline["test_accuracy"]),
                     "throughput_ratio": figures["throughput_per_second"] / baseline["throughput_per_second"],
                     "p50_ratio": figures["latency_p50_ms"] / baseline["latency_p50_ms"],
                     "p95_ratio": figures["latency_p95_ms"] / baseline["latency_p95_ms"],
                     "size_ratio": baseline["size_bytes"] / figures["size_bytes"],
                     "achieved_gflops": gflops, "share_of_bf16_peak": gflops / peak, **figures})
    print(json.dumps({"baseline_pipeline_fp32": baseline, "bf16_matmul_peak_gflops": peak,
                      "mean_tokens": mean_tokens, "rows": rows}, indent=2))
    print(f"\npipeline fp32: {baseline['throughput_per_second']:.1f} texts/s, p50 {baseline['latency_p50_ms']:.1f} ms, "
          f"p95 {baseline['latency_p95_ms']:.1f} ms, {baseline['size_bytes'] / 1e6:.1f} MB, acc {baseline['test_accuracy']:.4f}")
    print(f"bf16 matmul peak: {peak:.0f} GFLOP/s; mean {mean_tokens:.1f} tokens per test text\n")
    header = f"{'variant':20s}{'runtime':>8s}{'acc':>8s}{'Δacc':>7s}{'thr x':>7s}{'p50 x':>7s}{'p95 x':>7s}{'size x':>7s}{'GFLOP/s':>9s}{'%peak':>7s}"
    print(header)
    for r in rows:
        print(f"{r['variant']:20s}{r['runtime']:>8s}{r['test_accuracy']:>8.4f}{r['accuracy_delta_points']:>+7.2f}"
              f"{r['throughput_ratio']:>7.2f}{r['p50_ratio']:>7.2f}{r['p95_ratio']:>7.2f}{r['size_ratio']:>7.2f}"
              f"{r['achieved_gflops']:>9.1f}{100 * r['share_of_bf16_peak']:>6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
