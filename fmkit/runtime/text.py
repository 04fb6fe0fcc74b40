"""A text-classification bundle's runtime inputs: tokenizer, length-sorted padded batches, its model.

The task adapter (fmkit/tasks) names :class:`TextInputs`; the runtime base and its backends
(fmkit/runtime/base.py, torch_runtime.py, onnx_runtime.py) never look at what the inputs are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np


class TextInputs:
    """Texts -> token ids (``encode``) -> batches of NumPy ``input_ids``/``attention_mask`` feeds."""

    batch_size = 32

    def __init__(self, path: Path, manifest):
        from transformers import AutoTokenizer

        from fmkit.bundle import loading_weights

        with loading_weights(path):
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.max_length = manifest.max_length

    def encode(self, texts: Sequence[str] | str, warn: bool = True):
        from fmkit.data.batching import encode_texts
        from fmkit.data.clean import normalize_text

        if isinstance(texts, str):
            texts = [texts]
        return encode_texts(self.tokenizer, [normalize_text(t) for t in texts], self.max_length, warn=warn)

    @staticmethod
    def count(encoded) -> int:
        return len(encoded.input_ids)

    def batches(self, encoded, batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """(row indices, feed) per batch, longest texts first so each batch pads little."""
        from fmkit.data.batching import pad_arrays, sorted_batches

        for indices in sorted_batches(encoded.lengths, batch_size):
            yield indices, pad_arrays([encoded.input_ids[i] for i in indices], self.tokenizer.pad_token_id)

    @staticmethod
    def load_torch_model(path: Path):
        """The bundle's transformers classifier (safetensors only; pooled heads too); callers verified the bundle."""
        from fmkit.models.text_classifier import load_text_classifier

        return load_text_classifier(path)

    @staticmethod
    def torch_logits(model, tensors: dict):
        return model(**tensors).logits


def load_hf_classifier(path: Path):
    """Tokenizer + model from a bundle or HF directory, safetensors only (compression edits these).

    Callers verify a bundle first (fmkit.bundle.open_bundle); a damaged file still gets a clear error.
    """
    from fmkit.offline import enforce_offline

    enforce_offline()
    from transformers import AutoTokenizer

    from fmkit.bundle import loading_weights
    from fmkit.bundle.store import refuse_pickles
    from fmkit.models.text_classifier import load_text_classifier

    refuse_pickles(path)
    with loading_weights(path):
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = load_text_classifier(path)
    return tokenizer, model
