"""FSDP2 for models that do not fit one device: PyTorch's ``fully_shard``, one call per transformer layer.

DDP keeps a full copy of the weights, gradients and AdamW state on every rank (for a model of P
parameters, 16P bytes each in fp32). FSDP splits all three across the ranks and gathers a layer's
weights only while that layer runs, so per-rank memory is about 16P / world_size plus one
layer. fmkit shards each transformer layer, then the root (embeddings, head), which is the
layout the PyTorch FSDP2 docs recommend: a layer's all-gather overlaps the previous layer's
compute.

Checkpoints stay the single-process format (safetensors + JSON): ``full_model_state`` and
``full_optimizer_state`` gather the shards into full CPU tensors keyed by the usual parameter
names (torch.distributed.checkpoint.state_dict), and the ``load_*`` functions shard them back, so a
checkpoint written by 2 FSDP ranks resumes on 1 process or 4, and vice versa.

Every function here is collective: every rank calls it, in the same order. PyTorch supports FSDP2
on CUDA (NCCL); on CPU (gloo) it runs too, and fmkit's tests use that (see docs/memory.md).
"""

from __future__ import annotations

import types

import torch

from fmkit.errors import BadInputError

__all__ = ["full_model_state", "full_optimizer_state", "is_sharded", "load_full_model_state",
           "load_full_optimizer_state", "shard_model", "sharded_layers", "sharded_loss"]

# Methods other than forward that fmkit's losses call on the root (SetFit's pair loss): FSDP must gather the
# root's weights (embeddings, head) around them as it does around forward.
ENTRY_METHODS = ("sentence_embedding",)
# The loop's loss, entered like forward (``sharded_loss``): a loss may then call any submodule of the root.
LOSS_METHOD = "fmkit_loss"
SEPARATOR = "/"  # optimizer tensor names: "<parameter name>/<state key>" (parameter names never hold a slash)


def _process_group_or_raise(what: str):
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            f"{what}: FSDP needs a torch.distributed process group and none is initialised; launch with torchrun "
            "(`fmkit finetune ... --nproc 2 --distributed fsdp`); one process trains without FSDP")
    return dist


def sharded_layers(model: torch.nn.Module) -> list[str]:
    """Names of the modules ``shard_model`` gives their own FSDP group: the repeated transformer layers."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [name for name, module in model.named_modules() if isinstance(module, GradientCheckpointingLayer)]


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def shard_model(model: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """Shard ``model`` over every rank of the default process group (in place; returns it, now an ``FSDPModule``).

    Call it after ``model.to(device)`` and gradient checkpointing, and BEFORE building the optimizer: the
    optimizer must hold the sharded parameters. ``device`` is this rank's device (``cuda:LOCAL_RANK`` or cpu).
    A loss must enter the model through ``forward``, a method in ``ENTRY_METHODS`` or ``sharded_loss`` (what the
    loop does): a call straight into a submodule (``model.bert(...)``) outside them meets sharded embedding weights
    and fails ("mixed torch.Tensor and DTensor").
    """
    dist = _process_group_or_raise("shard_model")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    device = torch.device(device)
    if device.type not in ("cuda", "cpu"):
        raise BadInputError(f"FSDP on device {device}: fmkit shards on cuda (NCCL) or cpu (gloo); use --device cuda "
                            "or --distributed ddp")
    backend = dist.get_backend()
    if device.type == "cuda" and backend != "nccl":
        raise BadInputError(f"FSDP on {device} with the {backend} backend: CUDA tensors need NCCL")
    if device.type == "cpu" and backend != "gloo":
        raise BadInputError(f"FSDP on cpu with the {backend} backend: CPU tensors need gloo")
    if is_sharded(model):
        raise ValueError("shard_model: the model is already sharded")
    parameters = {p.device for p in model.parameters()}
    wanted = {torch.device("cuda", device.index or 0)} if device.type == "cuda" else {device}
    if parameters != wanted and parameters != {device}:
        raise ValueError(f"shard_model: move the model to {device} first "
                         f"(its parameters are on {sorted(map(str, parameters))})")
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    modules = dict(model.named_modules())
    for name in sharded_layers(model):
        fully_shard(modules[name], mesh=mesh)
    fully_shard(model, mesh=mesh)
    for method in ENTRY_METHODS:
        if hasattr(model, method):
            register_fsdp_forward_method(model, method)
    setattr(model, LOSS_METHOD, types.MethodType(_call_loss, model))
    register_fsdp_forward_method(model, LOSS_METHOD)
    return model


def _call_loss(model: torch.nn.Module, loss_fn, batch: dict):
    return loss_fn(model, batch)


def sharded_loss(model: torch.nn.Module, loss_fn, batch: dict) -> torch.Tensor:
    """``loss_fn(model, batch)`` on a ``shard_model`` model, inside the root's FSDP hooks as forward would be.

    The root's weights (embeddings, head: everything outside the transformer layers) are gathered before the loss
    and its gradients reduce-scattered in the backward pass, so a loss may call submodules itself
    (``fmkit.pretrain.model.mlm_loss``: ``model.bert`` then ``model.cls`` at the masked positions only) or forward
    several times (the retrieval loss: queries, then candidates). The layers gather around their own forward.
    """
    return getattr(model, LOSS_METHOD)(loss_fn, batch)


def _aliases(model: torch.nn.Module) -> list[list[str]]:
    """Groups of parameter names that are one tensor (a masked-LM decoder tied to the word embeddings)."""
    names: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(parameter), []).append(name)
    return [group for group in names.values() if len(group) > 1]


def _plain(tensors: dict) -> dict[str, torch.Tensor]:
    """CPU, contiguous, no two names sharing memory (safetensors refuses shared tensors)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        pointer = tensor.untyped_storage().data_ptr() if tensor.numel() else None
        if pointer is not None and pointer in seen:
            tensor = tensor.clone()
        elif pointer is not None:
            seen.add(pointer)
        out[name] = tensor
    return out


