"""CUDA check: the training loop, precisions and resume on a GPU (run by hand where one exists).

Trains a MiniLM-shaped BERT (6 layers, hidden 384; random init when --model is not given, so the
check runs on a machine without the model package) on synthetic reviews with every precision,
checks that --resume after a crash reaches the same metrics, and predicts on the GPU.

    python bench/cuda_check.py --out cuda_check.json [--model DIR] [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def minilm_shaped_model(directory: Path, tokenizer_dir: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(directory), safe_serialization=True)
    tokenizer.save_pretrained(str(directory))
    return directory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", help="a local model directory (default: random MiniLM-shaped BERT)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer directory for the random model")
    parser.add_argument("--rows", type=int, default=6000)
    args = parser.parse_args()

    import torch

    from conftest import CrashAfter, synthetic_reviews, write_csv
    from fmkit.bundle import read_manifest
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    import fmkit

    report: dict = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                    "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "bf16_supported": torch.cuda.is_available() and torch.cuda.is_bf16_supported(), "runs": {}}
    work = Path(tempfile.mkdtemp(prefix="fmkit-cuda-"))
    model = args.model or str(minilm_shaped_model(work / "model", Path(args.tokenizer)))
    data = write_csv(work / "reviews.csv", synthetic_reviews(args.rows))

    def config(precision, method="full", **train):
        return FinetuneConfig(model=model, data={"source": str(data)}, method=method,
                              train={"epochs": 2, "batch_size": 32, "learning_rate": 1e-4, "precision": precision,
                                     "progress": False, "checkpoint_every_steps": 50, **train})

    for precision in ("auto", "bf16", "fp16", "fp32"):
        started = time.perf_counter()
        manifest = run_finetune(config(precision), work / f"bundle-{precision}")
        report["runs"][precision] = {
            "resolved_precision": manifest.training["precision"], "device": manifest.training["device"],
            "samples_per_second": manifest.training["samples_per_second"],
            "test_accuracy": manifest.metrics["test"]["accuracy"], "wall_seconds": round(time.perf_counter() - started, 1),
        }
        print(precision, report["runs"][precision], flush=True)

    manifest = run_finetune(config("auto", "lora", learning_rate=1e-3), work / "bundle-lora")
    report["runs"]["lora-auto"] = {"resolved_precision": manifest.training["precision"],
                                   "samples_per_second": manifest.training["samples_per_second"],
                                   "test_accuracy": manifest.metrics["test"]["accuracy"]}

    # Resume after a crash mid-epoch on the GPU.
    try:
        run_finetune(config("bf16"), work / "resumed", hooks=CrashAfter(120))
    except KeyboardInterrupt:
        pass
    run_finetune(config("bf16"), work / "resumed", resume=True)
    clean, resumed = read_manifest(work / "bundle-bf16"), read_manifest(work / "resumed")
    report["resume"] = {split: {"clean": clean.metrics[split]["accuracy"], "resumed": resumed.metrics[split]["accuracy"],
                                "clean_log_loss": clean.metrics[split]["log_loss"],
                                "resumed_log_loss": resumed.metrics[split]["log_loss"]}
                        for split in ("validation", "test")}
    runtime = fmkit.load(work / "bundle-auto", device="cuda" if torch.cuda.is_available() else "cpu")
    report["predict"] = [p.as_dict() for p in runtime.predict(["a great and warm film", "a dull, tedious plot"])]
    report["predict_device"] = str(runtime.device)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
