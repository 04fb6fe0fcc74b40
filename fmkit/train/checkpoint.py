"""Resumable training checkpoints in safetensors + JSON (never pickle).

A checkpoint is a directory written atomically, so a ``kill -9`` during a save leaves the
previous checkpoint intact. It holds the model weights, the AdamW state, the scheduler
position, the RNG state and the loop's counters: everything ``--resume`` needs to reach the
same result as an uninterrupted run.

Under torchrun only rank 0 writes (the loop calls ``save_checkpoint`` there), with every rank's RNG state
(``cpu.rank{N}``) and, under FSDP, the gathered full weights and optimizer state; every rank reads the same
directory back (on several machines it must be on a shared filesystem).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from fmkit.fileio import atomic_directory, write_json_atomic

LATEST = "latest"
BEST = "best"


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    meta: dict = {"param_groups": state["param_groups"], "scalars": {}, "shapes": {}}
    for param_id, values in state["state"].items():
        for key, value in values.items():
            name = f"{param_id}.{key}"
            if torch.is_tensor(value):
                meta["shapes"][name] = list(value.shape)
                tensors[name] = value.detach().reshape(-1).contiguous().cpu()
            else:
                meta["scalars"][name] = value
    return tensors, meta


def _unflatten_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, tensor in tensors.items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = tensor.reshape(meta["shapes"][name])
    for name, value in meta["scalars"].items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(directory: Path, model, optimizer, scheduler, loop_state: dict, *,
                    model_tensors: dict | None = None, optimizer_state: tuple | None = None,
                    rng_states: list | None = None) -> None:
    """``model_tensors``/``optimizer_state`` replace what ``model``/``optimizer`` hold (FSDP's gathered full states);
    ``rng_states`` are the ranks' CPU RNG states, in rank order."""
    with atomic_directory(Path(directory) / LATEST, overwrite=True) as tmp:
        if model_tensors is None:
            save_model(model, str(tmp / "model.safetensors"))
        else:
            save_file({k: v.contiguous() for k, v in model_tensors.items()}, str(tmp / "model.safetensors"))
        tensors, meta = optimizer_state if optimizer_state is not None else _flatten_optimizer(optimizer)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        write_json_atomic(tmp / "optimizer.json", meta)
        rng = {"cpu": torch.get_rng_state()}
        for rank, state in enumerate(rng_states or ()):
            rng[f"cpu.rank{rank}"] = state
        if torch.cuda.is_available():
            for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
                rng[f"cuda{index}"] = cuda_state
        save_file(rng, str(tmp / "rng.safetensors"))
        write_json_atomic(tmp / "state.json", {**loop_state, "scheduler": scheduler.state_dict()})


def load_checkpoint(directory: Path, model, optimizer, scheduler, *, rank: int = 0,
                    load_states=None) -> dict | None:
    """Restore everything in place; returns the loop state, or None when there is no checkpoint.

    ``load_states(model_tensors, optimizer, optimizer_tensors, meta)`` loads the saved states instead (FSDP)."""
    path = Path(directory) / LATEST
    if not (path / "state.json").is_file():
        return None
    meta = json.loads((path / "optimizer.json").read_text())
    if load_states is not None:
        load_states(load_file(str(path / "model.safetensors")), optimizer,
                    load_file(str(path / "optimizer.safetensors")), meta)
    else:
        load_model(model, str(path / "model.safetensors"))
        _unflatten_optimizer(optimizer, load_file(str(path / "optimizer.safetensors")), meta)
    rng = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng.get(f"cpu.rank{rank}", rng["cpu"]))
    if torch.cuda.is_available():
        cuda_states = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda"))]
        if cuda_states:
            torch.cuda.set_rng_state_all(cuda_states)
    state = json.loads((path / "state.json").read_text())
    scheduler.load_state_dict(state.pop("scheduler"))
    return state


def save_best(directory: Path, model) -> None:
    with atomic_directory(Path(directory) / BEST, overwrite=True) as tmp:
        save_model(model, str(tmp / "model.safetensors"))


def load_best(directory: Path, model) -> bool:
    path = Path(directory) / BEST / "model.safetensors"
    if not path.is_file():
        return False
    load_model(model, str(path))
    return True
