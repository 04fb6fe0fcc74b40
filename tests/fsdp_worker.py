"""One rank of tests/test_fsdp.py, launched by torchrun (2 gloo ranks on CPU): FSDP2 against one process.

Every rank also trains the unsharded reference itself (no collectives: the tiny BERT takes
milliseconds), so each rank checks its own view. Writes ``<out>/rank<N>.json`` with the measured
differences; the test asserts on them, so a failure shows figures, not a traceback from a rank.

    torchrun --nproc-per-node 2 tests/fsdp_worker.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

ROWS, LENGTH, STEPS, MORE_STEPS = 8, 16, 3, 2


def tiny(kind: str):
    """classifier: transformers' BERT classifier; mlm: tied decoder; pooled: fmkit's mean-pooled classifier."""
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

    from fmkit.models.text_classifier import PooledBertForSequenceClassification

    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, tie_word_embeddings=True)
    torch.manual_seed(0)
    if kind == "pooled":
        config.classifier_pooling = "mean"
        return PooledBertForSequenceClassification(config)
    return BertForMaskedLM(config) if kind == "mlm" else BertForSequenceClassification(config)


def loss_of(kind: str, model, batch):
    if kind == "pooled":  # SetFit's pair loss: two calls of model.sentence_embedding, not forward
        from fmkit.finetune.fewshot import pair_loss

        return pair_loss(model, batch)
    return model(**batch).loss


def global_batch(step: int, kind: str) -> dict:
    generator = torch.Generator().manual_seed(1000 + step)
    ids = torch.randint(5, 100, (ROWS, LENGTH), generator=generator)
    if kind == "mlm":
        labels = torch.full_like(ids, -100)
        labels[:, ::4] = ids[:, ::4]  # the same count of predicted tokens in every row: equal per-rank weight
        return {"input_ids": ids, "labels": labels}
    if kind == "pooled":
        ones = torch.ones_like(ids)
        return {"input_ids": ids, "attention_mask": ones, "pair_input_ids": ids.flip(0), "pair_attention_mask": ones,
                "pair_labels": torch.randint(0, 2, (ROWS,), generator=generator)}
    return {"input_ids": ids, "labels": torch.randint(0, 2, (ROWS,), generator=generator)}


def shard_of(batch: dict) -> dict:
    rows = ROWS // dist.get_world_size()
    start = dist.get_rank() * rows
    return {key: value[start:start + rows] for key, value in batch.items()}


def optimizer_for(model):
    return torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01, fused=True)


def step(kind: str, model, optimizer, batch) -> float:
    loss = loss_of(kind, model, batch)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)  # clipping acts on these tiny gradients (DTensor norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def max_relative(full: dict, reference: dict) -> float:
    """||full - reference|| / ||reference|| over all weights together.

    Per tensor would be noise: attention key biases get a zero gradient in exact arithmetic, so both runs
    leave them at ~1e-7 of rounding that differs with the order of the ranks' gradient sum.
    """
    difference = sum(((full[name].double() - tensor.double()) ** 2).sum() for name, tensor in reference.items())
    size = sum((tensor.double() ** 2).sum() for tensor in reference.values())
    return float((difference / size).sqrt())


def run(kind: str, out: Path, checkpointing: bool) -> dict:
    from safetensors.torch import load_file, save_file

    from fmkit.train import fsdp
    from fmkit.train.checkpointing import enable_gradient_checkpointing

    reference = tiny(kind)
    reference_optimizer = optimizer_for(reference)
    reference_losses = [step(kind, reference, reference_optimizer, global_batch(s, kind)) for s in range(STEPS)]

    model = tiny(kind)
    if checkpointing:
        enable_gradient_checkpointing(model)
    fsdp.shard_model(model, "cpu")
    optimizer = optimizer_for(model)
    local_losses = [step(kind, model, optimizer, shard_of(global_batch(s, kind))) for s in range(STEPS)]
    losses = torch.tensor(local_losses)
    dist.all_reduce(losses)  # equal rows per rank: the mean of the ranks' losses is the global batch's loss
    result = {"kind": kind, "checkpointing": checkpointing, "sharded_layers": fsdp.sharded_layers(model),
              "loss_relative": (losses / dist.get_world_size() - torch.tensor(reference_losses)).abs().max().item()
              / max(reference_losses), "reference_losses": reference_losses}
    full = fsdp.full_model_state(model, all_ranks=True)
    result["weights_relative"] = max_relative(full, reference.state_dict())
    result["keys_match"] = sorted(full) == sorted(reference.state_dict())

    # A checkpoint on disk the way the loop writes one: rank 0 only, safetensors + JSON.
    directory = out / kind
    weights, (optimizer_tensors, meta) = fsdp.full_model_state(model), fsdp.full_optimizer_state(model, optimizer)
    result["rank0_only"] = bool(weights) == (dist.get_rank() == 0)
    if dist.get_rank() == 0:
        directory.mkdir(parents=True, exist_ok=True)
        save_file(weights, str(directory / "model.safetensors"))
        save_file(optimizer_tensors, str(directory / "optimizer.safetensors"))
        (directory / "optimizer.json").write_text(json.dumps(meta))
    dist.barrier()

    # Resume into a fresh sharded model: every rank reads the files (classifier) or rank 0 broadcasts (mlm).
    from_rank0 = kind == "mlm"
    resumed = tiny(kind)
    with torch.no_grad():
        for parameter in resumed.parameters():
            parameter.zero_()  # nothing of the initial weights survives unless the load restores it
    fsdp.shard_model(resumed, "cpu")
    resumed_optimizer = optimizer_for(resumed)
    reads = dist.get_rank() == 0 or not from_rank0
    fsdp.load_full_model_state(resumed, load_file(str(directory / "model.safetensors")) if reads else {},
                               from_rank0=from_rank0)
    fsdp.load_full_optimizer_state(
        resumed, resumed_optimizer, load_file(str(directory / "optimizer.safetensors")) if reads else {},
        json.loads((directory / "optimizer.json").read_text()) if reads else {}, from_rank0=from_rank0)
    try:  # a checkpoint of another model: a clear error before any collective
        fsdp.load_full_model_state(resumed, {"not.a.weight": torch.zeros(1)})
    except ValueError as error:
        result["mismatch_error"] = str(error)
    for s in range(STEPS, STEPS + MORE_STEPS):
        step(kind, reference, reference_optimizer, global_batch(s, kind))
        step(kind, model, optimizer, shard_of(global_batch(s, kind)))
        step(kind, resumed, resumed_optimizer, shard_of(global_batch(s, kind)))
    continued = fsdp.full_model_state(model, all_ranks=True)
    result["resumed_vs_uninterrupted"] = max_relative(fsdp.full_model_state(resumed, all_ranks=True), continued)
    result["after_resume_vs_reference"] = max_relative(continued, reference.state_dict())
    return result


def main() -> int:
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    results = [run("classifier", out, checkpointing=False), run("mlm", out, checkpointing=True),
               run("pooled", out, checkpointing=False)]
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(results, indent=2))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
