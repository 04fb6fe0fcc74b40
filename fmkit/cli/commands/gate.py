"""fmkit gate: check a bundle against a policy; exit 1 listing every broken rule."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "gate", help="check a bundle against policy.yaml (exit 1 with every broken rule)",
        description="Check what a bundle's manifest measured against a policy: min_accuracy, max_accuracy_drop, "
        "max_epsilon, max_fairness_gap, max_mia_auc, max_p95_latency_ms, max_size_mb, min_stability_rate, "
        "max_counterfactual_flip_rate. A rule whose quantity "
        "was never measured counts as broken unless the policy sets allow_unmeasured: true.",
        epilog="example: fmkit gate models/reviews-int8 --policy policy.yaml",
    )
    parser.add_argument("bundle", help="bundle directory")
    parser.add_argument("--policy", required=True, help="policy YAML")
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from fmkit.audit.gate import check_policy, load_policy, read_gated_manifest

    results = check_policy(read_gated_manifest(args.bundle), load_policy(args.policy))
    broken = [r for r in results if not r.passed]
    if args.json:
        print_json({"bundle": args.bundle, "passed": not broken, "rules": [r.__dict__ for r in results]})
    else:
        for result in results:
            print(result.describe())
        print(f"\n{args.bundle}: {'passed' if not broken else f'{len(broken)} rule(s) broken'}")
    return 1 if broken else 0
