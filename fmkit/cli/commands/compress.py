"""fmkit compress: a smaller/faster variant of a bundle, measured on its deployment runtime.

The options are generated from ``CompressConfig`` and every registered method's options model
(fmkit/cli/from_config.py): a new method's settings appear here, with its description, by itself.
"""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, add_verify_flag, describe_registered, print_json

# config key -> the flag it had before the options were generated from the configs
NAMES = {"measure.enabled": "--measure"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compress",
        help="quantize, prune or distill a bundle into a measured variant",
        usage="fmkit compress BUNDLE --method METHOD --out OUT [options]",
        epilog="examples:\n  fmkit compress models/reviews --method quantize-dynamic --out models/reviews-int8\n"
        "  fmkit compress models/reviews --method distill --student-layers 3 --out models/reviews-l3\n"
        "  fmkit compress models/reviews --method quantize-static --calibration-samples 256 --no-fallback "
        "--out models/reviews-static",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bundle", help="the parent bundle (fp32, PyTorch)")
    parser.add_argument("--method", required=True, metavar="METHOD", help="compression method (see above)")
    parser.add_argument("--out", required=True, help="variant bundle to create")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_verify_flag(parser)
    add_json_flag(parser)
    parser.defer(add_config_options)
    return parser


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """The method list and every option of CompressConfig and of each registered method's options model."""
    from fmkit.cli.from_config import Section, add_options, sections_of
    from fmkit.compress.config import CompressConfig
    from fmkit.compress.methods import COMPRESS_METHODS

    parser.description = (
        "Make a variant of a fine-tuned bundle with one compression method, evaluate it on the parent's test split "
        "on the runtime it deploys on, measure latency/throughput/size/RSS, and check the accuracy budget (exit 1 "
        f"and status 'failed' in the manifest when broken).\n\nmethods:\n{describe_registered(COMPRESS_METHODS)}\n\n"
        "A method option names the methods it applies to; other methods refuse it.")
    sections = sections_of(CompressConfig, "budget and data", titles={"measure": "measurement"}, skip=("method",))
    sections += [Section("method", COMPRESS_METHODS.get(name).options, "method options", owner=name, skip=("name",))
                 for name in COMPRESS_METHODS]
    parser.set_defaults(config_options=add_options(parser, sections, names=NAMES))


def build_config(args):
    from fmkit.cli.from_config import apply_options, refuse_other_methods
    from fmkit.compress import CompressConfig
    from fmkit.compress.methods import COMPRESS_METHODS

    settings: dict = {"method": {"name": args.method}}
    refuse_other_methods(apply_options(settings, args, args.config_options), args.method, COMPRESS_METHODS)
    return CompressConfig.model_validate(settings)


def run(args) -> int:
    from fmkit.compress import CompressConfig
    from fmkit.compress.stage import run_compress

    args.config_model = CompressConfig
    cfg = build_config(args)
    manifest = run_compress(args.bundle, cfg, args.out, overwrite=args.overwrite)
    from fmkit.cli import launch

    if not launch.is_main_rank():
        return 0  # under torchrun (distill): rank 0 wrote the bundle and reports for the job
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
            print(f"  {runtime}: {benchmark_line(figures)}")
    return 0


def benchmark_line(figures: dict) -> str:
    """One runtime's measured figures; a figure the task's measure does not record is left out, not a crash."""
    throughput = "{:.1f} texts/s" + (f" at batch {figures['throughput_batch']}"
                                     if figures.get("throughput_batch") is not None else "")
    shown = (("latency_p50_ms", "p50 {:.1f} ms", 1), ("latency_p95_ms", "p95 {:.1f} ms", 1),
             ("throughput_per_second", throughput, 1), ("size_bytes", "{:.1f} MB", 1e-6),
             ("peak_rss_mb", "peak RSS {:.0f} MB", 1))
    return ", ".join(template.format(figures[key] * scale) for key, template, scale in shown
                     if figures.get(key) is not None)
