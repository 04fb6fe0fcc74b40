"""fmkit compare: every variant on one table and one accuracy-vs-latency Pareto plot."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare", help="table + Pareto plot of bundles: accuracy, size, latency, throughput",
        description="Compare bundles side by side. Bundles without runtime measurements are measured first "
        "(on their own runtime, recorded in their manifests). The Pareto plot shows accuracy vs p50 latency "
        "at batch 1; marker size is size on disk; frontier points are joined.",
        epilog="example: fmkit compare models/reviews models/reviews-* --plot compare.png",
    )
    parser.add_argument("bundles", nargs="+", help="bundle directories")
    parser.add_argument("--plot", default="compare.png", help="Pareto plot PNG to write (default: compare.png)")
    parser.add_argument("--no-measure", action="store_true", help="do not measure bundles that lack figures")
    parser.add_argument("--threads", type=int, help="runtime threads for measurements")
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from fmkit.compress.compare import compare_bundles, format_table, pareto_plot

    rows = compare_bundles(args.bundles, measure=not args.no_measure, threads=args.threads)
    pareto_plot(rows, args.plot)
    if args.json:
        print_json({"rows": rows, "plot": args.plot})
    else:
        print(format_table(rows))
        print(f"\nPareto plot: {args.plot}  (* = on the accuracy/latency frontier)")
    return 0
