"""Structured pruning: remove whole attention heads and FFN neurons, shrinking the matrices.

Importance is first-order (Molchanov et al. 2017; Michel et al. 2019 for heads): the summed
|activation x gradient| of each head's context vector and each FFN neuron on calibration data.
The least important heads (ranked globally, at least one kept per layer) and FFN neurons
(the same share in every layer) are cut out of the weight matrices, so the model really does
less work. Optionally a short recovery fine-tune runs through the shared training loop.

A BERT with a different head count per layer has no standard transformers config, so the
variant deploys on ONNX Runtime (the exported graph holds the real shapes).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fmkit.compress.methods.base import COMPRESS_METHODS, CompressContext, CompressMethod
from fmkit.train.config import TrainConfig


class PruneStructuredOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["prune-structured"] = "prune-structured"
    heads_fraction: float = Field(0.25, ge=0, lt=1, description="share of all attention heads removed")
    ffn_fraction: float = Field(0.3, ge=0, lt=1, description="share of FFN neurons removed in every layer")
    calibration_samples: int = Field(256, ge=16, description="training texts used to measure importance")
    recovery: TrainConfig | None = Field(
        default_factory=lambda: TrainConfig(epochs=1, learning_rate=3e-5, early_stopping_patience=None),
        description="a short fine-tune after pruning; null to skip",
    )


def _layers(model):
    from fmkit.errors import BadInputError

    encoder = getattr(getattr(model, "bert", None), "encoder", None)
    if encoder is None:
        raise BadInputError(f"structured pruning supports BERT-family classifiers; got {type(model).__name__}")
    return list(encoder.layer)


def importance_scores(model, batches) -> tuple[list, list]:
    """Per layer: head importance [heads] and FFN-neuron importance [intermediate]."""
    import torch

    layers = _layers(model)
    captured: dict = {}

    def keep_input(key):
        def hook(module, inputs):
            inputs[0].retain_grad()
            captured[key] = inputs[0]
        return hook

    handles = []
    for index, layer in enumerate(layers):
        handles.append(layer.attention.output.dense.register_forward_pre_hook(keep_input(("head", index))))
        handles.append(layer.output.dense.register_forward_pre_hook(keep_input(("ffn", index))))
    heads = [torch.zeros(layer.attention.self.num_attention_heads) for layer in layers]
    neurons = [torch.zeros(layer.output.dense.in_features) for layer in layers]
    model.eval()
    try:
        for batch in batches:
            model.zero_grad(set_to_none=True)
            model(**batch).loss.backward()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            for index, layer in enumerate(layers):
                context = captured[("head", index)]
                score = (context * context.grad * mask).abs().sum(dim=(0, 1)).detach()
                heads[index] += score.view(layer.attention.self.num_attention_heads, -1).sum(dim=1)
                hidden = captured[("ffn", index)]
                neurons[index] += (hidden * hidden.grad * mask).abs().sum(dim=(0, 1)).detach()
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
    return heads, neurons


def _shrink_linear(linear, index, dim: int):
    """A new Linear keeping only ``index`` along ``dim`` (0: outputs, 1: inputs) of the weight."""
    import torch

    weight = linear.weight.detach().index_select(dim, index).clone()
    bias = linear.bias.detach().clone() if linear.bias is not None else None
    if dim == 0 and bias is not None:
        bias = bias.index_select(0, index).clone()
    new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    new.weight.data.copy_(weight)
    if bias is not None:
        new.bias.data.copy_(bias)
    return new.to(linear.weight.dtype)


def remove_heads_(layer, remove: list[int]) -> None:
    import torch

    attention = layer.attention.self
    size = attention.attention_head_size
    keep = [h for h in range(attention.num_attention_heads) if h not in set(remove)]
    index = torch.cat([torch.arange(h * size, (h + 1) * size) for h in keep])
    attention.query = _shrink_linear(attention.query, index, 0)
    attention.key = _shrink_linear(attention.key, index, 0)
    attention.value = _shrink_linear(attention.value, index, 0)
    layer.attention.output.dense = _shrink_linear(layer.attention.output.dense, index, 1)
    attention.num_attention_heads = len(keep)
    attention.all_head_size = len(keep) * size


def remove_neurons_(layer, keep) -> None:
    layer.intermediate.dense = _shrink_linear(layer.intermediate.dense, keep, 0)
    layer.output.dense = _shrink_linear(layer.output.dense, keep, 1)


def prune_structured_(model, heads, neurons, heads_fraction: float, ffn_fraction: float) -> dict:
    """Cut the least important heads (globally) and FFN neurons (per layer) out, in place."""
    import torch

    layers = _layers(model)
    # Normalise per layer (Michel et al.) so one layer's scale does not decide for all.
    normalised = [h / (h.norm() + 1e-12) for h in heads]
    ranked = sorted((float(score), layer, head) for layer, scores in enumerate(normalised)
                    for head, score in enumerate(scores))
    budget = int(round(heads_fraction * len(ranked)))
    removal: dict[int, list[int]] = {i: [] for i in range(len(layers))}
    for _, layer, head in ranked:
        if budget == 0:
            break
        if len(removal[layer]) + 1 < len(heads[layer]):  # keep at least one head per layer
            removal[layer].append(head)
            budget -= 1
    for index, layer in enumerate(layers):
        if removal[index]:
            remove_heads_(layer, removal[index])
        width = len(neurons[index])
        keep_count = width - int(round(ffn_fraction * width))
        if keep_count < width:
            keep = torch.sort(torch.argsort(neurons[index], descending=True)[:keep_count]).values
            remove_neurons_(layer, keep)
    return {
        "heads_removed": {str(k): sorted(v) for k, v in removal.items() if v},
        "heads_kept_per_layer": [layer.attention.self.num_attention_heads for layer in layers],
        "ffn_kept_per_layer": [layer.intermediate.dense.out_features for layer in layers],
    }


def apply(context: CompressContext, options: PruneStructuredOptions, directory: Path) -> dict:
    from fmkit.compress.files import calibration_batches, copy_support_files
    from fmkit.export.onnx import ONNX_FILE, check_parity, export_onnx

    tokenizer, model = context.load_torch_model()
    parameters_before = sum(p.numel() for p in model.parameters())
    batches = calibration_batches(context, tokenizer, options.calibration_samples, with_labels=True)
    heads, neurons = importance_scores(model, batches)
    facts = prune_structured_(model, heads, neurons, options.heads_fraction, options.ffn_fraction)
    if options.recovery is not None:
        facts["recovery"] = recover_(model, tokenizer, context, options.recovery)
    model.eval()
    export_onnx(model, directory / ONNX_FILE)
    facts["onnx_parity_max_abs_diff"] = check_parity(model, directory / ONNX_FILE,
                                                     [{k: v for k, v in b.items() if k != "labels"} for b in batches[:4]],
                                                     tolerance=1e-4)
    copy_support_files(context.parent, directory)
    facts["parameters_before"] = parameters_before
    facts["parameters_after"] = sum(p.numel() for p in model.parameters())
    return facts


def recover_(model, tokenizer, context: CompressContext, cfg: TrainConfig) -> dict:
    """A short fine-tune of the pruned model on the parent's training split (the shared loop)."""
    from fmkit.data.batching import ClassificationBatches, encode_texts
    from fmkit.runtime.inference import stream_metrics
    from fmkit.train import train
    from fmkit.train.precision import select_device

    if cfg.learning_rate is None:
        cfg = cfg.model_copy(update={"learning_rate": 3e-5})
    data = context.data
    encoded = {name: encode_texts(tokenizer, data.split(name)[0], context.manifest.max_length, warn=False)
               for name in ("train", "validation")}
    label_ids = {name: [data.label_names.index(l) for l in data.split(name)[1]] for name in ("train", "validation")}
    batches = ClassificationBatches(encoded["train"], label_ids["train"], cfg.batch_size, tokenizer.pad_token_id,
                                    cfg.seed)
    device = select_device(cfg.device)

    def evaluate_fn(m):
        metrics = stream_metrics(m, encoded["validation"], label_ids["validation"], data.label_names,
                                 tokenizer.pad_token_id, 64, device)
        return {k: metrics[k] for k in ("accuracy", "macro_f1")}

    with tempfile.TemporaryDirectory() as checkpoints:
        result = train(model, batches, cfg, checkpoint_dir=Path(checkpoints),
                       evaluate_fn=evaluate_fn if label_ids["validation"] else None)
    model.to("cpu")
    return {"steps": result.steps, "best_validation_macro_f1": result.best_metric}


COMPRESS_METHODS.register("prune-structured")(CompressMethod(
    PruneStructuredOptions, apply, runtime="onnx",
    description="remove attention heads and FFN neurons by importance (shrinks matrices; ONNX Runtime)"))
