"""Global unstructured magnitude pruning: the smallest |w| across all encoder Linear layers become 0.

Honest note: zeros in dense matrices save no time (no sparse kernels on this runtime) and no
disk space (safetensors stores dense tensors). It is a step towards structured pruning or a
sparse runtime, and the reported sparsity is measured, not requested.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fmkit.compress.methods.base import COMPRESS_METHODS, CompressContext, CompressMethod


class PruneMagnitudeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["prune-magnitude"] = "prune-magnitude"
    sparsity: float = Field(0.3, gt=0, lt=1, description="share of encoder Linear weights set to zero, in (0, 1)")
    include_classifier: bool = Field(False, description="also prune the classification head")


def prunable_linears(model, include_classifier: bool):
    import torch

    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and (include_classifier or "classifier" not in name)]


def prune_magnitude_(model, sparsity: float, include_classifier: bool = False) -> dict:
    """Zero the globally smallest-magnitude weights in place; returns the measured sparsity."""
    import torch

    layers = prunable_linears(model, include_classifier)
    with torch.no_grad():
        magnitudes = torch.cat([m.weight.detach().abs().flatten() for _, m in layers])
        count = int(round(sparsity * magnitudes.numel()))
        if count == 0:
            return {"sparsity": 0.0, "pruned_weights": 0, "prunable_weights": magnitudes.numel()}
        # Rank, not a value threshold: ties at the cut still give exactly ``count`` zeros.
        order = torch.argsort(magnitudes, stable=True)
        threshold = magnitudes[order[count - 1]]
        mask = torch.ones_like(magnitudes, dtype=torch.bool)
        mask[order[:count]] = False
        offset = 0
        for _, module in layers:
            size = module.weight.numel()
            module.weight.mul_(mask[offset:offset + size].view_as(module.weight).to(module.weight.dtype))
            offset += size
    zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
    total = sum(m.weight.numel() for _, m in layers)
    return {"sparsity": zeros / total, "pruned_weights": zeros, "prunable_weights": total,
            "threshold": float(threshold)}


def apply(context: CompressContext, options: PruneMagnitudeOptions, directory: Path) -> dict:
    from fmkit.compress.files import copy_support_files

    tokenizer, model = context.load_torch_model()
    facts = prune_magnitude_(model, options.sparsity, options.include_classifier)
    copy_support_files(context.parent, directory)
    model.save_pretrained(str(directory), safe_serialization=True)
    context.log(f"measured sparsity {facts['sparsity']:.4f} of encoder Linear weights; unstructured zeros save "
                "no time or disk without sparse kernels")
    return {**facts, "note": "unstructured sparsity: no speed-up or size reduction without sparse kernels"}


COMPRESS_METHODS.register("prune-magnitude")(CompressMethod(
    PruneMagnitudeOptions, apply, runtime="torch",
    description="global unstructured magnitude pruning (no speed-up without sparse kernels)"))
