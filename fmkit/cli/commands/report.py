"""fmkit report: one HTML page comparing every bundle of a run on the same frontier."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report", help="HTML frontier of all bundles in a run: accuracy, latency, size, ε, fairness, MIA",
        description="Collect every bundle in RUN_DIR (and the folders below it) and write RUN_DIR/report/index.html "
        "(+ frontier.png, sizes.png, report.json): a sortable table of test accuracy, accuracy drop, latency and "
        "throughput on each bundle's runtime, size, ε, fairness gap, membership-inference AUC, robustness and "
        "counterfactual flips, with the accuracy/latency Pareto frontier marked, and each bundle's lineage. "
        "Bundles never measured for speed are measured first (a fresh process each), unless --no-measure.",
        epilog="example: fmkit report runs/2026-11-28-full",
    )
    parser.add_argument("run_dir", help="a run directory (runs/NAME) or any folder of bundles")
    parser.add_argument("--out", help="write the report here (default: RUN_DIR/report)")
    parser.add_argument("--no-measure", action="store_true", help="do not measure unmeasured bundles")
    parser.add_argument("--threads", type=int, help="threads for measuring (default: all cores)")
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from fmkit.recipe.report import write_report
    from fmkit.compress.compare import format_table

    page, rows = write_report(args.run_dir, out=args.out, measure=not args.no_measure, threads=args.threads)
    if args.json:
        print_json({"report": str(page), "bundles": rows})
    else:
        print(format_table([{**r, "bundle": r["name"]} for r in rows]))
        print(f"\nwrote {page}")
    return 0
