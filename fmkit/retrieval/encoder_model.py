"""The bi-encoder network: a Hugging Face encoder, the pooling its base declares, L2 normalisation.

One module serves training (fmkit/tasks/text_retrieval.py), the PyTorch runtime
(fmkit/runtime/embeddings.py) and the ONNX export (fmkit/retrieval/export.py), so the three
compute the same embedding: ``encode(input_ids, attention_mask) -> (batch, dim)`` unit vectors,
as sentence-transformers computes them from the same folder (Transformer -> Pooling -> Normalize).
"""

from __future__ import annotations

from pathlib import Path

import torch

DEFAULT_POOLING = "mean"  # a base that declares no pooling (a plain BERT folder): mean over its tokens


class BiEncoder(torch.nn.Module):
    """Queries and documents share one encoder (a bi-encoder); ``pooling`` is the base's declared mode."""

    def __init__(self, encoder, pooling: str = DEFAULT_POOLING):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.config = encoder.config  # what the ONNX exporter and LoRA read

    def forward(self, input_ids, attention_mask):
        from fmkit.models.pooling import pool

        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = pool(hidden, attention_mask, self.pooling)
        return torch.nn.functional.normalize(pooled.float(), p=2, dim=-1)

    @property
    def dimension(self) -> int:
        return int(self.config.hidden_size)


def load_bi_encoder(path: Path, pooling: str | None = None) -> BiEncoder:
    """The encoder in ``path`` (an HF folder, a sentence-transformers folder or a retrieval bundle), safetensors only.

    A folder saved as a sequence classifier (the tests' tiny BERT) loads its encoder weights too:
    transformers drops the ``bert.`` prefix and the head.
    """
    from fmkit.offline import enforce_offline

    enforce_offline()
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from fmkit.bundle import loading_weights
    from fmkit.bundle.store import refuse_pickles
    from fmkit.models.pooling import read_pooling_mode

    refuse_pickles(path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "unused weights (the classifier head)" is expected here
    try:
        with loading_weights(path):
            encoder = AutoModel.from_pretrained(str(path), use_safetensors=True, add_pooling_layer=False)
    except TypeError:  # an architecture without a pooler argument
        with loading_weights(path):
            encoder = AutoModel.from_pretrained(str(path), use_safetensors=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    return BiEncoder(encoder, pooling or read_pooling_mode(Path(path)) or DEFAULT_POOLING)
