"""Device and numeric precision: bf16 autocast where the hardware does it fast."""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path

import torch

from fmkit.errors import BadInputError


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA where visible, else CPU. Under torchrun (WORLD_SIZE > 1) ``auto``/``cuda`` is this rank's GPU,
    ``cuda:LOCAL_RANK``: one device per rank."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BadInputError(f"device={name!r} but no CUDA GPU is visible; use device=cpu or auto")
    if name in ("auto", "cuda"):
        if not torch.cuda.is_available():
            return torch.device("cpu")
        if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0") or 0))
        return torch.device("cuda")
    return torch.device(name)


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """AVX-512 BF16 or AMX: where bf16 matmuls run several times faster than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in (" avx512_bf16", " amx_bf16"))


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise BadInputError("precision=fp16 needs a CUDA GPU; on CPU use bf16 or fp32")
    return precision


def autocast(precision: str, device: torch.device):
    """Mixed precision for the forward pass; weights and optimizer state stay fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
