"""``--nproc N`` of the training commands: run the same command under torchrun, N ranks on this machine.

``fmkit finetune ... --nproc 2`` is ``python -m torch.distributed.run --standalone --nproc-per-node 2 -m fmkit
finetune ...`` (the same arguments without ``--nproc``): torchrun is the launcher, fmkit adds nothing of its own
to it. Several machines: run torchrun yourself with ``--nnodes``, ``--node-rank`` and ``--rdzv-endpoint``
(docs/distributed.md). No torch is imported here before the launch.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from fmkit.errors import BadInputError

# flags that configure the launch, not the command each rank runs (each takes one value)
LAUNCH_FLAGS = ("--nproc", "--backend", "--max-restarts")


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("distributed training (torchrun; docs/distributed.md)")
    group.add_argument("--nproc", type=int, default=None, metavar="N",
                       help="train data-parallel on N processes of this machine: runs this command under torchrun "
                       "(gloo on CPU, NCCL with one GPU per rank). Global batch = batch size x N x accumulation")
    group.add_argument("--backend", choices=["gloo", "nccl"], default=None,
                       help="torch.distributed backend (default: nccl where the ranks train on CUDA, else gloo)")
    group.add_argument("--max-restarts", type=int, default=0, metavar="K",
                       help="with --nproc: restart the ranks up to K times after one fails; each restart resumes "
                       "from the last checkpoint (torchrun --max-restarts)")


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def strip_launch_flags(argv: list[str]) -> list[str]:
    """``argv`` without ``--nproc N``, ``--backend B``, ``--max-restarts K`` (also in ``--flag=value`` form)."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item in LAUNCH_FLAGS:
            skip = True
            continue
        if any(item.startswith(flag + "=") for flag in LAUNCH_FLAGS):
            continue
        kept.append(item)
    return kept


def check_launch(nproc: int, backend: str | None, device: str, warn=print) -> dict:
    """Bad input before any process starts; a warning with the cost where ranks would share cores.

    Returns the environment the ranks get (``FMKIT_BACKEND``, and a thread count per rank on CPU)."""
    if nproc < 1:
        raise BadInputError(f"--nproc {nproc}: use 1 or more processes")
    import torch  # only now: a launch is about to import it in every rank anyway

    from fmkit.train.distributed import refuse_nccl_without_cuda

    cuda = torch.cuda.is_available() and device != "cpu"
    refuse_nccl_without_cuda(backend, device, cuda)
    env = {"FMKIT_BACKEND": backend} if backend else {}
    if cuda:
        gpus = torch.cuda.device_count()
        if nproc > gpus:
            raise BadInputError(f"--nproc {nproc} but {gpus} CUDA GPU(s) are visible: NCCL needs one GPU per rank; use "
                                f"--nproc {gpus} or less (or --device cpu --backend gloo)")
        return env
    cores = cpu_cores()
    if nproc > cores:
        warn(f"warning: --nproc {nproc} is more than this machine's {cores} CPU cores: the ranks share cores, so each "
             f"step takes about {nproc / cores:.1f}x longer than with {cores} rank(s) for the same global batch, plus "
             "the gradient all-reduce; use --nproc "
             f"{cores} or less for speed (more ranks only make sense as a rehearsal of a multi-machine run)")
    env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS") or str(max(1, cores // nproc))
    return env


def run_under_torchrun(args, command: str, device: str = "auto") -> int:
    """Launch ``fmkit COMMAND <the same arguments>`` on ``args.nproc`` local ranks; torchrun's exit status."""
    env = check_launch(args.nproc, args.backend, device, warn=lambda line: print(line, file=sys.stderr))
    argv = strip_launch_flags(list(getattr(args, "argv", None) or sys.argv[1:]))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
                f"--max-restarts={args.max_restarts}", "-m", "fmkit", *argv]
    print(f"fmkit {command}: launching {args.nproc} ranks: {' '.join(launcher[1:])}", file=sys.stderr)
    return subprocess.call(launcher, env={**os.environ, **env})


def launching(args) -> bool:
    """True when this process should start torchrun (``--nproc`` given, and not already a torchrun rank)."""
    return getattr(args, "nproc", None) is not None and "TORCHELASTIC_RUN_ID" not in os.environ \
        and int(os.environ.get("WORLD_SIZE", "1") or 1) == 1


def check_rank_flags(args) -> None:
    """Inside a torchrun rank: --backend reaches the process group through FMKIT_BACKEND."""
    if getattr(args, "backend", None):
        os.environ["FMKIT_BACKEND"] = args.backend


def is_main_rank() -> bool:
    """Rank 0 of a torchrun launch, or a single process: the one that prints the job's summary."""
    return int(os.environ.get("RANK", "0") or 0) == 0
