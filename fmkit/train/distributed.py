"""Data-parallel training on torch.distributed, launched by torchrun: who this process is, and the few
collective steps the one loop (fmkit/train/loop.py) needs.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything here is a no-op and training runs in
one process as before. With them the loop joins the process group (gloo on CPU, NCCL on CUDA with one device
per LOCAL_RANK), wraps the loss in ``DistributedDataParallel`` and gives each rank its share of the same
deterministic batches (``RankBatches``). Rank 0 evaluates, calls the callbacks and writes checkpoints and the
bundle; its decisions reach the other ranks with ``broadcast_object_list``.

The equivalence that the tests check: W ranks with ``batch_size`` B and ``gradient_accumulation_steps`` A take
an optimizer step over the same W x A batches of B examples, in the same order, as one process with B and
W x A (DDP averages the ranks' gradients; the loop divides each pass by A), so the weights match it to float
rounding. ``FMKIT_BACKEND`` (set by ``--backend`` of ``fmkit finetune --nproc``) picks the backend explicitly.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

from fmkit.errors import BadInputError, FmkitError

T = TypeVar("T")
FILLER = "_fmkit_filler"  # marks a batch a rank computes with weight 0: its share of the epoch's last step ran out
BACKENDS = ("gloo", "nccl")


@dataclass(frozen=True)
class Ranks:
    """This process's place in a torchrun launch (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    restart_count: int = 0  # TORCHELASTIC_RESTART_COUNT: > 0 when torchrun --max-restarts restarted the workers
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def facts(self, per_rank_batch: int, accumulation: int) -> dict:
        """What the manifest records: ranks, backend and the global batch (per-rank batch x ranks x accumulation)."""
        return {"world_size": self.world_size, "backend": self.backend, "per_rank_batch": per_rank_batch,
                "gradient_accumulation_steps": accumulation,
                "global_batch": per_rank_batch * self.world_size * accumulation}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise BadInputError(f"{name}={value!r} is not a whole number; it is set by torchrun, launch with torchrun "
                            "or unset it") from None


