"""bf16 weights for CPUs with AVX-512 BF16/AMX and for GPUs: half the size, faster matmuls there."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from fmkit.compress.methods.base import COMPRESS_METHODS, CompressContext, CompressMethod


class Bf16Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["bf16"] = "bf16"


def apply(context: CompressContext, options: Bf16Options, directory: Path) -> dict:
    import torch

    from fmkit.compress.files import copy_support_files

    tokenizer, model = context.load_torch_model()
    copy_support_files(context.parent, directory)
    model.to(torch.bfloat16).save_pretrained(str(directory), safe_serialization=True)
    from fmkit.train.precision import cpu_has_fast_bf16

    if not cpu_has_fast_bf16():
        context.log("warning: this CPU has no AVX-512 BF16/AMX: bf16 saves size here but runs slower than fp32")
    return {"dtype": "bfloat16"}


COMPRESS_METHODS.register("bf16")(CompressMethod(
    Bf16Options, apply, runtime="torch", description="bf16 weights (fast on AVX-512 BF16/AMX CPUs and GPUs)"))
