"""fmkit card: a model card (Markdown + HTML) from the bundle's manifest and lineage."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "card", help="write MODEL_CARD.md and card.html from a bundle's manifest",
        description="Generate a model card only from the manifest and lineage: intended use, data and fingerprint, "
        "every stage with its config, metrics per split, compression, privacy, fairness, robustness, benchmarks, "
        "limitations. Sections without evidence say 'not measured'. Written to BUNDLE/reports/.",
        epilog="example: fmkit card models/reviews-int8",
    )
    parser.add_argument("bundle", help="bundle directory")
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from fmkit.audit.card import write_card

    markdown_path, html_path = write_card(args.bundle)
    if args.json:
        print_json({"markdown": str(markdown_path), "html": str(html_path)})
    else:
        print(f"wrote {markdown_path} and {html_path}")
    return 0
