"""fmkit audit: fairness, counterfactual, robustness, explanations and PII checks, recorded in the manifest."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, add_verify_flag, comma_list, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    from fmkit.audit.checks import AUDIT_CHECKS  # the names and what each check does come from the registry

    names = list(AUDIT_CHECKS)
    parser = subparsers.add_parser(
        "audit", help=f"audit a bundle: {', '.join(names)} (or all)",
        description="Audit a bundle on its own test split (or --data) and write each result into its manifest "
        "(audits.*) and BUNDLE/reports/. " + " ".join(f"{name}: {AUDIT_CHECKS.get(name).description}."
                                                        for name in names),
        epilog="examples:\n  fmkit audit fairness models/adult --data adult --sensitive sex,race\n"
        "  fmkit audit all models/reviews --max-rows 1000 --explain-rows 100\n"
        "  fmkit audit privacy models/tickets-dp",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("check", choices=[*names, "all"], help="which check (all: every one)")
    parser.add_argument("bundle", help="bundle directory")
    parser.add_argument("--data", help="file or built-in dataset (default: the bundle's training data)")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test", "all"],
                        help="rows to audit (default: test)")
    parser.add_argument("--sensitive", type=comma_list, default=[], help="group columns for fairness, comma-separated "
                        "(default: the built-in dataset's, e.g. sex,race for adult)")
    parser.add_argument("--positive-label", help="the favourable label (default: the second of two labels)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for fairness CIs (default 200)")
    parser.add_argument("--min-group-size", type=int, default=50,
                        help="groups with fewer rows are reported but left out of the gaps (default 50)")
    parser.add_argument("--max-rows", type=int, default=1000,
                        help="rows sampled for counterfactual, robustness and pii (default 1000)")
    parser.add_argument("--explain-rows", type=int, default=100, help="rows explained (default 100)")
    parser.add_argument("--terms", help="JSON file with extra identity-term pairs ({\"pairs\": [{\"a\", \"b\"}]})")
    parser.add_argument("--reference", help="privacy: a bundle trained without the audited rows, to calibrate "
                        "the attack (default: calibrate against held-out validation losses)")
    parser.add_argument("--steps", type=int, default=32, help="integrated-gradients steps (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling, bootstrap and noise (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-record", action="store_true", help="do not write results into the manifest")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_verify_flag(parser)
    add_json_flag(parser)
    return parser


def run(args) -> int:
    import sys

    from fmkit.audit.run import CHECKS, AuditConfig, run_audit

    args.config_model = AuditConfig
    cfg = AuditConfig(checks=list(CHECKS) if args.check == "all" else [args.check], data=args.data, split=args.split,
                      sensitive=args.sensitive, positive_label=args.positive_label, n_bootstrap=args.bootstrap,
                      min_group_size=args.min_group_size, max_rows=args.max_rows, explain_rows=args.explain_rows,
                      terms=args.terms, reference=args.reference, n_steps=args.steps, seed=args.seed, device=args.device,
                      progress=not args.no_progress and not args.json)
    if args.check == "all" and not cfg.sensitive:
        from fmkit.audit.inputs import default_sensitive_columns
        from fmkit.bundle import read_manifest

        source = args.data or read_manifest(args.bundle).data.get("source") or ""
        if not default_sensitive_columns(source):
            print("fairness skipped: no group columns (pass --sensitive COL to audit groups)", file=sys.stderr)
            cfg.checks.remove("fairness")
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    results = run_audit(args.bundle, cfg, record=not args.no_record, log=log)
    if args.json:
        print_json(results)
    elif args.check == "fairness":
        _print_fairness(results["fairness"])
    return 0


def _print_fairness(report: dict) -> None:
    for attribute, values in report.items():
        print(f"\n{attribute} (positive label {values['positive_label']!r}, {values['rows']} rows, split {values['split']}):")
        print(f"  {'group':24s} {'count':>6s} {'accuracy':>9s} {'selection':>9s} {'TPR':>7s} {'FPR':>7s}")
        for group, g in values["groups"].items():
            cells = [f"{g[k]:.4f}" if g[k] is not None else "  n/a" for k in ("accuracy", "selection_rate", "tpr", "fpr")]
            note = "" if g["in_gaps"] else "  (too small for the gaps)"
            print(f"  {group:24s} {g['count']:6d} {cells[0]:>9s} {cells[1]:>9s} {cells[2]:>7s} {cells[3]:>7s}{note}")
        intervals = values.get("confidence_intervals", {})
        for metric in ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
                       "accuracy_difference"):
            if metric in values:
                ci = intervals.get(metric)
                ci_text = f"  [{ci[0]:.4f}, {ci[1]:.4f}] {int(values['confidence'] * 100)}% CI" if ci else ""
                print(f"  {metric.replace('_', ' ')}: {values[metric]:.4f}{ci_text}")
        if "note" in values:
            print(f"  {values['note']}")
