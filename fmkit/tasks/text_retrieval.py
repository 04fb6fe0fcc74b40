"""Text retrieval: a bi-encoder fine-tuned on (query, document) pairs with in-batch negatives.

Work in progress (H4): the adapter lands below.
"""

from __future__ import annotations

from fmkit.errors import BadInputError

NAME = "text-retrieval"


def require_encoder_bundle(manifest, path) -> None:
    """Refuse a bundle that is not a text-retrieval encoder (a classifier has no embeddings to offer)."""
    if manifest.task != NAME:
        raise BadInputError(f"{path} is a {manifest.task} bundle, not a {NAME} encoder; fine-tune one with "
                            f"`fmkit finetune --task {NAME} --data PAIRS --query-column Q --document-column D`, "
                            "or pass a base model such as minilm")
