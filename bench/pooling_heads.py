"""Which head a text classifier should have on small data: [CLS]+BERT pooler vs mean pooling vs LP-FT vs few-shot.

Issue 15 part 4/5: all-MiniLM-L6-v2 was trained on mean-pooled embeddings; transformers classifies
from [CLS] through an untrained pooler. Each variant is one ``run_finetune`` with identical training
settings (only the head differs), scored on a held-out test split larger than the default 10% so
that small sets are not decided by a handful of rows.

    .venv/bin/python bench/pooling_heads.py --set faq --variants pooler,mean,lpft,fewshot

Writes one JSON line per run to ``--results`` (default bench/results/pooling_heads.jsonl).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = {  # only the head differs
    "pooler": {"pooling": "pooler", "head_init": "random", "few_shot": "off"},  # today: [CLS] + BERT pooler
    "mean": {"pooling": "mean", "head_init": "random", "few_shot": "off"},
    "lpft": {"pooling": "mean", "head_init": "probe", "few_shot": "off"},  # head from a logistic-regression probe
    "fewshot": {"pooling": "mean", "head_init": "auto", "few_shot": "on"},  # SetFit: pairs, then logistic regression
}


def faq_csv(directory: Path) -> Path:
    """The support FAQ's 503 questions labelled with their 39 categories (zaragoza-construction-faq)."""
    import importlib.util

    spec = importlib.util.find_spec("zaragoza_construction_faq")
    source = Path(spec.submodule_search_locations[0]) / "data" / "faq-en.json"
    questions = json.loads(source.read_text(encoding="utf-8"))["questions"]
    path = directory / "faq.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((q["q"], q["category"]) for q in questions)
    return path


def data_settings(name: str, directory: Path) -> dict:
    """Data config per set: train rows as named, validation for early stopping, a large test split."""
    if name == "rt200":  # 600 rows: ~210 train, 90 validation, 300 test
        return {"source": "rotten-tomatoes", "max_rows": 600, "validation_fraction": 0.15, "test_fraction": 0.5}
    if name == "rt1000":  # 2,000 rows: ~1,000 train, 200 validation, 800 test
        return {"source": "rotten-tomatoes", "max_rows": 2000, "validation_fraction": 0.1, "test_fraction": 0.4}
    if name == "rt60":  # 200 rows: ~60 train (30 per class), 40 validation, 100 test
        return {"source": "rotten-tomatoes", "max_rows": 200, "validation_fraction": 0.2, "test_fraction": 0.5}
    if name == "faq":  # 503 questions, 39 categories: ~300 train, 50 validation, 150 test
        return {"source": str(faq_csv(directory)), "validation_fraction": 0.1, "test_fraction": 0.3}
    raise SystemExit(f"unknown set {name!r}: rt60, rt200, rt1000, faq")


EPOCHS = {"rt60": 20, "rt200": 15, "rt1000": 4, "faq": 15}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", required=True, choices=sorted(EPOCHS))
    parser.add_argument("--variants", default="pooler,mean,lpft")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--defaults", action="store_true",
                        help="train with fmkit's defaults (epochs/patience/learning rate auto), not the fixed settings")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "pooling_heads.jsonl")
    args = parser.parse_args()

    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    args.results.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data = {**data_settings(args.set, scratch), "seed": args.seed}
        for variant in args.variants.split(","):
            train = {"epochs": args.epochs or EPOCHS[args.set], "batch_size": 16, "learning_rate": args.learning_rate,
                     "early_stopping_patience": 3, "progress": False, "seed": args.seed}
            if args.defaults:
                train = {"progress": False, "seed": args.seed}
            if variant == "fewshot" and not args.defaults:  # SetFit's own schedule: one epoch of pairs at 2e-5
                from fmkit.finetune.fewshot import LEARNING_RATE

                train.update(epochs=1, learning_rate=LEARNING_RATE)
            cfg = FinetuneConfig(model="minilm", data=data, train=train, **VARIANTS[variant])
            started = time.time()
            manifest = run_finetune(cfg, scratch / variant)
            test = manifest.metrics["test"]
            row = {"set": args.set, "variant": variant, "seed": args.seed, "test_accuracy": round(test["accuracy"], 4),
                   "test_macro_f1": round(test["macro_f1"], 4), "test_rows": test["count"],
                   "train_rows": manifest.data.get("splits", {}).get("train"), "steps": manifest.training.get("steps"),
                   "head": manifest.training.get("head"), "seconds": round(time.time() - started, 1),
                   "learning_rate": manifest.training.get("learning_rate"), "defaults": args.defaults, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            print(json.dumps(row), flush=True)
            with open(args.results, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
