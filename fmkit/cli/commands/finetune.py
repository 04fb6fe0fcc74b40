"""fmkit finetune: a base model + labelled texts -> an evaluated task bundle."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_data_arguments, add_json_flag, format_metrics_table, print_json, read_config_file, set_nested

# CLI flag -> dotted key in FinetuneConfig; only flags the user gave override the config file.
OVERRIDES = {
    "model": "model",
    "data": "data.source",
    "text_column": "data.text_column",
    "label_column": "data.label_column",
    "format": "data.format",
    "max_rows": "data.max_rows",
    "split_seed": "data.seed",
    "validation_fraction": "data.validation_fraction",
    "test_fraction": "data.test_fraction",
    "method": "method.name",
    "lora_r": "method.r",
    "lora_alpha": "method.alpha",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "gradient_accumulation_steps": "train.gradient_accumulation_steps",
    "learning_rate": "train.learning_rate",
    "weight_decay": "train.weight_decay",
    "warmup_ratio": "train.warmup_ratio",
    "precision": "train.precision",
    "device": "train.device",
    "target_epsilon": "privacy.target_epsilon",
    "delta": "privacy.delta",
    "max_grad_norm": "privacy.max_grad_norm",
    "accountant": "privacy.accountant",
    "dp_dropout": "privacy.dropout",
    "patience": "train.early_stopping_patience",
    "checkpoint_every": "train.checkpoint_every_steps",
    "max_steps": "train.max_steps",
    "seed": "train.seed",
    "threads": "train.num_threads",
    "max_length": "max_length",
    "dropout": "dropout",
    "task": "task",
    "image_size": "data.image_size",
    "channels": "data.channels",
    "input_size": "input_size",
    "augment": "augment",
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a base model on labelled texts or images (full or LoRA; optionally DP-SGD)",
        description="Fine-tune a base model on a labelled text table and write an evaluated bundle "
        "(a directory plain transformers loads, plus the fmkit.json manifest).\n\n"
        "Images: --model cnn or efficientnet-lite0 with --data fashion-mnist, a folder with one subfolder of "
        "images per class, IDX files (*-ubyte[.gz]) or a .npz (images, labels). The task (text or image "
        "classification) follows from the model and data; --task sets it explicitly.",
        epilog="examples:\n  fmkit finetune --model minilm --data reviews.csv --method lora --out models/reviews-lora\n"
        "  fmkit finetune --model cnn --data fashion-mnist --out models/fashion-cnn\n"
        "  fmkit finetune --model efficientnet-lite0 --data fashion-mnist --input-size 64 --out models/fashion-effnet\n"
        "  fmkit finetune --model cnn --data photos/ --image-size 64 --channels 3 --out models/photos-cnn",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="bundle directory to create")
    parser.add_argument("--config", help="YAML with FinetuneConfig fields; flags override it")
    parser.add_argument("--model", help="built-in name (minilm; images: cnn, efficientnet-lite0), local HF directory "
                        "or bundle (default: minilm for text, cnn for images)")
    parser.add_argument("--task", choices=["text-classification", "image-classification"],
                        help="what the bundle does (default: inferred from --model and --data)")
    add_data_arguments(parser, required=False)
    data = parser.add_argument_group("data handling")
    data.add_argument("--format", choices=["auto", "csv", "tsv", "jsonl", "parquet"], help="file format (default: from suffix)")
    data.add_argument("--max-rows", type=int, help="use a stratified sample of this many rows")
    data.add_argument("--split-seed", type=int, help="seed of the train/validation/test split (default: 0)")
    data.add_argument("--validation-fraction", type=float, help="held out for early stopping (default: 0.1)")
    data.add_argument("--test-fraction", type=float, help="held out for the final test (default: 0.1)")
    data.add_argument("--max-length", type=int, help="tokens per text; longer ones are truncated (default: 128)")
    images = parser.add_argument_group("images (image-classification only)")
    images.add_argument("--image-size", type=int, metavar="N",
                        help="resize every image to NxN while reading (needed when images differ in size)")
    images.add_argument("--channels", type=int, choices=[1, 3],
                        help="convert images to 1 (grayscale) or 3 (RGB) channels (needed when they mix)")
    images.add_argument("--input-size", type=int, metavar="N", help="pixels per side the network sees, resized inside "
                        "the model (default: cnn the image size, efficientnet-lite0 224; 64-96 is cheaper for 28x28)")
    images.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="random crop + horizontal flip of training batches (default: on; --no-augment: off)")
    method = parser.add_argument_group("method")
    method.add_argument("--method", help="full or lora (default: full)")
    method.add_argument("--lora-r", type=int, help="LoRA rank (default: 8)")
    method.add_argument("--lora-alpha", type=int, help="LoRA alpha (default: 16)")
    method.add_argument("--dropout", type=float, help="override the model's dropout")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, help="passes over the training split (default: 3)")
    train.add_argument("--batch-size", type=int, help="examples per step (default: 32)")
    train.add_argument("--gradient-accumulation-steps", type=int, help="batches per optimizer step (default: 1)")
    train.add_argument("--learning-rate", type=float, help="peak learning rate (default: 5e-5 full, 5e-4 LoRA)")
    train.add_argument("--weight-decay", type=float, help="AdamW weight decay (default: 0.01)")
    train.add_argument("--warmup-ratio", type=float, help="share of steps warming up (default: 0.06)")
    train.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], help="default auto: bf16 where fast")
    train.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    train.add_argument("--patience", type=int, help="early-stopping patience in evaluations (default: 2)")
    train.add_argument("--checkpoint-every", type=int, help="checkpoint every N optimizer steps (default: 200)")
    train.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    train.add_argument("--seed", type=int, help="seed of init, dropout and batch order (default: 0)")
    train.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    privacy = parser.add_argument_group("differential privacy (DP-SGD, Opacus)")
    privacy.add_argument("--privacy", choices=["none", "dp"], default="none",
                         help="dp: train with DP-SGD so the bundle carries a privacy guarantee (ε, δ)")
    privacy.add_argument("--target-epsilon", type=float, help="ε spent by the whole run (default 8)")
    privacy.add_argument("--delta", type=float, help="δ (default 1/(10·N); must be below 1/N)")
    privacy.add_argument("--max-grad-norm", type=float, help="per-example gradient clipping norm C (default 1.0)")
    privacy.add_argument("--accountant", choices=["prv", "rdp"], help="privacy accountant (default prv)")
    privacy.add_argument("--dp-dropout", action="store_const", const=True, dest="dp_dropout",
                         help="keep dropout during DP training (default: off; the noise already regularizes and "
                         "dropout costs ~a third of a LoRA step on CPU)")
    run = parser.add_argument_group("run control")
    run.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT.checkpoints/")
    run.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    run.add_argument("--keep-checkpoints", action="store_true", help="keep OUT.checkpoints/ after success")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(parser)
    return parser


def build_config(args):
    from fmkit.errors import BadInputError
    from fmkit.tasks import TASKS, finetune_config, task_of_settings

    settings = read_config_file(args.config)
    method = settings.get("method")
    if isinstance(method, str):
        settings["method"] = {"name": method}
    privacy_in_file = bool(settings.get("privacy"))
    for flag, key in OVERRIDES.items():
        value = getattr(args, flag)
        if value is not None:
            set_nested(settings, key, value)
    if args.no_progress:
        set_nested(settings, "train.progress", False)
    dp_flags = [f"--{name.replace('_', '-')}" for name in (
        "target_epsilon", "delta", "max_grad_norm", "accountant", "dp_dropout")
                if getattr(args, name) is not None]
    if args.privacy == "dp":
        settings.setdefault("privacy", {})
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
    manifest = run_finetune(cfg, args.out, resume=args.resume, overwrite=args.overwrite,
                            keep_checkpoints=args.keep_checkpoints)
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
        print(format_metrics_table(manifest.metrics))
    return 0
