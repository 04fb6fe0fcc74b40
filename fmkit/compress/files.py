"""Files a variant shares with its parent (config, tokenizer, split)."""

from __future__ import annotations

import shutil
from pathlib import Path

SUPPORT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                 "split.json", "image_config.json")


def copy_support_files(parent: Path, directory: Path) -> None:
    for name in SUPPORT_FILES:
        if (Path(parent) / name).is_file():
            shutil.copy2(Path(parent) / name, Path(directory) / name)


def calibration_batches(context, tokenizer, samples: int, batch_size: int = 16, with_labels: bool = False):
    """Length-sorted, padded batches of ``samples`` training texts (a seeded random choice)."""
    import numpy as np
    import torch

    from fmkit.data.batching import encode_texts, pad_batch
    from fmkit.errors import BadInputError

    texts, labels = context.data.split("train")
    if samples > len(texts):
        raise BadInputError(f"calibration needs {samples} samples but the training split has only {len(texts)} "
                            "texts; lower calibration_samples or use more data")
    chosen = sorted(np.random.default_rng(context.seed).choice(len(texts), size=samples, replace=False))
    encoded = encode_texts(tokenizer, [texts[i] for i in chosen], context.manifest.max_length, warn=False)
    label_ids = np.array([context.manifest.labels.index(labels[i]) for i in chosen])
    order = np.argsort(-encoded.lengths, kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = pad_batch([encoded.input_ids[i] for i in rows], tokenizer.pad_token_id)
        if with_labels:
            batch["labels"] = torch.as_tensor(label_ids[rows])
        batches.append(batch)
    return batches
