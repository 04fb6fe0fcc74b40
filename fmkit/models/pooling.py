"""Sentence pooling: how a sentence-transformers model turns token states into one embedding.

A sentence-transformers folder records its pooling in ``1_Pooling/config.json`` (all-MiniLM-L6-v2:
mean over the non-padding tokens). The text-classification head and the text-retrieval encoder
both pool the way the base model was trained to, read from that file (never code from it).
"""

from __future__ import annotations

import json
from pathlib import Path

POOLING_MODES = ("mean", "cls", "max")
POOLING_DIR = "1_Pooling"  # sentence-transformers' folder name for its Pooling module


def read_pooling_mode(path: Path) -> str | None:
    """The pooling a sentence-transformers folder at ``path`` declares, or None when it declares none."""
    config = Path(path) / POOLING_DIR / "config.json"
    if not config.is_file():
        return None
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for mode, key in (("mean", "pooling_mode_mean_tokens"), ("cls", "pooling_mode_cls_token"),
                      ("max", "pooling_mode_max_tokens")):
        if settings.get(key):
            return mode
    return None


def pooling_config(mode: str, dimension: int) -> dict:
    """The ``1_Pooling/config.json`` sentence-transformers reads for ``mode``."""
    if mode not in POOLING_MODES:
        raise ValueError(f"pooling {mode!r}: use one of {', '.join(POOLING_MODES)}")
    return {"word_embedding_dimension": dimension, "pooling_mode_cls_token": mode == "cls",
            "pooling_mode_mean_tokens": mode == "mean", "pooling_mode_max_tokens": mode == "max",
            "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False, "include_prompt": True}


def pool(hidden, attention_mask, mode: str = "mean"):
    """(batch, tokens, dim) states + (batch, tokens) mask -> (batch, dim), as sentence-transformers pools."""
    if mode == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
    if mode == "mean":
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    raise ValueError(f"pooling {mode!r}: use one of {', '.join(POOLING_MODES)}")
