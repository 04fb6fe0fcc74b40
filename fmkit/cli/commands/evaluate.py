"""fmkit evaluate: metrics of a bundle on a split, written into its manifest."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_data_arguments, add_json_flag, add_verify_flag, format_metrics_table, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a bundle on a data split (accuracy, F1, calibration, confusion matrix)",
        description="Evaluate a bundle. Without --data it uses the bundle's own training data and the "
        "split saved at training time, so the numbers are reproducible.",
        epilog="example: fmkit evaluate models/reviews-lora --data reviews.csv --split test",
    )
    parser.add_argument("bundle", help="bundle directory")
    add_data_arguments(parser, required=False)
    parser.add_argument("--split", default="test", choices=["train", "validation", "test", "all"],
                        help="which split (default: test); 'all' for a separate test file")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per inference batch (default: 64)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-record", action="store_true", help="do not write the metrics into the manifest")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the baseline (logistic regression on the frozen base model's features, fitted on "
                             "the bundle's training split and scored on the same rows)")
    parser.add_argument("--write-reference", action="store_true",
                        help="also (re)write the drift reference `fmkit serve --watch` compares traffic with: the "
                        "bundle's test-split predictions and features, in reports/ (the content digest is unchanged)")
    add_verify_flag(parser)
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from fmkit.evaluate.stage import EvaluateConfig, evaluate_bundle

    args.config_model = EvaluateConfig
    cfg = EvaluateConfig(data=args.data, text_column=args.text_column, label_column=args.label_column,
                         split=args.split, batch_size=args.batch_size, device=args.device,
                         baseline=not args.no_baseline)
    metrics = evaluate_bundle(args.bundle, cfg, record=not args.no_record)
    if args.json:
        print_json(metrics)
    else:
        print_metrics(metrics, args.bundle, args.split)
    warn_below_baseline(metrics, args.split)
    if args.write_reference:
        from fmkit.evaluate.reference import write_reference

        record = write_reference(args.bundle, log=print)
        if record is None:
            print(f"{args.bundle}: its task predicts no labels, so it has no drift reference")
    return 0


def print_metrics(metrics: dict, bundle: str, split: str) -> None:
    """The task's headline metrics (a ranking task has its own), the baseline, per-class figures where there are."""
    from fmkit.tasks import TASKS, bundle_task

    if "confusion_matrix" not in metrics:  # a ranking task (retrieval): its own headline, no baseline or classes
        print(format_metrics_table({split: metrics}, keys=("count", *TASKS.get(bundle_task(bundle)).headline_metrics)))
        return
    print(format_metrics_table({split: metrics}))
    print_baseline(metrics)
    print("\nper class:")
    for label, values in metrics["per_class"].items():
        print(f"  {label}: precision {values['precision']:.4f}  recall {values['recall']:.4f}  "
              f"f1 {values['f1']:.4f}  support {values['support']}")
    confusion = metrics["confusion_matrix"]
    print(f"\nconfusion matrix (rows true, columns predicted: {', '.join(confusion['labels'])}):")
    for label, row in zip(confusion["labels"], confusion["matrix"]):
        print(f"  {label}: {row}")


def print_baseline(metrics: dict) -> None:
    """The baseline's figures on the same rows and the gain over it."""
    from fmkit.evaluate.baseline import gain_points

    baseline = metrics.get("baseline")
    if not baseline:
        print("\nbaseline: not measured (--no-baseline, a task without frozen features, or see the warning above)")
        return
    print(f"\nbaseline ({baseline['method']}, {baseline['encoder']}; measured {baseline.get('measured')}): "
          f"accuracy {baseline['accuracy']:.4f}  macro_f1 {baseline['macro_f1']:.4f}  "
          f"-> this model {gain_points(metrics, baseline):+.2f} accuracy points")


def warn_below_baseline(metrics: dict, split: str) -> None:
    """A loud warning on stderr (with --json too) when the model does not beat the baseline on these rows."""
    import sys

    from fmkit.evaluate.baseline import baseline_warning

    baseline = metrics.get("baseline")
    warning = baseline_warning(metrics, {**baseline, split: baseline}, split) if baseline else None
    if warning:
        print(f"\nWARNING: {warning}", file=sys.stderr)
