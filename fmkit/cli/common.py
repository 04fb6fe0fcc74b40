"""Helpers shared by the subcommands: JSON output, tables, argument groups."""

from __future__ import annotations

import argparse
import json
import sys


# TrainConfig key -> the shorter flag training commands have always used for it
TRAIN_NAMES = {"train.early_stopping_patience": "--patience", "train.checkpoint_every_steps": "--checkpoint-every",
               "train.num_threads": "--threads", "train.eval_every_steps": "--eval-every"}


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def add_run_control(parser: argparse.ArgumentParser) -> None:
    """--resume, --overwrite, --keep-checkpoints: the flags of the commands that train and checkpoint."""
    run = parser.add_argument_group("run control")
    run.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT.checkpoints/")
    run.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    run.add_argument("--keep-checkpoints", action="store_true", help="keep OUT.checkpoints/ after success")


def add_verify_flag(parser: argparse.ArgumentParser) -> None:
    """--no-verify: open bundles without checking their content digest and manifest seal (cli/main.py)."""
    parser.add_argument("--no-verify", action="store_true",
                        help="load the bundle even if its files or manifest changed since fmkit wrote it "
                        "(unsafe: only when you know why they changed)")


def describe_registered(registry) -> str:
    """One line per registered component, its name and its ``description``: the lists in a command's --help."""
    width = max((len(name) for name in registry), default=0) + 2
    return "\n".join(f"  {name:{width}s} {registry.get(name).description}" for name in registry)


def comma_list(value: str) -> list[str]:
    """argparse type for ``a,b,c``."""
    return [part.strip() for part in value.split(",") if part.strip()]


def print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", required=required, metavar="PATH|NAME",
                       help="CSV/TSV/JSONL/Parquet file, or a built-in dataset (rotten-tomatoes, adult); images: "
                       "a folder of class subfolders, IDX files, a .npz, or fashion-mnist")
    group.add_argument("--text-column", help="column with the text (default: text)")
    group.add_argument("--label-column", help="column with the label (default: label)")


def format_metrics_table(metrics: dict[str, dict], keys=("count", "accuracy", "macro_f1", "weighted_f1",
                                                            "expected_calibration_error")) -> str:
    header = ["split"] + [k.replace("expected_calibration_error", "ece") for k in keys]
    rows = [header]
    for split, values in metrics.items():
        rows.append([split] + [_fmt(values.get(k)) for k in keys])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def read_config_file(path: str | None) -> dict:
    """The settings in a ``--config`` YAML file (empty without one); a missing file is bad input."""
    if not path:
        return {}
    import yaml

    from fmkit.errors import BadInputError

    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise BadInputError(f"--config {path} does not exist") from None


def set_nested(target: dict, dotted: str, value) -> None:
    """``set_nested(settings, "train.epochs", 2)``: settings["train"]["epochs"] = 2, making the mappings on the way
    (a section a --config file left null or wrote as a name, such as ``privacy: null``, becomes a mapping)."""
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[parts[-1]] = value
