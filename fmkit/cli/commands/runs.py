"""fmkit runs: list the runs recorded in the workspace registry; ``fmkit runs export``: copy them to MLflow."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, print_json

EXPORT_EPILOG = """\
examples:
  fmkit runs export --mlflow ./mlruns                      # a local MLflow file store (created if missing)
  fmkit runs export --mlflow sqlite:///mlflow.db --run 3   # one run, into a SQLite tracking database
  fmkit runs export --mlflow http://mlflow.internal:5000 --weights
  fmkit runs export --mlflow ./mlruns --bundle models/reviews-lora   # a bundle made by `fmkit finetune`

then:  MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri ./mlruns   (docs/tracking.md)
Re-running the export is safe: runs already exported are found by their fmkit tags and left alone."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "runs", help="list recipe runs recorded in the workspace registry, or export them to MLflow",
        description="List recent runs from WORKSPACE/.fmkit/registry.sqlite with their stages and metrics. "
        "`fmkit runs export --mlflow URI` writes them to an MLflow tracking store (see `fmkit runs export --help`).",
    )
    parser.add_argument("--workspace", default=".", help="workspace directory (default: .)")
    parser.add_argument("--limit", type=int, default=20, help="how many runs (default: 20)")
    add_json_flag(parser)
    actions = parser.add_subparsers(dest="runs_action", metavar="ACTION")
    export = actions.add_parser(
        "export", help="write the runs, their stages, params, metrics and bundle artifacts to MLflow",
        usage="fmkit runs export --mlflow URI [options]", epilog=EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write every recipe run of the workspace registry to an MLflow tracking store: one MLflow run "
        "per recipe run (each stage's config as params, each stage's metrics), with a nested run per stage "
        "(its resolved config, its bundle's metrics per split and validation curve, tags with the fmkit run id, "
        "bundle digest and lineage, and the bundle's manifest, model card and reports as artifacts). "
        "Idempotent: re-exporting finds runs by their fmkit tags and does not duplicate them.")
    from fmkit.tracking.uri import HELP

    export.add_argument("--mlflow", required=True, metavar="URI", help=HELP)
    export.add_argument("--workspace", dest="export_workspace", default=None, metavar="DIR",
                        help="workspace directory whose registry to export (default: the --workspace before "
                        "`export`, else .)")
    export.add_argument("--experiment", metavar="NAME",
                        help="MLflow experiment for every run (default: one experiment per recipe name; "
                        "\"fmkit\" for --bundle)")
    export.add_argument("--run", dest="run_ids", type=int, action="append", metavar="ID",
                        help="export only this registry run (repeatable; ids as `fmkit runs` prints them)")
    export.add_argument("--bundle", dest="bundles", action="append", default=[], metavar="DIR",
                        help="also export a bundle that no recipe made (repeatable); found again by its content digest")
    export.add_argument("--weights", action="store_true",
                        help="also copy each bundle's model files (weights, tokenizer) as artifacts; default: "
                        "manifest, model card and reports only")
    add_json_flag(export)
    return parser


def run(args) -> int:
    if getattr(args, "runs_action", None) == "export":
        return export(args)
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


def export(args) -> int:
    import sys
    from pathlib import Path

    from fmkit.tracking.mlflow_export import export_workspace
    from fmkit.tracking.store import ui_command

    workspace = Path(args.export_workspace or args.workspace)
    uri, results = export_workspace(workspace, args.mlflow, experiment=args.experiment, run_ids=args.run_ids,
                                    bundles=[Path(b) for b in args.bundles], weights=args.weights,
                                    echo=None if args.json else lambda line: print(line, file=sys.stderr))
    if args.json:
        print_json({"tracking_uri": uri, "runs": [result.as_dict() for result in results]})
        return 0
    created = sum(result.action != "unchanged" for result in results)
    print(f"exported {len(results)} run(s) to {uri} ({created} new or updated, {len(results) - created} unchanged)")
    print(f"open them: {ui_command(uri)}")
    return 0
