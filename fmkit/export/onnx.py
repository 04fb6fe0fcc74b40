"""Export a sequence classifier to ONNX (dynamic batch and sequence axes) and check parity.

The TorchScript exporter (``dynamo=False``) handles the BERT family with dynamic axes in one
pass; the parity check runs ONNX Runtime and PyTorch on the same real sentences and refuses an
export whose logits differ by more than ``tolerance``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fmkit.errors import BadInputError, CheckFailedError

ONNX_FILE = "model.onnx"
INPUT_NAMES = ("input_ids", "attention_mask")
SUPPORTED_MODEL_TYPES = ("bert", "distilbert", "roberta", "xlm-roberta", "electra", "albert", "mpnet")


class _LogitsOnly(torch.nn.Module):
    """ONNX wants tensors in and out: (input_ids, attention_mask) -> logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_onnx(model, path: Path, *, opset: int = 17) -> Path:
    """A sequence classifier: (input_ids, attention_mask) -> logits."""
    return export_tensor_module(_LogitsOnly(model), model, path, output_name="logits", opset=opset)


def export_tensor_module(module, model, path: Path, *, output_name: str, opset: int = 17) -> Path:
    """Export ``module`` ((input_ids, attention_mask) -> one tensor named ``output_name``) of the transformers
    ``model`` it wraps, with dynamic batch and sequence axes; refuses model types the exporter is not checked on."""
    model_type = getattr(model.config, "model_type", "?")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise BadInputError(
            f"ONNX export of model type {model_type!r} is not supported; supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}. Run it with the PyTorch runtime instead."
        )
    module = module.float().eval().cpu()
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    dynamic[output_name] = {0: "batch"}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about python control flow on shapes
        torch.onnx.export(module, example, str(path), input_names=list(INPUT_NAMES),
                          output_names=[output_name], dynamic_axes=dynamic, opset_version=opset, dynamo=False,
                          do_constant_folding=True)
    return Path(path)


def max_logit_difference(model, onnx_path: Path, batches: list[dict[str, torch.Tensor]]) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    model = model.float().eval().cpu()
    worst = 0.0
    with torch.inference_mode():
        for batch in batches:
            reference = model(**batch).logits.numpy()
            feed = {name: batch[name].numpy() for name in INPUT_NAMES}
            (ours,) = session.run(["logits"], feed)
            worst = max(worst, float(np.abs(ours - reference).max()))
    return worst


def check_parity(model, onnx_path: Path, batches, tolerance: float) -> float:
    difference = max_logit_difference(model, onnx_path, batches)
    if difference > tolerance:
        raise CheckFailedError(
            f"ONNX Runtime and PyTorch logits differ by {difference:.2e} (> {tolerance:.0e}) on real inputs; "
            "the export is not trustworthy. Report it with the model type and opset."
        )
    return difference
