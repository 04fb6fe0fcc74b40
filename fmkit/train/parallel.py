"""How the loop's model is laid over the ranks: one process, DDP replicas or FSDP shards.

``Parallel`` is what the loop (fmkit/train/loop.py) holds: the plain model (evaluated, checkpointed as best and
handed back to the caller), the module the passes run through (the DDP-wrapped loss, or the FSDP-sharded copy),
and the checkpoint states of both. Under FSDP the plain model stays a full host copy that receives the gathered
weights before each evaluation and at the end, so the stages that evaluate and save on rank 0 after training work
unchanged (the cost: one full copy of the weights in host memory; the GPUs hold only their shards).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from typing import Callable

import torch

from fmkit.errors import BadInputError
from fmkit.train.distributed import FILLER, Ranks, broadcast_weights, gather_objects, wrap_ddp

FSDP_MISSING = ("--distributed fsdp: fmkit.train.fsdp (FSDP2 fully_shard) is not available in this fmkit ({why}); "
                "use --distributed ddp")


def fsdp_module():
    """fmkit/train/fsdp.py, imported on first use (FSDP only; its absence is a clear error, not an ImportError)."""
    try:
        from fmkit.train import fsdp
    except ImportError as error:
        raise BadInputError(FSDP_MISSING.format(why=error)) from None
    return fsdp


@dataclass
class Parallel:
    ranks: Ranks
    model: torch.nn.Module  # the plain model: evaluation, best weights, the caller's
    loss_fn: Callable
    strategy: str = "single"  # single, ddp or fsdp
    ddp: torch.nn.Module | None = None
    sharded: torch.nn.Module | None = None
    notes: dict = field(default_factory=dict)

    @property
    def trained(self) -> torch.nn.Module:
        """The module whose parameters the optimizer steps."""
        return self.sharded if self.sharded is not None else self.model

    def loss(self, batch: dict):
        if self.ddp is not None:
            return self.ddp(batch)
        if self.sharded is not None:  # inside the root's FSDP hooks: the loss may call submodules (mlm_loss)
            return fsdp_module().sharded_loss(self.sharded, self.loss_fn, batch)
        return self.loss_fn(self.trained, batch)

    def passes(self, last: bool):
        """Gradients are all-reduced on the step's last pass only (accumulation passes skip the communication)."""
        if self.ddp is not None and not last:
            return self.ddp.no_sync()
        if self.sharded is not None:
            self.sharded.set_requires_gradient_sync(last)
        return contextlib.nullcontext()

    def gather(self) -> None:
        """FSDP: the full weights into the plain model (collective: every rank calls it)."""
        if self.sharded is not None:
            tensors = fsdp_module().full_model_state(self.sharded)
            self.model.load_state_dict(tensors, strict=False)

    def share_main_weights(self) -> None:
        """Rank 0's plain model on every rank (the best weights rank 0 restored)."""
        broadcast_weights(self.ranks, self.model)

    # -- checkpoint states: what rank 0 writes and every rank reads back ------------------------------------
    def model_state(self) -> dict | None:
        """Full tensors to save in place of the plain model's (FSDP; collective), or None: save the model itself."""
        return fsdp_module().full_model_state(self.sharded) if self.sharded is not None else None

    def optimizer_state(self, optimizer) -> tuple | None:
        return fsdp_module().full_optimizer_state(self.sharded, optimizer) if self.sharded is not None else None

    def load_states(self, model_tensors: dict, optimizer, optimizer_tensors: dict, meta: dict) -> None:
        fsdp = fsdp_module()
        fsdp.load_full_model_state(self.sharded, model_tensors)
        fsdp.load_full_optimizer_state(self.sharded, optimizer, optimizer_tensors, meta)
        self.model.load_state_dict(model_tensors, strict=False)

    def rng_states(self) -> list | None:
        """Every rank's CPU RNG state (collective), so a resumed rank draws its dropout masks as before."""
        return gather_objects(self.ranks, torch.get_rng_state()) if self.ranks.active else None


def lay_out(model, loss_fn, cfg, ranks: Ranks, device) -> Parallel:
    """Before the optimizer exists: FSDP shards a copy of ``model`` (the optimizer must see the shards)."""
    if not ranks.active:
        return Parallel(ranks, model, loss_fn)
    if cfg.distributed == "fsdp":
        fsdp = fsdp_module()
        sharded = fsdp.shard_model(copy.deepcopy(model), device)
        return Parallel(ranks, model, loss_fn, strategy="fsdp", sharded=sharded)
    return Parallel(ranks, model, loss_fn, strategy="ddp")


def wrap(parallel: Parallel, loss_fn, device) -> None:
    """After the hooks' setup: DDP wraps the (hooks') loss of the plain model."""
    parallel.loss_fn = loss_fn
    if parallel.strategy == "ddp":
        parallel.ddp = wrap_ddp(parallel.model, loss_fn, device)


def pop_filler(batch: dict) -> tuple[dict, bool]:
    """(the batch without the marker, whether its loss counts 0: see RankBatches)."""
    if FILLER not in batch:
        return batch, False
    batch = dict(batch)
    batch.pop(FILLER)
    return batch, True
