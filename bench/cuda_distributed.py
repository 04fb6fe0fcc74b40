"""The distributed half of bench/cuda_check.py: a DDP and an FSDP2 step on the GPUs (NCCL), and the bf16 speed-up.

A MiniLM-shaped BERT classifier (6 layers, hidden 384, vocab 30522, random init: no model package
needed) is trained the same few steps twice from the same seed: wrapped in DDP, and sharded with
fmkit.train.fsdp.shard_model. Each rank takes its share of the same global batch. Reported: the
final weights of the two (fp32; FSDP's full state gathered with fmkit.train.fsdp.full_model_state)
relative to each other, the step time in bf16 autocast, and peak GPU memory per rank. ``--bf16``
instead times one process's training step in fp32 and in bf16 autocast.

Without CUDA the same code runs on CPU with gloo, smaller (``--small``): that is how it is checked
on a machine without a GPU; its figures say nothing about GPUs.

    torchrun --standalone --nproc-per-node $(nvidia-smi -L | wc -l) bench/cuda_distributed.py --out dist.json
    python bench/cuda_distributed.py --bf16 --out bf16.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def minilm_shaped(small: bool):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64) if small else \
        dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, num_labels=2, **size)
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


def global_batch(step: int, rows: int, length: int) -> dict:
    import torch

    generator = torch.Generator().manual_seed(100 + step)
    return {"input_ids": torch.randint(1000, 30000, (rows, length), generator=generator),
            "labels": torch.randint(0, 2, (rows,), generator=generator)}


def timed_steps(model, optimizer, batches, device, precision: str) -> tuple[list[float], list[float]]:
    """(seconds per step, losses): forward, backward, clip, AdamW; synchronised on CUDA."""
    import torch

    from fmkit.train.precision import autocast

    seconds, losses = [], []
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        with autocast(precision, device):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
        losses.append(loss.item())
    return seconds, losses


def distributed(arguments) -> dict | None:
    """One rank of the DDP-vs-FSDP comparison; rank 0 returns the report."""
    import torch
    import torch.distributed as dist

    from fmkit.train import fsdp

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    rows, length = arguments.rows_per_rank * world, arguments.length

    def mine(batch):
        return {k: v[rank * arguments.rows_per_rank:(rank + 1) * arguments.rows_per_rank] for k, v in batch.items()}

    report: dict = {"backend": dist.get_backend(), "world_size": world, "device": str(device),
                    "device_name": torch.cuda.get_device_name(device) if cuda else None,
                    "global_batch": rows, "tokens": length}
    finals = {}
    for strategy in ("ddp", "fsdp"):
        model = minilm_shaped(arguments.small).to(device)
        if strategy == "ddp":
            model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        else:
            fsdp.shard_model(model, device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        # fp32 steps, equal across strategies up to summation order; then bf16 steps for the timing.
        _, fp32_losses = timed_steps(model, optimizer, [mine(global_batch(s, rows, length)) for s in range(3)],
                                     device, "fp32")
        if strategy == "ddp":
            state = {k: v.detach().cpu().clone() for k, v in model.module.state_dict().items()}
        else:
            state = fsdp.full_model_state(model, all_ranks=True)
        finals[strategy] = state
        seconds, bf16_losses = timed_steps(model, optimizer, [mine(global_batch(s, rows, length))
                                                              for s in range(3, 3 + arguments.steps)], device, "bf16")
        report[strategy] = {"fp32_losses": fp32_losses, "bf16_losses": bf16_losses,
                            "bf16_median_step_seconds": round(statistics.median(seconds[1:] or seconds), 4),
                            "samples_per_second": round(rows / statistics.median(seconds[1:] or seconds), 1),
                            "peak_memory_mib_rank0": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
                            if cuda else None}
        del model, optimizer
    difference = sum(((finals["fsdp"][k].double() - v.double()) ** 2).sum() for k, v in finals["ddp"].items())
    size = sum((v.double() ** 2).sum() for v in finals["ddp"].values())
    report["fsdp_vs_ddp_weights_relative_fp32"] = float((difference / size).sqrt())
    dist.destroy_process_group()
    return report if rank == 0 else None


def bf16_speedup(arguments) -> dict:
    """One process: a training step's time in fp32 and in bf16 autocast, same model and batch."""
    import torch

    from fmkit.train.precision import select_device

    device = select_device("auto")
    rows, length = arguments.rows_per_rank, arguments.length
    report: dict = {"device": str(device), "device_name": torch.cuda.get_device_name(device)
                    if device.type == "cuda" else None, "batch": rows, "tokens": length}
    for precision in ("fp32", "bf16"):
        model = minilm_shaped(arguments.small).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        seconds, losses = timed_steps(model, optimizer, [global_batch(s, rows, length) for s in range(arguments.steps)],
                                      device, precision)
        report[precision] = {"median_step_seconds": round(statistics.median(seconds[1:] or seconds), 4),
                             "losses": losses}
    report["bf16_speedup"] = round(report["fp32"]["median_step_seconds"] / report["bf16"]["median_step_seconds"], 2)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--bf16", action="store_true", help="time fp32 vs bf16 in one process instead")
    parser.add_argument("--rows-per-rank", type=int, default=64)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6, help="timed bf16 steps (the first is not counted)")
    parser.add_argument("--small", action="store_true", help="a 2-layer hidden-32 BERT: the CPU self-test")
    arguments = parser.parse_args()
    report = bf16_speedup(arguments) if arguments.bf16 else distributed(arguments)
    if report is not None:
        arguments.out.write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
