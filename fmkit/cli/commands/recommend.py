"""fmkit recommend: train a text-aware recommender, evaluate it beside its baselines, ask it, add items to it.

``train``'s flags are generated from its config (fmkit/apps/recommend/config.py TrainConfig: the
data, the text model, the hybrid ranker), so a new setting there is a flag here with its help.
"""

from __future__ import annotations

import argparse
import sys

from fmkit.cli.common import add_json_flag, print_json

EPILOG = """examples:
  fmkit recommend train --data movielens --out recommenders/movies     # the built-in data, defaults for everything
  fmkit recommend train --interactions ratings.csv --items items.csv --user-column user --item-column item \\
                        --time-column ts --text-columns title,genres,description --out recommenders/shop
  fmkit recommend evaluate recommenders/shop --json       # the same split, every baseline side by side
  fmkit recommend for recommenders/shop --user 42 --k 10 --json
  fmkit recommend for recommenders/shop --history 318,296,593      # a user the recommender has not seen
  fmkit recommend similar recommenders/shop --item 318 --k 10
  fmkit recommend add-items recommenders/shop --items new_items.csv --text-columns title,genres,description
"""

METRIC_COLUMNS = ("ndcg@10", "recall@10", "mrr", "coverage", "cold.ndcg@10", "cold.recall@10")

