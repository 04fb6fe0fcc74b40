"""fmkit finetune defaults vs Hugging Face Trainer defaults: same model, data, epochs, LR, batch, seed.

Each side runs in its own subprocess, one after the other, so peak RSS is its own. Both train on
the identical training rows (fmkit's stratified split of Rotten Tomatoes) and are tested on the
identical test rows.

    .venv/bin/python bench/finetune_vs_hf_trainer.py                  # full data, 2 epochs (~15 min)
    .venv/bin/python bench/finetune_vs_hf_trainer.py --max-rows 3000  # quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def load_split(max_rows):
    from fmkit.data import DataConfig, load_text_classification

    return load_text_classification(DataConfig(source="rotten-tomatoes", max_rows=max_rows))


def run_hf(args) -> dict:
    import numpy as np
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    from fmkit.models import resolve_model

    data = load_split(args.max_rows)
    label2id = {label: i for i, label in enumerate(data.label_names)}
    path = str(resolve_model("minilm").path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(label2id))

    def encode(split):
        texts, labels = data.split(split)
        encoded = tokenizer(texts, truncation=True, max_length=args.max_length)
        return [{"input_ids": ids, "attention_mask": mask, "labels": label2id[label]}
                for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], labels)]

    train_rows, test_rows = encode("train"), encode("test")
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=64, num_train_epochs=args.epochs, learning_rate=args.learning_rate,
            seed=args.seed, save_strategy="no", eval_strategy="no", report_to=[], logging_strategy="no",
            use_cpu=True, disable_tqdm=True,
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=train_rows,
                          data_collator=DataCollatorWithPadding(tokenizer))
        started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - started
        predictions = trainer.predict(test_rows)
    accuracy = float((np.argmax(predictions.predictions, axis=1) == predictions.label_ids).mean())
    return {"train_seconds": train_seconds, "samples_per_second": len(train_rows) * args.epochs / train_seconds,
            "test_accuracy": accuracy, "precision": "fp32"}


def run_fmkit(args) -> dict:
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    cfg = FinetuneConfig(
        model="minilm", data={"source": "rotten-tomatoes", "max_rows": args.max_rows}, method="full",
        max_length=args.max_length,
        train={"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
               "seed": args.seed, "progress": False},
    )
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        manifest = run_finetune(cfg, Path(directory) / "bundle")
        wall = time.perf_counter() - started
    training = manifest.training
    return {"train_seconds": training["train_seconds"], "samples_per_second": training["samples_per_second"],
            "test_accuracy": manifest.metrics["test"]["accuracy"], "precision": training["precision"],
            "wall_seconds_with_evaluation": wall, "stopped_early": training["stopped_early"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-rows", type=int, default=None, help="stratified sample of Rotten Tomatoes (default: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--side", choices=["hf", "fmkit"], help=argparse.SUPPRESS)  # internal: one side per process
    args = parser.parse_args()
    if args.side:
        result = (run_hf if args.side == "hf" else run_fmkit)(args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(result))
        return 0
    results = {}
    for side in ("hf", "fmkit"):
        command = [sys.executable, __file__, "--side", side, *sys.argv[1:]]
        started = time.perf_counter()
        output = subprocess.run(command, capture_output=True, text=True)
        if output.returncode != 0:
            print(output.stderr[-4000:], file=sys.stderr)
            return 1
        results[side] = json.loads(output.stdout.split("RESULT ", 1)[1])
        results[side]["process_seconds"] = time.perf_counter() - started
    hf, ours = results["hf"], results["fmkit"]
    print(json.dumps({"settings": vars(args) | {"side": None}, **results}, indent=2))
    print(f"\n{'':28s}{'HF Trainer':>14s}{'fmkit':>14s}")
    for key, label in (("samples_per_second", "train samples/s"), ("train_seconds", "train seconds"),
                       ("process_seconds", "process wall seconds"), ("peak_rss_mb", "peak RSS MB"),
                       ("test_accuracy", "test accuracy")):
        print(f"{label:28s}{hf[key]:>14.3f}{ours[key]:>14.3f}")
    print(f"\nthroughput ratio fmkit/HF: {ours['samples_per_second'] / hf['samples_per_second']:.2f}x; "
          f"accuracy difference: {100 * (ours['test_accuracy'] - hf['test_accuracy']):+.2f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
