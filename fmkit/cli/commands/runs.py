"""fmkit runs: list the runs recorded in the workspace registry."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "runs", help="list recipe runs recorded in the workspace registry",
        description="List recent runs from WORKSPACE/.fmkit/registry.sqlite with their stages and metrics.",
    )
    parser.add_argument("--workspace", default=".", help="workspace directory (default: .)")
    parser.add_argument("--limit", type=int, default=20, help="how many runs (default: 20)")
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from pathlib import Path

    from fmkit.recipe.registry_db import RunRegistry

    if not (Path(args.workspace) / ".fmkit" / "registry.sqlite").exists():
        print(f"no runs recorded in {args.workspace} yet; start one with `fmkit run RECIPE.yaml`")
        return 0
    runs = RunRegistry(Path(args.workspace)).list_runs(args.limit)
    if args.json:
        print_json(runs)
        return 0
    for run in runs:
        print(f"#{run['id']} {run['name']}  {run['status']}  {run['started']}  {run['run_dir']}")
        for stage in run["stages"]:
            metrics = stage["summary"].get("metrics", {})
            shown = "  ".join(f"{split}: acc {m.get('accuracy', 0):.4f} f1 {m.get('macro_f1', 0):.4f}"
                              for split, m in metrics.items())
            flag = "cached" if stage["cached"] else f"{stage['seconds']} s"
            print(f"    {stage['name']:14s} {stage['stage']:10s} {flag:>10s}  {shown}")
    return 0
