"""fmkit run: execute a recipe (a YAML list of stages)."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, describe_registered, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run",
        help="run a recipe: a YAML list of registered stages (fmkit run --list-stages)",
        description="Validate a recipe (every error at once), then run its stages in order in a new "
        "directory runs/DATE-NAME/ with the resolved config, a log and the outputs. A stage whose "
        "inputs and config are unchanged since an earlier run is reused, not re-run.",
        epilog="example: fmkit run recipes/quickstart.yaml\n         fmkit run recipes/full.yaml --check",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", nargs="?", help="recipe YAML file (not needed with --list-stages)")
    parser.add_argument("--workspace", help="directory holding runs/ and .fmkit/registry.sqlite (default: the recipe's, else .)")
    parser.add_argument("--check", action="store_true", help="only validate the recipe and print the resolved stages")
    parser.add_argument("--no-cache", action="store_true", help="run every stage even if unchanged")
    parser.add_argument("--list-stages", action="store_true", help="print the registered stages and exit")
    add_json_flag(parser)
    parser.defer(_list_stages_in_description)
    return parser


def _list_stages_in_description(parser: argparse.ArgumentParser) -> None:
    """The stage names a recipe may use, from the stage registry (loading it imports no torch)."""
    from fmkit.recipe.stages import load_stages

    parser.description += "\n\nstages:\n" + describe_registered(load_stages())


def run(args) -> int:
    from fmkit.recipe import load_recipe

    if args.list_stages:
        from fmkit.recipe.stages import load_stages

        stages = load_stages()
        for name in stages:
            print(f"{name:12s} {stages.get(name).description}")
        return 0
    if args.recipe is None:
        from fmkit.errors import BadInputError

        raise BadInputError("fmkit run needs a recipe YAML file: fmkit run RECIPE.yaml (or --list-stages)")
    recipe = load_recipe(args.recipe)
    if args.check:
        if args.json:
            print_json(recipe.resolved())
        else:
            print(f"{args.recipe}: ok, {len(recipe.stages)} stage(s): " + ", ".join(f"{s.name} ({s.stage})" for s in recipe.stages))
        return 0
    from fmkit.recipe.runner import run_recipe

    import sys

    report = run_recipe(recipe, workspace=args.workspace, use_cache=not args.no_cache,
                        echo=(lambda m: print(m, file=sys.stderr)) if args.json else print)
    if args.json:
        print_json(report)
    return 0
