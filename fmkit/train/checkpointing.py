"""Gradient (activation) checkpointing: keep fewer activations, recompute them in the backward pass.

A transformer's training memory at batch 64 x 256 tokens is mostly the activations every layer
keeps for its backward pass. Checkpointing keeps only each layer's input and runs the layer's
forward again during backward: peak memory falls by most of the activation memory, a step costs
about one extra forward (~1.3x). fmkit uses transformers' own switch
(``activation_checkpointing_enable``, formerly ``gradient_checkpointing_enable``) with PyTorch's
non-reentrant checkpoint, which works with frozen inputs (LoRA), DDP and FSDP2 and restores the
dropout RNG, so the loss is the same as without it.

    summary = enable_gradient_checkpointing(model)   # mutates model in place; a line for the log/manifest
"""

from __future__ import annotations

import warnings

import torch

from fmkit.errors import BadInputError

__all__ = ["checkpointed_layers", "enable_gradient_checkpointing"]

NON_REENTRANT = {"use_reentrant": False}  # the reentrant variant needs inputs that require grad and breaks DDP/FSDP


def _hf_models(module: torch.nn.Module, prefix: str = "") -> list[tuple[str, torch.nn.Module]]:
    """The outermost transformers models inside ``module`` (itself, a PEFT-wrapped one, a BiEncoder's encoder)."""
    from transformers import PreTrainedModel

    if isinstance(module, PreTrainedModel):
        return [(prefix, module)]
    found = []
    for name, child in module.named_children():
        found += _hf_models(child, f"{prefix}.{name}" if prefix else name)
    return found


def checkpointed_layers(model: torch.nn.Module) -> list[str]:
    """Names of the layers whose activations are recomputed (transformers' ``GradientCheckpointingLayer``)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [name for name, module in model.named_modules()
            if isinstance(module, GradientCheckpointingLayer) and getattr(module, "gradient_checkpointing", False)]


def _enable(hf_model, every_n_layers: int) -> None:
    if not getattr(hf_model, "supports_gradient_checkpointing", False):
        raise BadInputError(
            f"gradient checkpointing: {type(hf_model).__name__} ({hf_model.config.model_type}) does not support it "
            "in transformers; train without --gradient-checkpointing, or use a smaller batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the old name, on a transformers that renamed it
        if hasattr(hf_model, "activation_checkpointing_enable"):
            hf_model.activation_checkpointing_enable(activation_checkpointing_kwargs=dict(NON_REENTRANT),
                                                     every_n_layers=every_n_layers)
        elif every_n_layers == 1:  # an older transformers: the old name, every layer
            hf_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=dict(NON_REENTRANT))
        else:
            raise BadInputError(f"gradient checkpointing every {every_n_layers} layers needs a transformers with "
                                "activation_checkpointing_enable(every_n_layers=...); use every layer (1)")


def enable_gradient_checkpointing(model: torch.nn.Module, *, every_n_layers: int = 1) -> str:
    """Recompute each transformer layer's activations in backward; mutates ``model``, returns a one-line summary.

    Works on a transformers model, a PEFT-wrapped one (LoRA) and fmkit models that hold one (the
    retrieval bi-encoder, the masked-LM model). A model with no transformers layers (fmkit's image
    CNNs) raises :class:`~fmkit.errors.BadInputError`. Call it before DDP/FSDP wrap the model.
    Checkpointing acts in training mode only; evaluation is unchanged. ``every_n_layers=2`` recomputes every
    other layer: about half the memory saving for about half the extra time (docs/memory.md has both measured).
    """
    if not isinstance(every_n_layers, int) or every_n_layers < 1:
        raise BadInputError(f"gradient checkpointing every_n_layers={every_n_layers!r}: use a whole number >= 1")
    models = _hf_models(model)
    if not models:
        raise BadInputError(
            f"gradient checkpointing: {type(model).__name__} holds no transformers model, so fmkit has no layers to "
            "checkpoint (it supports transformers text models: classification, retrieval, masked-LM pretraining); "
            "train without --gradient-checkpointing")
    for _, hf_model in models:
        _enable(hf_model, every_n_layers)
    layers = checkpointed_layers(model)
    if not layers:
        names = ", ".join(type(m).__name__ for _, m in models)
        raise BadInputError(f"gradient checkpointing: {names} enabled it but has no checkpointed layers; "
                            "train without --gradient-checkpointing")
    kinds = sorted({type(module).__name__ for name, module in model.named_modules() if name in set(layers)})
    where = ", ".join(f"{type(m).__name__}" + (f" at {name}" if name else "") for name, m in models)
    return f"gradient checkpointing (non-reentrant): {len(layers)} {'/'.join(kinds)} layers recomputed in {where}"