def from_environment() -> Ranks:
    """The launch as torchrun describes it in the environment; no torch import, no process group."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise BadInputError(f"RANK={rank} WORLD_SIZE={world}: rank must be in 0..WORLD_SIZE-1; launch with torchrun")
    if world > 1:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return Ranks(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0),
                         _env_int("TORCHELASTIC_RESTART_COUNT", 0), str(dist.get_backend()))
    return Ranks(rank, world, _env_int("LOCAL_RANK", 0), _env_int("TORCHELASTIC_RESTART_COUNT", 0))


def choose_backend(device_name: str = "auto") -> str:
    """gloo on CPU, NCCL where the ranks train on CUDA; ``FMKIT_BACKEND`` overrides; NCCL without CUDA is refused."""
    import torch

    requested = os.environ.get("FMKIT_BACKEND", "").strip().lower() or None
    if requested is not None and requested not in BACKENDS:
        raise BadInputError(f"FMKIT_BACKEND={requested!r}: use gloo (CPU or CUDA) or nccl (CUDA)")
    cuda = torch.cuda.is_available() and device_name != "cpu"
    refuse_nccl_without_cuda(requested, device_name, cuda)
    return requested or ("nccl" if cuda else "gloo")


def refuse_nccl_without_cuda(backend: str | None, device_name: str, cuda: bool) -> None:
    """The one check, before a launch (fmkit/cli/launch.py) and again inside each rank."""
    if backend == "nccl" and not cuda:
        why = "--device cpu was given" if device_name == "cpu" else "no CUDA GPU is visible"
        raise BadInputError(f"--backend nccl needs CUDA GPUs but {why}; use --backend gloo for CPU ranks, or run on "
                            "a machine with one GPU per rank")


def setup(device_name: str = "auto") -> Ranks:
    """Join torchrun's process group once (idempotent); the CUDA device of this rank is LOCAL_RANK's."""
    ranks = from_environment()
    if not ranks.active:
        return ranks
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return ranks
    backend = choose_backend(device_name)
    if backend == "nccl":
        if ranks.local_rank >= torch.cuda.device_count():
            raise BadInputError(f"LOCAL_RANK={ranks.local_rank} but only {torch.cuda.device_count()} CUDA devices are "
                                "visible; start at most one rank per GPU (--nproc-per-node)")
        torch.cuda.set_device(ranks.local_rank)
    store = attempt_store(ranks)
    if store is None:
        dist.init_process_group(backend=backend)
    else:
        dist.init_process_group(backend=backend, store=store, rank=ranks.rank, world_size=ranks.world_size)
    atexit.register(_leave)
    return from_environment()


# torchrun's c10d rendezvous (--standalone included) shares its agent's TCPStore with the workers
# (TORCHELASTIC_USE_AGENT_STORE=True). In torch 2.13 that store is created on the first rendezvous round and kept
# for every restart, while env:// joins it without a per-attempt prefix (torch/distributed/rendezvous.py: "We create
# a new TCPStore for every retry"): a restarted group reads the dead group's keys, so gloo's connectFullMesh dials a
# dead rank's port ("Connection refused") or waits on a stale handshake (a hang). pytorch/pytorch#135712 is the same
# defect for NCCL. Each attempt therefore gets its own key space in that store.
AGENT_STORE = "TORCHELASTIC_USE_AGENT_STORE"
MULTI_NODE_RESTARTS = ("torchrun --max-restarts across several machines: each machine's agent counts its own restarts, "
                       "so the ranks cannot agree on a fresh store prefix; set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 on "
                       "every node (each rendezvous round then gets a new store) or a restart may reuse stale keys")


def attempt_store(ranks: Ranks, timeout=None):
    """The agent's store scoped to this restart attempt (``attempt_{TORCHELASTIC_RESTART_COUNT}``), or None where
    torch's own ``env://`` rendezvous is right: no torchrun agent store, or several machines (their agents' restart
    counts may differ, pytorch/pytorch#135712; warned once when restarts are allowed)."""
    if os.environ.get(AGENT_STORE) != str(True):
        return None
    if _env_int("GROUP_WORLD_SIZE", 1) != 1:
        if _env_int("TORCHELASTIC_MAX_RESTARTS", 0) > 0 and ranks.is_main:
            import warnings

            warnings.warn(MULTI_NODE_RESTARTS, stacklevel=3)
        return None
    import torch.distributed as dist
    from torch.distributed.constants import default_pg_timeout

    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise BadInputError(f"{AGENT_STORE}=True but {name} is not set; both are set by torchrun: launch with "
                                f"torchrun, or unset {AGENT_STORE}")
    store = dist.TCPStore(os.environ["MASTER_ADDR"], _env_int("MASTER_PORT", 0), ranks.world_size, is_master=False,
                          timeout=timeout or default_pg_timeout)
    # "default_pg" inside, as init_process_group's own env:// path names it
    return dist.PrefixStore("default_pg", dist.PrefixStore(f"fmkit/attempt_{ranks.restart_count}", store))


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    if ranks.active:
        import torch.distributed as dist

        dist.barrier()


