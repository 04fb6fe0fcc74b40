"""fmkit export: a bundle as ONNX for ONNX Runtime (dynamic batch/sequence axes, parity-checked)."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export", help="export a bundle to ONNX (checked against PyTorch, max |diff| <= 1e-4)",
        description="Export a bundle to an ONNX bundle (model.onnx + config + tokenizer + manifest) that "
        "fmkit.load() and `fmkit predict` run on ONNX Runtime. The export is refused if ONNX Runtime and "
        "PyTorch logits differ by more than 1e-4 on real sentences.",
        epilog="example: fmkit export models/reviews --format onnx --out models/reviews-onnx",
    )
    parser.add_argument("bundle", help="bundle to export")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default: onnx)")
    parser.add_argument("--out", help="output bundle (default: BUNDLE-onnx)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    parser.add_argument("--no-measure", action="store_true", help="skip latency/throughput measurement")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from fmkit.compress import CompressConfig
    from fmkit.compress.stage import run_compress

    out = args.out or str(args.bundle).rstrip("/") + "-onnx"
    cfg = CompressConfig(method={"name": "export-onnx", "opset": args.opset}, max_accuracy_drop=0.5,
                         measure={"enabled": not args.no_measure})
    manifest = run_compress(args.bundle, cfg, out, overwrite=args.overwrite)
    if args.json:
        print_json({"bundle": out, "test": manifest.metrics["test"], "benchmarks": manifest.benchmarks})
    else:
        print(f"wrote {out}: test accuracy {manifest.metrics['test']['accuracy']:.4f} on ONNX Runtime")
    return 0