def full_model_state(model: torch.nn.Module, *, all_ranks: bool = False) -> dict[str, torch.Tensor]:
    """The full weights as CPU tensors keyed by the unsharded model's ``state_dict`` names. Collective.

    Rank 0 gets every tensor and the other ranks an empty dict (only rank 0 writes checkpoints, and a
    full copy on every rank is what FSDP is there to avoid); ``all_ranks=True`` gives every rank a copy.
    """
    _process_group_or_raise("full_model_state")
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=not all_ranks)
    return _plain(get_model_state_dict(model, options=options))


def load_full_model_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], *,
                          from_rank0: bool = False) -> None:
    """Shard full weights (``full_model_state``'s output, or a single-process checkpoint) into ``model``. Collective.

    By default every rank passes the same full tensors (each read the checkpoint file); with
    ``from_rank0=True`` only rank 0 needs them and broadcasts (the others may pass ``{}``). A tied name the
    file left out (safetensors' ``save_model`` keeps one name per shared tensor) is filled from its alias.
    """
    dist = _process_group_or_raise("load_full_model_state")
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    tensors = dict(tensors)
    if tensors or not from_rank0 or dist.get_rank() == 0:
        for group in _aliases(model):
            present = next((name for name in group if name in tensors), None)
            for name in group:
                if present is not None and name not in tensors:
                    tensors[name] = tensors[present]
        expected = set(model.state_dict())
        missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        if missing or unexpected:
            raise ValueError(f"load_full_model_state: the tensors do not match the model: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]} ({len(missing)} missing, {len(unexpected)} unexpected)")
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=from_rank0)
    set_model_state_dict(model, tensors, options=options)


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                         all_ranks: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """The full optimizer state as (tensors for safetensors, JSON metadata). Collective; rank 0 only by default.

    Keyed by parameter name (``"bert.encoder.layer.0.attention.self.query.weight/exp_avg"``), not by
    position, so the state survives a change of world size. ``meta`` holds the parameter groups, the
    tensors' shapes and the non-tensor values.
    """
    _process_group_or_raise("full_optimizer_state")
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=not all_ranks)
    state = get_optimizer_state_dict(model, optimizer, options=options)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict = {"format": "fmkit-fsdp-optimizer/1", "param_groups": state.get("param_groups", []),
                  "shapes": {}, "scalars": {}}
    for parameter, values in state.get("state", {}).items():
        for key, value in values.items():
            name = f"{parameter}{SEPARATOR}{key}"
            if torch.is_tensor(value):
                meta["shapes"][name] = list(value.shape)
                tensors[name] = value.reshape(-1)
            else:
                meta["scalars"][name] = value
    return _plain(tensors), meta


def load_full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                              tensors: dict[str, torch.Tensor], meta: dict, *, from_rank0: bool = False) -> None:
    """Shard a full optimizer state (``full_optimizer_state``'s output) into ``optimizer``. Collective.

    As for the weights: every rank passes the full state by default; ``from_rank0=True`` broadcasts rank 0's.
    """
    dist = _process_group_or_raise("load_full_optimizer_state")
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    state: dict = {}
    if tensors or meta or not from_rank0 or dist.get_rank() == 0:
        if meta.get("format") != "fmkit-fsdp-optimizer/1":
            raise ValueError(f"load_full_optimizer_state: metadata format {meta.get('format')!r} is not "
                             "fmkit-fsdp-optimizer/1 (write it with fmkit.train.fsdp.full_optimizer_state)")
        per_parameter: dict[str, dict] = {}
        for name, tensor in tensors.items():
            parameter, key = name.rsplit(SEPARATOR, 1)
            per_parameter.setdefault(parameter, {})[key] = tensor.reshape(meta["shapes"][name])
        for name, value in meta["scalars"].items():
            parameter, key = name.rsplit(SEPARATOR, 1)
            per_parameter.setdefault(parameter, {})[key] = value
        known = {name for name, _ in model.named_parameters()}
        unknown = sorted(set(per_parameter) - known)
        if unknown:
            raise ValueError(f"load_full_optimizer_state: state for parameters the model does not have: {unknown[:5]} "
                             f"({len(unknown)} in all); was it written for another model or method?")
        state = {"state": per_parameter, "param_groups": meta["param_groups"]}
    # strict=False: a parameter that never had a gradient (SetFit's unused head) has no AdamW state, as in one process.
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=from_rank0, strict=False)
    set_optimizer_state_dict(model, optimizer, state, options=options)
