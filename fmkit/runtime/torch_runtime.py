"""Run a bundle with PyTorch eager (fp32 by default: logits identical to plain transformers).

The network comes from the task's input preparation (``inputs.load_torch_model``: a transformers
classifier for text, the image network for images) and so do its logits from a feed
(``inputs.torch_logits``); this backend only places, casts and runs it.

``precision=None`` runs the weights in the type the bundle stores (fp32, or bf16 for a `bf16`
variant); "fp32", "bf16", "fp16" (CUDA) or "auto" (the fastest the device has) cast them once, at
load: no per-call casts as under autocast, and bf16 is ~2x faster on CPUs with AVX-512 BF16.
Logits come back as fp32 either way.
"""

from __future__ import annotations

import numpy as np

from fmkit.errors import BadInputError
from fmkit.runtime import RUNTIMES
from fmkit.runtime.base import ClassifierRuntime, Prediction  # noqa: F401  (Prediction re-exported)


@RUNTIMES.register("torch")
class TorchRuntime(ClassifierRuntime):
    backend = "torch"

    def __init__(self, path, *, device: str = "auto", precision: str | None = None, batch_size: int | None = None,
                 threads: int | None = None, allow_postprocess: bool = False, verify: bool = True):
        super().__init__(path, batch_size=batch_size, allow_postprocess=allow_postprocess, verify=verify)
        import torch

        from fmkit.bundle import loading_weights
        from fmkit.train.precision import resolve_precision, select_device

        if threads:
            torch.set_num_threads(threads)
        self.device = select_device(device)
        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        if precision is not None and precision not in (*dtypes, "auto"):
            raise BadInputError(f"precision={precision!r}: use fp32, bf16, fp16 (CUDA), auto, or None (as stored)")
        with loading_weights(self.path):
            self.model = self.inputs.load_torch_model(self.path)
        stored = next(self.model.parameters()).dtype
        if precision is None:
            self.precision = {dtype: name for name, dtype in dtypes.items()}.get(stored, "fp32")
            self.model.to(self.device)
        else:
            self.precision = resolve_precision(precision, self.device)
            self.model.to(device=self.device, dtype=dtypes[self.precision])
        self.dtype = dtypes[self.precision]
        self.model.eval()

    def forward(self, feed: dict) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tensors = {name: torch.from_numpy(array).to(self.device) for name, array in feed.items()}
            # Float inputs (pixels) follow the weights' type; token ids stay integers.
            tensors = {name: t.to(self.dtype) if t.is_floating_point() else t for name, t in tensors.items()}
            return self.inputs.torch_logits(self.model, tensors).float().cpu().numpy()
