"""Run a bundle with PyTorch eager (fp32 by default: logits identical to plain transformers).

``precision=None`` runs the weights in the type the bundle stores (fp32, or bf16 for a `bf16`
variant); "fp32", "bf16", "fp16" (CUDA) or "auto" (the fastest the device has) cast them once, at
load: no per-call casts as under autocast, and bf16 is ~2x faster on CPUs with AVX-512 BF16.
Logits come back as fp32 either way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError
from fmkit.runtime import RUNTIMES
from fmkit.runtime.base import ClassifierRuntime, Prediction  # noqa: F401  (Prediction re-exported)


def load_hf_classifier(path: Path):
    """Tokenizer + model from a bundle or HF directory, safetensors only.

    Callers verify a bundle first (fmkit.bundle.open_bundle); a damaged file still gets a clear error.
    """
    from fmkit.offline import enforce_offline

    enforce_offline()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from fmkit.bundle import loading_weights
    from fmkit.bundle.store import refuse_pickles

    refuse_pickles(path)
    with loading_weights(path):
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForSequenceClassification.from_pretrained(str(path), use_safetensors=True)
    return tokenizer, model


@RUNTIMES.register("torch")
class TorchRuntime(ClassifierRuntime):
    backend = "torch"

    def __init__(self, path, *, device: str = "auto", precision: str | None = None, batch_size: int = 32,
                 threads: int | None = None, allow_postprocess: bool = False, verify: bool = True):
        super().__init__(path, batch_size=batch_size, allow_postprocess=allow_postprocess, verify=verify)
        import torch
        from transformers import AutoModelForSequenceClassification

        from fmkit.bundle import loading_weights
        from fmkit.train.precision import resolve_precision, select_device

        if threads:
            torch.set_num_threads(threads)
        self.device = select_device(device)
        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        if precision is not None and precision not in (*dtypes, "auto"):
            raise BadInputError(f"precision={precision!r}: use fp32, bf16, fp16 (CUDA), auto, or None (as stored)")
        with loading_weights(self.path):
            self.model = AutoModelForSequenceClassification.from_pretrained(str(self.path), use_safetensors=True)
        if precision is None:
            self.precision = {dtype: name for name, dtype in dtypes.items()}.get(self.model.dtype, "fp32")
            self.model.to(self.device)
        else:
            self.precision = resolve_precision(precision, self.device)
            self.model.to(device=self.device, dtype=dtypes[self.precision])
        self.model.eval()

    def forward(self, batch: dict) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tensors = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
            return self.model(**tensors).logits.float().cpu().numpy()
