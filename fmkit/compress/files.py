"""Files a variant shares with its parent (config, tokenizer, split)."""

from __future__ import annotations

import shutil
from pathlib import Path

SUPPORT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                 "split.json")


def copy_support_files(parent: Path, directory: Path) -> None:
    for name in SUPPORT_FILES:
        if (Path(parent) / name).is_file():
            shutil.copy2(Path(parent) / name, Path(directory) / name)


def calibration_batches(context, tokenizer, samples: int, batch_size: int = 16):
    """Length-sorted, padded batches of ``samples`` training texts (a stratified, seeded choice)."""
    import numpy as np

    from fmkit.data.batching import encode_texts, pad_batch
    from fmkit.errors import BadInputError

    texts, _ = context.data.split("train")
    if samples > len(texts):
        raise BadInputError(f"calibration_samples={samples} but the training split has only {len(texts)} texts")
    chosen = np.random.default_rng(context.seed).choice(len(texts), size=samples, replace=False)
    encoded = encode_texts(tokenizer, [texts[i] for i in sorted(chosen)], context.manifest.max_length, warn=False)
    order = np.argsort(-encoded.lengths, kind="stable")
    return [pad_batch([encoded.input_ids[i] for i in order[s:s + batch_size]], tokenizer.pad_token_id)
            for s in range(0, len(order), batch_size)]
