"""What every runtime shares: tokenization, length-sorted batching, label mapping, predict().

A backend implements ``forward(batch) -> logits`` (NumPy, fp32); everything else is here, so
PyTorch and ONNX Runtime answer ``predict`` identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from fmkit.errors import BadInputError


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]

    def as_dict(self) -> dict:
        return {"label": self.label, "probabilities": self.probabilities}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def require_finite(logits: np.ndarray, path) -> np.ndarray:
    """``logits`` unless they hold NaN/inf: a probability of nan is never an answer."""
    if not np.isfinite(logits).all():
        from fmkit.errors import NonFiniteOutputError

        rows = int((~np.isfinite(logits)).any(axis=1).sum())
        raise NonFiniteOutputError(
            f"{path} produced non-finite logits (NaN or inf) for {rows} of {len(logits)} inputs: its weights are "
            f"damaged or diverged. Check them with `fmkit info {path}` and re-create the bundle")
    return logits


class ClassifierRuntime:
    backend = "base"

    def __init__(self, path, *, batch_size: int = 32, allow_postprocess: bool = False, verify: bool = True):
        from fmkit.bundle import loading_weights, open_bundle
        from fmkit.bundle.store import refuse_pickles
        from fmkit.offline import enforce_offline

        enforce_offline()
        from transformers import AutoTokenizer

        self.path = Path(path)
        self.manifest = open_bundle(self.path, verify=verify)  # changed files or an edited manifest: refused
        if self.manifest.task == "masked-lm":
            raise BadInputError(
                f"{self.path} is a masked-LM base model (made by `fmkit pretrain`): it predicts masked words, not "
                f"labels. Fine-tune it first: fmkit finetune --model {self.path} --data DATA --out OUT"
            )
        if self.manifest.task == "image-classification":
            raise BadInputError(
                f"{self.path} is an image-classification bundle; the {self.backend} runtime runs text. Open it with "
                f"fmkit.load({str(self.path)!r}), which picks the bundle's own (image) runtime")
        if self.manifest.postprocess and not allow_postprocess:
            rule = self.manifest.postprocess
            raise BadInputError(
                f"{self.path}: its decisions need {rule.get('needs_at_prediction')} at prediction time "
                f"({rule.get('method')} post-processing), which a text-only runtime cannot supply. Run it with "
                "fmkit.audit.mitigate.GroupThresholdClassifier (or `fmkit audit fairness`), or deploy its parent "
                f"{self.manifest.lineage[-1].parent if self.manifest.lineage else ''}"
            )
        refuse_pickles(self.path)
        self.labels = list(self.manifest.labels)
        self.batch_size = batch_size
        with loading_weights(self.path):
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))

    # -- implemented by each backend -------------------------------------------------------
    def forward(self, batch: dict) -> np.ndarray:  # batch: input_ids, attention_mask (NumPy int64)
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], warn: bool = True):
        from fmkit.data.batching import encode_texts
        from fmkit.data.clean import normalize_text

        return encode_texts(self.tokenizer, [normalize_text(t) for t in texts], self.manifest.max_length, warn=warn)

    def iter_logits(self, encoded, batch_size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(row indices, logits) per batch, longest texts first so each batch pads little."""
        from fmkit.data.batching import pad_arrays, sorted_batches

        for indices in sorted_batches(encoded.lengths, batch_size or self.batch_size):
            batch = pad_arrays([encoded.input_ids[i] for i in indices], self.tokenizer.pad_token_id)
            yield indices, require_finite(self.forward(batch), self.path)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        encoded = self.encode(texts)
        output = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        for indices, logits in self.iter_logits(encoded):
            output[indices] = logits
        return output

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return softmax(self.logits(texts))

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """``fmkit.load(path).predict(["great film"])`` -> [Prediction(label, probabilities)]."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            return []
        return [
            Prediction(self.labels[int(row.argmax())], {l: float(p) for l, p in zip(self.labels, row)})
            for row in self.predict_proba(texts)
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path}, labels={self.labels})"
