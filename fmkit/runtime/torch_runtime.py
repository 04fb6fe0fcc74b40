"""Run a bundle with PyTorch eager (fp32 by default: logits identical to plain transformers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fmkit.runtime import RUNTIMES


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]

    def as_dict(self) -> dict:
        return {"label": self.label, "probabilities": self.probabilities}


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
class TorchRuntime:
    backend = "torch"

    def __init__(self, path, *, device: str = "auto", precision: str = "fp32", batch_size: int = 32):
        from fmkit.bundle import read_manifest
        from fmkit.train.precision import resolve_precision, select_device

        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.labels = list(self.manifest.labels)
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = batch_size
        self.tokenizer, self.model = load_hf_classifier(self.path)
        self.model.to(self.device).eval()

    def encode(self, texts: Sequence[str], warn: bool = True):
        from fmkit.data.batching import encode_texts
        from fmkit.data.clean import normalize_text

        return encode_texts(self.tokenizer, [normalize_text(t) for t in texts], self.manifest.max_length, warn=warn)

    def logits(self, texts: Sequence[str]):
        from fmkit.runtime.inference import all_logits

        return all_logits(self.model, self.encode(texts), self.tokenizer.pad_token_id, self.batch_size,
                          self.device, self.precision)

    def predict_proba(self, texts: Sequence[str]):
        from fmkit.runtime.inference import softmax

        return softmax(self.logits(texts)) if len(texts) else None

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """``fmkit.load(path).predict(["great film"])`` -> [Prediction(label, probabilities)]."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            return []
        probabilities = self.predict_proba(texts)
        return [
            Prediction(self.labels[int(row.argmax())], {l: float(p) for l, p in zip(self.labels, row)})
            for row in probabilities
        ]

    def __repr__(self) -> str:
        return f"TorchRuntime({self.path}, labels={self.labels}, device={self.device})"
