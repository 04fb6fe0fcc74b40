"""Run a bundle with PyTorch eager (fp32 by default: logits identical to plain transformers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmkit.runtime import RUNTIMES
from fmkit.runtime.base import ClassifierRuntime, Prediction  # noqa: F401  (Prediction re-exported)


def load_hf_classifier(path: Path):
    """Tokenizer + model from a bundle or HF directory, safetensors only."""
    from fmkit.offline import enforce_offline

    enforce_offline()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from fmkit.bundle.store import refuse_pickles

    refuse_pickles(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path), use_safetensors=True)
    return tokenizer, model


@RUNTIMES.register("torch")
class TorchRuntime(ClassifierRuntime):
    backend = "torch"

    def __init__(self, path, *, device: str = "auto", precision: str = "fp32", batch_size: int = 32,
                 threads: int | None = None, allow_postprocess: bool = False):
        super().__init__(path, batch_size=batch_size, allow_postprocess=allow_postprocess)
        import torch
        from transformers import AutoModelForSequenceClassification

        from fmkit.train.precision import resolve_precision, select_device

        if threads:
            torch.set_num_threads(threads)
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = AutoModelForSequenceClassification.from_pretrained(str(self.path), use_safetensors=True)
        self.model.to(self.device).eval()

    def forward(self, batch: dict) -> np.ndarray:
        import torch

        from fmkit.train.precision import autocast

        with torch.inference_mode(), autocast(self.precision, self.device):
            tensors = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
            return self.model(**tensors).logits.float().cpu().numpy()