def broadcast(ranks: Ranks, value: T) -> T:
    """Rank 0's ``value`` on every rank (any picklable value; sent over the process group, never to disk)."""
    if not ranks.active:
        return value
    import torch.distributed as dist

    box = [value if ranks.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


_SOLO: list = []  # non-empty while rank 0 runs work of its own (on_main): no collective may start in it


def alone() -> bool:
    """True inside ``on_main``'s work on rank 0 (the other ranks are not there to join a collective)."""
    return bool(_SOLO)


class RankFailed(FmkitError):
    """Another rank failed: this one stops with it (exit 1) instead of waiting in a collective until the timeout."""


def on_main(ranks: Ranks, work: Callable[[], T]) -> T:
    """Run ``work`` on rank 0 only and hand its result to every rank; an exception there is raised on rank 0 and
    reported on the others (instead of leaving them waiting in a collective until the timeout)."""
    if not ranks.active:
        return work()
    outcome: tuple = (None, None)
    error = None
    if ranks.is_main:
        try:
            _SOLO.append(True)
            try:
                outcome = (work(), None)
            finally:
                _SOLO.pop()
        except BaseException as failure:  # noqa: BLE001 - sent to the other ranks, then re-raised here
            error = failure
            outcome = (None, f"{type(failure).__name__}: {failure}")
    value, message = broadcast(ranks, outcome)
    if error is not None:
        raise error
    if message is not None:
        raise RankFailed(f"rank 0 failed ({message}); rank {ranks.rank} stops with it")
    return value


def all_sum(ranks: Ranks, values: list[float]) -> list[float]:
    """Element-wise sum over the ranks (training loss and example counts for the log)."""
    if not ranks.active:
        return values
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def gather_objects(ranks: Ranks, value) -> list:
    """Every rank's ``value``, in rank order, on every rank (the RNG states a checkpoint keeps per rank)."""
    if not ranks.active:
        return [value]
    import torch.distributed as dist

    out = [None] * ranks.world_size
    dist.all_gather_object(out, value)
    return out


def broadcast_weights(ranks: Ranks, model) -> None:
    """Rank 0's parameters and buffers into every rank's copy of ``model``, in place."""
    if not ranks.active:
        return
    import torch
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


class RankBatches:
    """This rank's share of a deterministic ``BatchSource``: source batch ``j * W + rank`` is its batch ``j``.

    Every rank computes the same epoch order (a pure function of seed and epoch), so length grouping and exact
    resume are the source's own. Every rank has ``ceil(N / W)`` batches; where N is not a multiple of W, the ranks
    left without a batch in the last group compute a filler batch (marked ``FILLER``) whose loss the loop
    multiplies by 0: they still take part in the gradient all-reduce, and the update equals one process's.
    """

    def __init__(self, source, ranks: Ranks):
        self.source, self.ranks = source, ranks
        self.fixed_epochs = getattr(source, "fixed_epochs", None)

    @property
    def num_examples(self) -> int:
        return self.source.num_examples

    def __len__(self) -> int:
        return -(-len(self.source) // self.ranks.world_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[dict]:
        world, rank, total = self.ranks.world_size, self.ranks.rank, len(self.source)
        last = None
        first = start * world
        for index, batch in enumerate(self.source.batches(epoch, start=first), start=first):
            if index % world == rank:
                last = batch
                yield batch
        if start < len(self) and (len(self) - 1) * world + rank >= total:
            if last is None:  # resumed right at the filler: any batch of the epoch will do, its weight is 0
                last = next(iter(self.source.batches(epoch, start=total - 1)))
            yield {**last, FILLER: True}

    def __getattr__(self, name: str):
        # tokens_served and other figures of the source (PackedMLMBatches) read through the wrapper
        if name in ("source", "ranks"):
            raise AttributeError(name)
        return getattr(self.source, name)


def loss_module(model, loss_fn):
    """``loss_fn(model, batch)`` as a module whose forward is the whole loss: DDP sees one forward per pass even
    where the loss calls the model twice (retrieval's queries and documents) or a method of it (SetFit's
    ``sentence_embedding``), and ``model``'s own attributes stay reachable."""
    import torch

    class LossModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, batch):
            return loss_fn(self.model, batch)

    return LossModule()


def wrap_ddp(model, loss_fn, device):
    """The DDP-wrapped loss of ``model`` on ``device``. ``static_graph``: the same parameters take part in every
    step, which lets DDP skip the ones a loss never uses (a pooler the retrieval encoder leaves out)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    return DistributedDataParallel(loss_module(model, loss_fn), device_ids=ids, static_graph=True)


PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL communicator was aborted",
             "Socket Timeout", "Timed out")


def is_peer_loss(error: BaseException) -> bool:
    """An error a collective raises when another rank died (gloo: the peer's socket closed; NCCL: aborted)."""
    import torch.distributed as dist

    backend_error = getattr(dist, "DistBackendError", None)
    return (backend_error is not None and isinstance(error, backend_error)) or (
        isinstance(error, RuntimeError) and any(text in str(error) for text in PEER_LOST))


def peer_failed(ranks: Ranks, error: BaseException, checkpoint_dir) -> RankFailed:
    """The clear message a surviving rank stops with when another one crashed."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return RankFailed(f"rank {ranks.rank} of {ranks.world_size}: another rank stopped during training ({first}); "
                      "its own error is in the torchrun output above. No bundle was written; the last checkpoint is "
                      f"in {checkpoint_dir}: rerun with --resume, or launch with torchrun --max-restarts N to resume "
                      "automatically")