# TrainConfig keys whose generated flag would be unclear or would clash with another section's field
NAMES = {"text.model": "--text-base-model", "text.method": "--text-method", "text.epochs": "--text-epochs",
         "text.batch_size": "--text-batch-size", "text.learning_rate": "--text-learning-rate",
         "text.max_length": "--text-max-length", "text.seed": "--text-seed", "text.threads": "--threads",
         "text.precision": "--text-precision", "text.onnx": "--text-onnx", "hybrid.seed": "--hybrid-seed",
         "hybrid.threads": "--hybrid-threads", "hybrid.learning_rate": "--hybrid-learning-rate"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "recommend", help="a text-aware recommender: CF baselines, a fine-tuned text model, a LambdaRank hybrid",
        description="Train a recommender from interaction logs and item text (popularity, item-kNN, ALS and BPR "
        "baselines, a two-tower text model fine-tuned on what users picked next, and a LightGBM LambdaRank hybrid "
        "over their candidates), measure every model on the same time split and cold-item subset, and ask it for "
        "recommendations: for a known user, for a history sent with the request, or items similar to one item.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(parser))
    train = actions.add_parser("train", help="fit and evaluate every model, write the recommender directory",
                               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    train.add_argument("--out", required=True, help="recommender directory to create (written atomically)")
    train.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_json_flag(train)
    train.defer(add_train_options)
    evaluate = actions.add_parser("evaluate", help="every model side by side on the stored test split and cold items")
    evaluate.add_argument("recommender", help="recommender directory")
    evaluate.add_argument("--no-report", action="store_true", help="do not rewrite RECOMMENDER/reports/")
    add_json_flag(evaluate)
    recommend = actions.add_parser("for", help="the top items for a known user or for a history")
    recommend.add_argument("recommender", help="recommender directory")
    who = recommend.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a user id the recommender was trained on")
    who.add_argument("--history", help="item ids the user interacted with, oldest first, comma-separated "
                     "(a user the recommender has not seen)")
    _add_ranking_flags(recommend)
    recommend.add_argument("--include-seen", action="store_true", help="do not filter items already in the history")
    similar = actions.add_parser("similar", help="items similar to one item")
    similar.add_argument("recommender", help="recommender directory")
    similar.add_argument("--item", required=True, help="the item id")
    _add_ranking_flags(similar, default_model="text")
    add = actions.add_parser("add-items", help="embed new items so they are rankable without retraining")
    add.add_argument("recommender", help="recommender directory (rewritten atomically, or --out)")
    add.add_argument("--items", required=True, help="table of new items (CSV/TSV/JSONL/Parquet) with an id column "
                     "and text columns")
    add.add_argument("--item-column", default="item", help="column with the item id (default: item)")
    add.add_argument("--text-columns", default=None, help="columns joined into the item text, comma-separated "
                     "(default: the ones the recommender was trained with)")
    add.add_argument("--out", default=None, help="write the extended recommender here instead of in place")
    add_json_flag(add)
    return parser


def _add_ranking_flags(parser, default_model: str | None = None) -> None:
    parser.add_argument("--k", type=int, default=10, help="how many items (default: 10)")
    parser.add_argument("--model", default=default_model, help="which model ranks (default: "
                        f"{default_model or 'the recommender serving model, normally hybrid'}); any of popularity, "
                        "item-knn, als, bpr, text, hybrid it was trained with")
    add_json_flag(parser)


def add_train_options(parser: argparse.ArgumentParser) -> None:
    from fmkit.apps.recommend.config import TrainConfig
    from fmkit.cli.from_config import add_options, sections_of

    sections = sections_of(TrainConfig, "recommender", titles={"data": "data", "text": "text model",
                                                                 "hybrid": "hybrid ranker"})
    parser.set_defaults(config_options=add_options(parser, sections, names=NAMES))


def run(args) -> int:
    return {"train": run_train, "evaluate": run_evaluate, "for": run_for, "similar": run_similar,
            "add-items": run_add_items}[args.action](args)


def _log(args):
    return (lambda line: print(line, file=sys.stderr)) if getattr(args, "json", False) else print


def run_train(args) -> int:
    from fmkit.apps.recommend.config import TrainConfig
    from fmkit.apps.recommend.train import train_recommender
    from fmkit.cli.from_config import apply_options

    args.config_model = TrainConfig
    settings: dict = {}
    apply_options(settings, args, args.config_options)
    cfg = TrainConfig.model_validate(settings)
    manifest = train_recommender(cfg, args.out, overwrite=args.overwrite, log=_log(args))
    if args.json:
        print_json({key: manifest.get(key) for key in ("name", "models", "serving_model", "evaluation",
                                                       "train_seconds", "content_digest")})
    else:
        print_table(manifest["evaluation"])
    return 0


def run_evaluate(args) -> int:
    from fmkit.apps.recommend.evaluation import evaluate_directory

    result = evaluate_directory(args.recommender, write_report=not args.no_report, log=_log(args))
    if args.json:
        print_json(result["evaluation"])
        return 0
    print_table(result["evaluation"])
    if result.get("report"):
        print(f"report: {result['report']}")
    return 0


def print_table(evaluation: dict) -> None:
    columns = [c for c in METRIC_COLUMNS if any(c in metrics for metrics in evaluation.values())]
    print(f"{'model':12s}" + "".join(f"{c:>16s}" for c in columns))
    for name, metrics in evaluation.items():
        cells = (metrics.get(c) for c in columns)
        print(f"{name:12s}" + "".join(f"{'-' if v is None else f'{v:.4f}':>16s}" for v in cells))


def run_for(args) -> int:
    from fmkit.apps.recommend.recommender import Recommender
    from fmkit.cli.common import comma_list

    recommender = Recommender.open(args.recommender)
    history = comma_list(args.history) if args.history is not None else None
    result = recommender.recommend(user=args.user, history=history, k=args.k, model=args.model,
                                   exclude_seen=not args.include_seen)
    return _show(result, args)


def run_similar(args) -> int:
    from fmkit.apps.recommend.recommender import Recommender

    result = Recommender.open(args.recommender).similar(args.item, k=args.k, model=args.model)
    return _show(result, args)


def _show(result: dict, args) -> int:
    if args.json:
        print_json(result)
        return 0
    subject = f"items like {result['item']} ({result.get('title')})" if "item" in result else (
        f"user {result['user']}" if result.get("user") is not None else "the history given")
    print(f"{result['model']} for {subject}:")
    for entry in result["items"]:
        print(f"  {entry['rank']:3d}. {entry['score']:10.4f}  {entry['item']}  {entry.get('title') or ''}")
    return 0


def run_add_items(args) -> int:
    from fmkit.apps.recommend.incremental import add_items_to_directory
    from fmkit.cli.common import comma_list

    columns = comma_list(args.text_columns) if args.text_columns else None
    result = add_items_to_directory(args.recommender, args.items, item_column=args.item_column, text_columns=columns,
                                    out=args.out, log=_log(args))
    if args.json:
        print_json(result)
    else:
        print(f"added {result['added']} item(s) to {result['recommender']} ({result['items']} items now)")
    return 0
