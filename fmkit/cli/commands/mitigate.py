"""fmkit mitigate: per-group decision thresholds (Fairlearn ThresholdOptimizer) -> a new bundle."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    from fmkit.audit.mitigate import CONSTRAINTS

    parser = subparsers.add_parser(
        "mitigate", help="fairness post-processing: per-group thresholds -> a new bundle",
        description="Fit Fairlearn's ThresholdOptimizer on the bundle's validation split: per group of --attribute, a "
        "threshold on the favourable label's probability that maximizes accuracy under a parity constraint. The new "
        "bundle keeps the weights and stores the thresholds as JSON; its decisions need the group at prediction time "
        "(plain predict/serve refuse it, its card says so). It is then audited for fairness on the test split.",
        epilog="example: fmkit mitigate models/adult --attribute sex --out models/adult-fair",
    )
    parser.add_argument("bundle", help="bundle directory (two labels)")
    parser.add_argument("--out", required=True, help="directory of the new bundle")
    parser.add_argument("--attribute", help="group column (default: the dataset's first sensitive column)")
    parser.add_argument("--constraint", default="demographic_parity", choices=CONSTRAINTS,
                        help="parity to enforce (default: demographic_parity)")
    parser.add_argument("--data", help="file or built-in dataset (default: the bundle's training data)")
    parser.add_argument("--positive-label", help="the favourable label (default: the second of two labels)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from fmkit.audit.fairness_audit import FairnessAuditConfig, audit_fairness
    from fmkit.audit.mitigate import MitigateConfig, mitigate_fairness
    from fmkit.bundle import read_manifest

    args.config_model = MitigateConfig
    cfg = MitigateConfig(attribute=args.attribute, constraint=args.constraint, data=args.data,
                         positive_label=args.positive_label)
    rule = mitigate_fairness(args.bundle, args.out, cfg, overwrite=args.overwrite)
    audit_cfg = FairnessAuditConfig(data=args.data, sensitive=[rule["attribute"]], positive_label=rule["positive_label"])
    before = audit_fairness(args.bundle, audit_cfg)[rule["attribute"]]
    after = read_manifest(args.out).audits["fairness"][rule["attribute"]]  # audited before it was published
    if args.json:
        print_json({"bundle": args.out, "rule": rule, "before": before, "after": after})
        return 0
    print(f"wrote {args.out}: {rule['constraint']} thresholds on {rule['attribute']!r} "
          f"(fitted on {rule['fitted_on']['rows']} {rule['fitted_on']['split']} rows)")
    for metric in ("demographic_parity_difference", "equalized_odds_difference", "accuracy_difference"):
        if metric in before and metric in after:
            print(f"  {metric.replace('_', ' ')}: {before[metric]:.4f} -> {after[metric]:.4f}")
    accuracy = lambda r: sum(g["accuracy"] * g["count"] for g in r["groups"].values()) / r["rows"]  # noqa: E731
    print(f"  test accuracy: {accuracy(before):.4f} -> {accuracy(after):.4f}")
    return 0
