"""INT8 dynamic quantization with ONNX Runtime: int8 weights, activations quantized per batch.

torch.ao's dynamic quantization is deprecated; ONNX Runtime's is the supported, faster path.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fmkit.compress.methods.base import COMPRESS_METHODS, CompressContext, CompressMethod


class QuantizeDynamicOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["quantize-dynamic"] = "quantize-dynamic"
    per_channel: bool = Field(True, description="one scale per output channel of each weight")
    opset: int = Field(17, ge=13, description="ONNX opset of the exported graph")


def export_fp32(context: CompressContext, directory: Path, opset: int) -> Path:
    """The parent as an fp32 ONNX graph, parity-checked against PyTorch on real sentences."""
    from fmkit.compress.files import calibration_batches
    from fmkit.export.onnx import check_parity, export_onnx

    tokenizer, model = context.load_torch_model()
    path = export_onnx(model, directory / "fp32.onnx", opset=opset)
    check_parity(model, path, calibration_batches(context, tokenizer, 32, batch_size=8), tolerance=1e-4)
    return path


def parent_onnx(context: CompressContext) -> Path | None:
    """An fp32 ONNX parent (exported or structurally pruned) is quantized as it is."""
    from fmkit.export.onnx import ONNX_FILE

    return context.parent / ONNX_FILE if context.manifest.runtime == "onnx" else None


def apply(context: CompressContext, options: QuantizeDynamicOptions, directory: Path) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from fmkit.compress.files import copy_support_files
    from fmkit.export.onnx import ONNX_FILE

    with tempfile.TemporaryDirectory() as work:
        fp32 = parent_onnx(context) or context.hooks.export_fp32(context, Path(work), options.opset)
        quantize_dynamic(str(fp32), str(directory / ONNX_FILE), weight_type=QuantType.QInt8,
                         per_channel=options.per_channel)
    copy_support_files(context.parent, directory)
    return {"weight_type": "int8", "activations": "dynamic uint8"}


COMPRESS_METHODS.register("quantize-dynamic")(CompressMethod(
    QuantizeDynamicOptions, apply, runtime="onnx", accepts_onnx=True, quantizes=True,
    needs=("export_fp32",),
    description="INT8 weights, dynamically quantized activations (ONNX Runtime)"))
