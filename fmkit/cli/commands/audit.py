"""fmkit audit: run registered audit checks on a bundle and record each in its manifest.

The check names, their descriptions and every option are generated from the audit check registry
(``AUDIT_CHECKS``: the settings all checks share and each check's own config; fmkit/cli/from_config.py),
so a new check's name and settings reach the command by themselves. ``NAMES`` keeps the flags that
predate the generator.
"""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, add_verify_flag, describe_registered, print_json

# config key -> the flag it had before the options were generated from the configs
NAMES = {"n_bootstrap": "--bootstrap", "n_steps": "--steps"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "audit", help="run the registered audit checks on a bundle (fairness, robustness, privacy, ...; or all)",
        usage="fmkit audit CHECK BUNDLE [options]",
        epilog="examples:\n  fmkit audit fairness models/adult --data adult --sensitive sex,race\n"
        "  fmkit audit all models/reviews --max-rows 1000 --explain-rows 100\n"
        "  fmkit audit privacy models/tickets-dp",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.defer(add_config_options)
    return parser


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """The registered checks (the CHECK choices and the description) and every option of their configs."""
    from fmkit.audit.checks import AUDIT_CHECKS
    from fmkit.audit.run import AuditSettings
    from fmkit.cli.from_config import Section, add_options

    names = list(AUDIT_CHECKS)
    parser.description = ("Audit a bundle on its own test split (or --data) and write each result into its manifest "
                          "(audits.*) and BUNDLE/reports/.\n\nchecks:\n"
                          + describe_registered(AUDIT_CHECKS)
                          + "\n\nAn option that not every check reads names the checks that do.")
    parser.add_argument("check", choices=[*names, "all"], help="which check (all: every one)")
    parser.add_argument("bundle", help="bundle directory")
    parser.add_argument("--no-record", action="store_true", help="do not write results into the manifest")
    add_verify_flag(parser)
    add_json_flag(parser)
    sections = [Section("", AuditSettings, "settings every check shares", skip=("checks",))]
    sections += [Section("", AUDIT_CHECKS.get(name).options, "check options", owner=name) for name in names]
    parser.set_defaults(config_options=add_options(parser, sections, names=NAMES))


def build_config(args):
    """The AuditConfig of a command line; ``all`` leaves fairness out when there are no group columns."""
    import sys

    from fmkit.audit.run import CHECKS, AuditConfig
    from fmkit.cli.from_config import apply_options

    settings: dict = {"checks": list(CHECKS) if args.check == "all" else [args.check]}
    apply_options(settings, args, args.config_options)
    if args.json:
        settings["progress"] = False  # stdout is the JSON
    cfg = AuditConfig.model_validate(settings)
    if args.check == "all" and not cfg.sensitive:
        from fmkit.audit.inputs import default_sensitive_columns
        from fmkit.bundle import read_manifest

        source = cfg.data or read_manifest(args.bundle).data.get("source") or ""
        if not default_sensitive_columns(source):
            print("fairness skipped: no group columns (pass --sensitive COL to audit groups)", file=sys.stderr)
            cfg.checks.remove("fairness")
    return cfg


def run(args) -> int:
    import sys

    from fmkit.audit.run import AuditConfig, run_audit

    args.config_model = AuditConfig
    cfg = build_config(args)
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
