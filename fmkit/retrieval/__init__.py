"""Text retrieval: a bi-encoder fine-tuned on (query, document) pairs, and the encoder runtime.

``load_encoder(bundle_or_base, runtime="auto").encode(texts)`` -> L2-normalised float32
embeddings (fmkit/runtime/embeddings.py). The task adapter is fmkit/tasks/text_retrieval.py; this
package holds its parts: pair data (data.py), the network (encoder_model.py), in-batch-negatives
loss (loss.py), hard-negative mining (negatives.py), ranking metrics (metrics.py), the
sentence-transformers layout (layout.py) and the ONNX export (export.py). Importing it loads no torch.
"""

from __future__ import annotations

import importlib

_LAZY = {"load_encoder": "fmkit.runtime.embeddings", "Encoder": "fmkit.runtime.embeddings"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'fmkit.retrieval' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
