"""fmkit finetune: a base model + labelled texts or images -> an evaluated task bundle.

The options are generated from the finetune config of every registered task and the options of
every registered fine-tuning method (fmkit/cli/from_config.py); ``NAMES`` keeps the flags that
predate the generator. Only the flags a user gives override the ``--config`` file.
"""

from __future__ import annotations

import argparse

from fmkit.cli.common import (TRAIN_NAMES, add_json_flag, add_run_control, format_metrics_table, print_json,
                              read_config_file, set_nested)
from fmkit.cli.launch import add_launch_arguments
from fmkit.tracking.cli import add_tracking_arguments

# config key -> the flag it had before the options were generated from the configs
NAMES = {
    **TRAIN_NAMES,
    "data.source": "--data",
    "data.seed": "--split-seed",
    "privacy.max_grad_norm": "--max-grad-norm",
    "privacy.dropout": "--dp-dropout",
    "loss.function": "--loss",
}
ARGUMENTS = {"data.source": {"metavar": "PATH|NAME"}, "train.epochs": {"metavar": "N|auto"},
             "train.learning_rate": {"metavar": "X|auto"}, "train.early_stopping_patience": {"metavar": "N|auto|none"}}
DEFAULT_METHOD = "full"  # FinetuneConfig.method's default
TITLES = {"data": "data", "train": "training", "loss": "loss and class balance",
          "privacy": "differential privacy (DP-SGD, Opacus; with --privacy dp)"}

