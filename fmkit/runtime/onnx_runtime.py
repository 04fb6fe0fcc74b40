"""Run an ONNX bundle with ONNX Runtime on the CPU (or CUDA where its provider is installed).

The graph's inputs are fed by name from the task's batches (``input_ids``/``attention_mask`` for
text, ``pixel_values`` for images): the graph says which it takes, the task which it has.
"""

from __future__ import annotations

import numpy as np

from fmkit.runtime import RUNTIMES
from fmkit.runtime.base import ClassifierRuntime


def session_options(threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


@RUNTIMES.register("onnx")
class OnnxRuntime(ClassifierRuntime):
    backend = "onnx"

    def __init__(self, path, *, device: str = "auto", batch_size: int | None = None, threads: int | None = None,
                 allow_postprocess: bool = False, verify: bool = True):
        super().__init__(path, batch_size=batch_size, allow_postprocess=allow_postprocess, verify=verify)
        import onnxruntime as ort

        from fmkit.bundle import loading_weights
        from fmkit.errors import BadInputError
        from fmkit.export.onnx import ONNX_FILE

        model_file = self.path / ONNX_FILE
        if not model_file.is_file():
            raise BadInputError(f"{self.path} has no {ONNX_FILE}; make one with `fmkit compress {self.path} "
                                "--method export-onnx` (or quantize-dynamic, quantize-static)")
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BadInputError("device=cuda but onnxruntime has no CUDA provider; install onnxruntime-gpu")
            providers.insert(0, "CUDAExecutionProvider")
        self.device = device if device != "auto" else "cpu"
        with loading_weights(self.path):
            self.session = ort.InferenceSession(str(model_file), session_options(threads), providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def forward(self, feed: dict) -> np.ndarray:
        (logits,) = self.session.run(None, {name: feed[name] for name in self.input_names})
        return logits.astype(np.float32, copy=False)
