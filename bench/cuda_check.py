"""CUDA check: the training loop, precisions and resume on a GPU (run by hand where one exists).

Trains a MiniLM-shaped BERT (6 layers, hidden 384; random init when --model is not given, so the
check runs on a machine without the model package) on synthetic reviews with every precision,
checks that --resume after a crash reaches the same metrics, and predicts on the GPU. Then the
distributed part (bench/cuda_distributed.py): a DDP and an FSDP2 step on every GPU (NCCL, torchrun),
their weights compared, the bf16 speed-up of a training step, and `fmkit finetune --distributed fsdp`
end to end under torchrun.

    python bench/cuda_check.py --out cuda_check.json [--model DIR] [--tokenizer DIR]
    python bench/cuda_check.py --out dist.json --only-distributed          # the distributed part alone
    python bench/cuda_check.py --out selftest.json --only-distributed --small  # CPU/gloo self-test, no GPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
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


BENCH = Path(__file__).resolve().parent


def distributed_checks(work: Path, small: bool, model: str | None, data: Path | None) -> dict:
    """DDP/FSDP steps and the bf16 speed-up in fresh processes; with a model and data, FSDP through the CLI too."""
    import torch

    ranks = min(2, torch.cuda.device_count()) if torch.cuda.is_available() else 2  # NCCL: one GPU per rank
    size = ["--small", "--rows-per-rank", "4", "--length", "32", "--steps", "3"] if small else []
    report: dict = {}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)]
    for name, command in (("ddp_fsdp", [*launch, str(BENCH / "cuda_distributed.py"), "--out", str(work / "dist.json"),
                                        *size]),
                          ("bf16", [sys.executable, str(BENCH / "cuda_distributed.py"), "--bf16",
                                    "--out", str(work / "bf16.json"), *size])):
        started = time.perf_counter()
        process = subprocess.run(command, capture_output=True, text=True)
        output = work / ("dist.json" if name == "ddp_fsdp" else "bf16.json")
        report[name] = json.loads(output.read_text()) if process.returncode == 0 else {
            "failed": process.returncode, "output": (process.stdout + process.stderr)[-3000:]}
        report[name]["command"] = " ".join(command[1:])
        report[name]["wall_seconds"] = round(time.perf_counter() - started, 1)
        print(name, json.dumps(report[name])[:600], flush=True)
    if model and data:
        out = work / "bundle-fsdp"
        command = [*launch, "-m", "fmkit", "finetune", "--model", model, "--data", str(data), "--out", str(out),
                   "--distributed", "fsdp", "--max-steps", "30", "--epochs", "1", "--no-progress",
                   "--learning-rate", "1e-4"]
        process = subprocess.run(command, capture_output=True, text=True)
        report["finetune_fsdp_cli"] = {"command": " ".join(command[1:]), "returncode": process.returncode,
                                       "output": (process.stdout + process.stderr)[-2000:]}
        if process.returncode == 0:
            from fmkit.bundle import read_manifest

            manifest = read_manifest(out)
            report["finetune_fsdp_cli"].update(training={k: manifest.training.get(k) for k in (
                "world_size", "backend", "global_batch", "parallel", "device", "precision")},
                test_accuracy=manifest.metrics["test"]["accuracy"])
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", help="a local model directory (default: random MiniLM-shaped BERT)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer directory for the random model")
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--only-distributed", action="store_true", help="skip the single-GPU loop checks")
    parser.add_argument("--small", action="store_true", help="tiny sizes: the CPU self-test of the distributed part")
    args = parser.parse_args()
    if args.only_distributed:
        work = Path(tempfile.mkdtemp(prefix="fmkit-cuda-"))
        report = {"distributed": distributed_checks(work, args.small, None, None)}
        Path(args.out).write_text(json.dumps(report, indent=2))
        return 0 if all("failed" not in part for part in report["distributed"].values()) else 1

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
    report["distributed"] = distributed_checks(work, False, model, data)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