EPILOG = """\
examples:
  fmkit finetune --model minilm --data reviews.csv --method lora --out models/reviews-lora
  fmkit finetune --model cnn --data fashion-mnist --out models/fashion-cnn
  fmkit finetune --model efficientnet-lite0 --data fashion-mnist --input-size 64 --out models/fashion-effnet
  fmkit finetune --model cnn --data photos/ --image-size 64 --channels 3 --out models/photos-cnn"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a base model on labelled texts or images (full or LoRA; optionally DP-SGD)",
        usage="fmkit finetune --data PATH|NAME --out OUT [options]",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="bundle directory to create")
    parser.add_argument("--config", help="YAML with finetune config fields; flags override it")
    parser.add_argument("--privacy", choices=["none", "dp"], default="none",
                        help="dp: train with DP-SGD so the bundle carries a privacy guarantee (ε, δ)")
    add_json_flag(parser)
    add_launch_arguments(parser)
    add_tracking_arguments(parser)
    parser.defer(add_config_options)
    return parser


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """--task, --method and every option of each registered task's finetune config and method's options."""
    from fmkit.cli.from_config import Section, add_options, sections_of
    from fmkit.finetune.methods import FINETUNE_METHODS
    from fmkit.tasks import TASKS, task_of_settings

    tasks = [name for name in TASKS if TASKS.get(name).finetune_config]  # masked-lm is `fmkit pretrain`'s
    parser.description = (
        "Fine-tune a base model on labelled data and write an evaluated bundle (a directory plain transformers "
        f"loads, plus the fmkit.json manifest).\n\ntasks: {', '.join(tasks)}. The task follows from the model and "
        "data (images: --model cnn or efficientnet-lite0, --data fashion-mnist, a folder with one subfolder of images "
        "per class, IDX files (*-ubyte[.gz]) or a .npz of images and labels); --task sets it. An option that not "
        "every task has names the tasks that have it.")
    parser.add_argument("--task", choices=tasks, help="what the bundle does (default: from --model and --data)")
    parser.add_argument("--method", metavar="{" + ",".join(FINETUNE_METHODS) + "}",
                        help=f"fine-tuning method: {', '.join(FINETUNE_METHODS)} (default: {DEFAULT_METHOD})")
    default_task = task_of_settings({})
    sections = []
    for name in sorted(tasks, key=lambda candidate: candidate != default_task):  # the default task's help first
        sections += sections_of(TASKS.get(name).get("finetune_config"), "model", titles=TITLES, owner=name,
                                skip=("task", "method"))
    sections += [Section("method", FINETUNE_METHODS.get(name).options, "method options", prefix=f"{name}-",
                         owner=name, skip=("name",)) for name in FINETUNE_METHODS]
    parser.set_defaults(config_options=add_options(parser, sections, names=NAMES, arguments=ARGUMENTS))
    add_run_control(parser)


def build_config(args):
    from fmkit.cli.from_config import apply_options, refuse_other_methods
    from fmkit.errors import BadInputError
    from fmkit.finetune.methods import FINETUNE_METHODS
    from fmkit.tasks import TASKS, finetune_config, task_of_settings

    settings = read_config_file(args.config)
    if isinstance(settings.get("method"), str):
        settings["method"] = {"name": settings["method"]}
    privacy_in_file = bool(settings.get("privacy"))
    if args.method is not None:
        set_nested(settings, "method.name", args.method)
    if args.task is not None:
        settings["task"] = args.task
    given = apply_options(settings, args, args.config_options)
    refuse_other_methods(given, (settings.get("method") or {}).get("name", DEFAULT_METHOD), FINETUNE_METHODS)
    dp_flags = [option.flag for option in given if option.key.startswith("privacy.")]
    if args.privacy == "dp":
        if not isinstance(settings.get("privacy"), dict):
            settings["privacy"] = {}  # DP with its defaults (a file's `privacy: null` too)
    elif dp_flags and not privacy_in_file:
        raise BadInputError(f"{', '.join(dp_flags)} only apply to DP training; add --privacy dp")
    if "data" not in settings:
        raise BadInputError("no data: pass --data FILE (or a built-in dataset such as rotten-tomatoes or fashion-mnist)")
    args.config_model = TASKS.get(task_of_settings(settings)).get("finetune_config")  # for did-you-mean hints
    return finetune_config(settings)
def run(args) -> int:
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    args.config_model = FinetuneConfig
    cfg = build_config(args)
    import sys

    from fmkit.cli import launch

    if launch.launching(args):
        return launch.run_under_torchrun(args, "finetune", cfg.train.device)
    launch.check_rank_flags(args)
    from fmkit.tracking.cli import run_tracked

    manifest = run_tracked(args, stage="finetune", config=cfg.model_dump(mode="json"), train=lambda callbacks: run_finetune(
        cfg, args.out, resume=args.resume, overwrite=args.overwrite, keep_checkpoints=args.keep_checkpoints,
        echo=lambda line: print(line, file=sys.stderr), callbacks=callbacks))
    if not launch.is_main_rank():
        return 0  # rank 0 reports for the job
    if args.json:
        print_json({"bundle": args.out, "content_digest": manifest.content_digest, "metrics": manifest.metrics,
                    "training": manifest.training})
    else:
        training = manifest.training
        print(f"wrote {args.out} ({cfg.method_name}, {training['steps']} steps, {training['precision']}, "
              f"{training['samples_per_second']} samples/s, {training['wall_seconds']} s)")
        dp = manifest.privacy.get("dp")
        if dp:
            print(f"DP-SGD: ε = {dp['epsilon']:.3f} (target {dp['target_epsilon']}), δ = {dp['delta']:.2e}, "
                  f"{dp['accountant']} accountant, noise multiplier {dp['noise_multiplier']:.3f}, C = {dp['max_grad_norm']}")
        print(metrics_table(manifest))
        for line in recall_lines(manifest.metrics):
            print(line)
        if training.get("status") == "degenerate":
            print("status: DEGENERATE (see the warning above; training.collapse in the manifest)")
    return 0


def metrics_table(manifest) -> str:
    """The splits' headline metrics: a classifier's table, or the task's own keys where it ranks (retrieval: MRR@10,
    Recall@k, nDCG@10, with its zero-shot start beside them)."""
    from fmkit.tasks import TASKS

    if all("confusion_matrix" in m for m in manifest.metrics.values()):
        return format_metrics_table(manifest.metrics)
    rows = dict(manifest.metrics)
    rows.update({f"{split} (zero-shot)": m for split, m in manifest.training.get("zero_shot", {}).items()})
    return format_metrics_table(rows, keys=("count", *TASKS.get(manifest.task).headline_metrics))


def recall_lines(metrics: dict) -> list[str]:
    """Per-class recall of each split: on imbalanced data the headline accuracy hides a class left at zero."""
    from fmkit.evaluate.metrics import per_class_recall

    lines = []
    for split, split_metrics in metrics.items():
        recall = per_class_recall(split_metrics)
        if recall:
            lines.append(f"{split} recall per class: " + ", ".join(f"{name} {value:.3f}" for name, value in recall.items()))
    return lines
