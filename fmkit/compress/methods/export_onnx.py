"""fp32 ONNX export: the same model on ONNX Runtime (parity-checked against PyTorch, 1e-4)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fmkit.compress.methods.base import COMPRESS_METHODS, CompressContext, CompressMethod


class ExportOnnxOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["export-onnx"] = "export-onnx"
    opset: int = Field(17, ge=13, description="ONNX opset")


def apply(context: CompressContext, options: ExportOnnxOptions, directory: Path) -> dict:
    from fmkit.compress.files import copy_support_files
    from fmkit.export.onnx import ONNX_FILE

    export_fp32 = context.hooks.export_fp32  # text or image graph, by the parent's task
    with tempfile.TemporaryDirectory() as work:
        shutil.move(str(export_fp32(context, Path(work), options.opset)), str(directory / ONNX_FILE))
    copy_support_files(context.parent, directory)
    return {"format": "onnx", "opset": options.opset, "parity_tolerance": 1e-4}


COMPRESS_METHODS.register("export-onnx")(CompressMethod(
    ExportOnnxOptions, apply, runtime="onnx", description="fp32 ONNX for ONNX Runtime (parity-checked)",
    needs=("export_fp32",)))
