"""fmkit compress: a smaller/faster variant of a bundle, measured on its deployment runtime."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, add_verify_flag, print_json

# flag -> option of the method it applies to
METHOD_FLAGS = {"sparsity": "sparsity", "student_layers": "student_layers", "alpha": "alpha",
                "temperature": "temperature"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compress",
        help="quantize, prune or distill a bundle into a measured variant",
        description="Make a variant of a fine-tuned bundle with one compression method, evaluate it on the "
        "parent's test split on the runtime it deploys on, measure latency/throughput/size/RSS, and check "
        "the accuracy budget (exit 1 and status 'failed' in the manifest when broken).\n\n"
        "methods: quantize-dynamic (ONNX Runtime INT8), bf16, prune-magnitude, distill, export-onnx",
        epilog="examples:\n  fmkit compress models/reviews --method quantize-dynamic --out models/reviews-int8\n"
        "  fmkit compress models/reviews --method distill --student-layers 3 --out models/reviews-l3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bundle", help="the parent bundle (fp32, PyTorch)")
    parser.add_argument("--method", required=True, help="compression method (see above)")
    parser.add_argument("--out", required=True, help="variant bundle to create")
    parser.add_argument("--max-accuracy-drop", type=float, default=1.0,
                        help="test-accuracy points the variant may lose in total vs the lineage's task model (the "
                        "last ancestor that is not a compression), so chained compressions share one budget "
                        "(default: 1.0)")
    parser.add_argument("--accuracy-budget", choices=["total", "step"], default="total",
                        help="bound the total drop vs the task model (default) or only this step's vs the parent")
    parser.add_argument("--data", help="the parent's training data, if its recorded path moved (same rows required)")
    parser.add_argument("--sparsity", type=float, help="prune-magnitude: share of weights set to zero, in (0, 1)")
    parser.add_argument("--student-layers", type=int, help="distill: layers of the student (default: 3)")
    parser.add_argument("--alpha", type=float, help="distill: weight of the teacher's soft loss (default: 0.5)")
    parser.add_argument("--temperature", type=float, help="distill: softening temperature (default: 2.0)")
    parser.add_argument("--threads", type=int, help="runtime threads for the measurement (default: all cores)")
    parser.add_argument("--no-measure", action="store_true", help="skip latency/throughput/RSS measurement")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_verify_flag(parser)
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from fmkit.compress import CompressConfig
    from fmkit.compress.stage import run_compress

    args.config_model = CompressConfig
    method = {"name": args.method}
    method.update({option: getattr(args, flag) for flag, option in METHOD_FLAGS.items()
                   if getattr(args, flag) is not None})
    cfg = CompressConfig(method=method, max_accuracy_drop=args.max_accuracy_drop, data=args.data,
                         accuracy_budget=args.accuracy_budget,
                         measure={"threads": args.threads, "enabled": not args.no_measure})
    manifest = run_compress(args.bundle, cfg, args.out, overwrite=args.overwrite)
    summary = {"bundle": args.out, "compression": manifest.compression, "test": manifest.metrics["test"],
               "benchmarks": manifest.benchmarks}
    if args.json:
        print_json(summary)
    else:
        c = manifest.compression
        total = c.get("total_accuracy_drop_points")
        total_text = "unknown" if total is None else f"{total:+.2f}"
        print(f"wrote {args.out} ({c['method']}): test accuracy {manifest.metrics['test']['accuracy']:.4f} "
              f"(parent {c['parent_test_accuracy']:.4f}, drop {c['accuracy_drop_points']:+.2f} points this step, "
              f"{total_text} in total; budget {c['max_accuracy_drop_points']} {c['accuracy_budget']}) "
              f"status {c['status']}")
        for runtime, figures in manifest.benchmarks.items():
            print(f"  {runtime}: p50 {figures['latency_p50_ms']:.1f} ms, p95 {figures['latency_p95_ms']:.1f} ms, "
                  f"{figures['throughput_per_second']:.1f} texts/s at batch {figures['throughput_batch']}, "
                  f"{figures['size_bytes'] / 1e6:.1f} MB, peak RSS {figures['peak_rss_mb']:.0f} MB")
    return 0
