"""INT8 static quantization (QDQ, per-channel weights) with accuracy-aware fallback.

Activation ranges come from calibration samples of the training split. If the quantized model
loses more validation accuracy than the budget allows, blocks are put back into float one by
one, most sensitive first (sensitivity: how much accuracy returns when only that block stays
float) until the budget holds, as Intel Neural Compressor's accuracy-driven tuning does.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fmkit.compress.methods.base import COMPRESS_METHODS, CompressContext, CompressMethod
from fmkit.compress.methods.quantize_dynamic import parent_onnx


class QuantizeStaticOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["quantize-static"] = "quantize-static"
    calibration_samples: int = Field(128, ge=16, description="training texts (or images) used to calibrate "
                                                            "activation ranges")
    per_channel: bool = Field(True, description="one weight scale per output channel")
    fallback: bool = Field(True, description="put the most sensitive blocks back into float until the budget holds")
    validation_samples: int = Field(400, ge=50, description="validation texts used by the fallback's accuracy check")
    opset: int = Field(17, ge=13, description="ONNX opset of the exported graph")


def node_groups(model_path: Path, hooks) -> dict[str, list[str]]:
    """Quantizable nodes grouped by block: transformer layer.N, embeddings and head for text; the
    network's top-level blocks for images (``hooks.group_of``)."""
    import onnx

    kinds = set(hooks.static_op_types) | {"Add", "Mul"}
    groups: dict[str, list[str]] = {}
    for node in onnx.load(str(model_path), load_external_data=False).graph.node:
        if node.op_type in kinds:
            groups.setdefault(hooks.group_of(node.name), []).append(node.name)
    return groups


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over padded NumPy batches."""

    def __init__(self, batches):
        self._batches = batches
        self._iterator = iter(batches)

    def get_next(self):
        return next(self._iterator, None)

    def rewind(self):
        self._iterator = iter(self._batches)


def _accuracy(model_path: Path, batches, labels) -> float:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    predicted = np.concatenate([session.run(None, batch)[0].argmax(axis=1) for batch in batches])
    return float((predicted == labels).mean())


def _quantize(fp32: Path, out: Path, calibration, options: QuantizeStaticOptions, exclude: list[str],
              op_types=("MatMul", "Gemm", "Gather")) -> Path:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(str(fp32), str(out), _Reader(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=options.per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=exclude, op_types_to_quantize=list(op_types))
    return out


def _numpy_batches(context, tokenizer, texts, batch_size=32):
    import numpy as np

    from fmkit.data.batching import encode_texts, pad_arrays

    encoded = encode_texts(tokenizer, texts, context.manifest.max_length, warn=False)
    order = np.argsort(-encoded.lengths, kind="stable")
    return order, [pad_arrays([encoded.input_ids[i] for i in order[s:s + batch_size]], tokenizer.pad_token_id)
                   for s in range(0, len(order), batch_size)]


def apply(context: CompressContext, options: QuantizeStaticOptions, directory: Path) -> dict:
    import shutil

    from fmkit.compress.files import copy_support_files
    from fmkit.export.onnx import ONNX_FILE

    hooks = context.hooks  # texts or images, by the parent's task
    calibration = hooks.calibration_feeds(context, options.calibration_samples)
    validation, label_ids = hooks.validation_feeds(context, options.validation_samples)
    op_types = hooks.static_op_types

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        fp32 = parent_onnx(context) or hooks.export_fp32(context, work, options.opset)
        reference = _accuracy(fp32, validation, label_ids)
        groups = node_groups(fp32, hooks)
        excluded: list[str] = []
        candidate = _quantize(fp32, work / "q.onnx", calibration, options, excluded, op_types)
        accuracy = _accuracy(candidate, validation, label_ids)
        drop = lambda value: 100 * (reference - value)  # noqa: E731
        trials = [{"float_groups": [], "validation_accuracy": accuracy}]
        if options.fallback and drop(accuracy) > context.max_accuracy_drop:
            context.log(f"static INT8 loses {drop(accuracy):.2f} validation points; measuring block sensitivity")
            sensitivity = {}
            for name, nodes in groups.items():
                trial = _quantize(fp32, work / f"s-{name}.onnx", calibration, options, nodes, op_types)
                sensitivity[name] = _accuracy(trial, validation, label_ids)
            float_groups: list[str] = []
            for name in sorted(sensitivity, key=sensitivity.get, reverse=True):
                float_groups.append(name)
                excluded = [n for g in float_groups for n in groups[g]]
                candidate = _quantize(fp32, work / f"f{len(float_groups)}.onnx", calibration, options, excluded,
                                      op_types)
                accuracy = _accuracy(candidate, validation, label_ids)
                trials.append({"float_groups": list(float_groups), "validation_accuracy": accuracy})
                context.log(f"  {', '.join(float_groups)} in float: {drop(accuracy):.2f} points lost")
                if drop(accuracy) <= context.max_accuracy_drop:
                    break
        shutil.copy2(candidate, directory / ONNX_FILE)
    copy_support_files(context.parent, directory)
    return {"format": "QDQ", "weights": "int8 per-channel" if options.per_channel else "int8",
            "activations": "uint8 static", "calibration_samples": options.calibration_samples,
            "validation_fp32_accuracy": reference, "validation_accuracy": accuracy,
            "groups": sorted(groups), "float_groups": trials[-1]["float_groups"], "excluded_nodes": len(excluded), "fallback_trials": trials}


COMPRESS_METHODS.register("quantize-static")(CompressMethod(
    QuantizeStaticOptions, apply, runtime="onnx", accepts_onnx=True, quantizes=True,
    needs=("export_fp32", "calibration_feeds", "validation_feeds", "group_of"),
    description="INT8 static QDQ, per-channel, calibrated, accuracy-aware fallback (ONNX Runtime)"))
