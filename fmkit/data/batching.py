"""Tokenize once, then batch by length with dynamic padding.

Length-grouped batching (as HF's ``group_by_length``) sorts each shuffled mega-batch by
length so a batch pads to its own longest text, not the corpus's: on short review snippets
this removes most of the padding compute.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

MEGABATCH_FACTOR = 50  # shuffle granularity: sort within 50 batches, shuffle the batches


@dataclass
class EncodedTexts:
    input_ids: list[list[int]]
    truncated: int  # how many texts were cut at max_length

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def encode_texts(tokenizer, texts: Sequence[str], max_length: int, *, warn: bool = True) -> EncodedTexts:
    """Tokenize without padding; count (and warn about) texts longer than ``max_length`` tokens."""
    if not texts:
        return EncodedTexts([], 0)  # fast tokenizers raise IndexError on an empty batch (a split set to 0)
    encoded = tokenizer(list(texts), truncation=False, padding=False, add_special_tokens=True)["input_ids"]
    truncated = sum(1 for ids in encoded if len(ids) > max_length)
    if truncated:
        sep = tokenizer.sep_token_id
        encoded = [ids if len(ids) <= max_length else ids[: max_length - 1] + [sep] for ids in encoded]
        if warn:
            warnings.warn(
                f"{truncated} of {len(encoded)} texts are longer than max_length={max_length} tokens "
                "and were truncated; raise --max-length to keep them whole",
                stacklevel=2,
            )
    return EncodedTexts(encoded, truncated)


def pad_arrays(sequences: list[list[int]], pad_id: int, multiple_of: int = 8) -> dict[str, np.ndarray]:
    """Right-pad to the longest sequence (rounded up to ``multiple_of`` for efficient kernels)."""
    longest = max(len(s) for s in sequences)
    longest = ((longest + multiple_of - 1) // multiple_of) * multiple_of
    input_ids = np.full((len(sequences), longest), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(sequences), longest), dtype=np.int64)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def pad_batch(sequences: list[list[int]], pad_id: int, multiple_of: int = 8) -> dict:
    """:func:`pad_arrays` as torch tensors."""
    import torch

    return {k: torch.from_numpy(v) for k, v in pad_arrays(sequences, pad_id, multiple_of).items()}


def length_grouped_order(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Batches of indices for one epoch; a pure function of (lengths, batch_size, seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    megabatch = batch_size * MEGABATCH_FACTOR
    batches = []
    for start in range(0, len(order), megabatch):
        chunk = order[start : start + megabatch]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Inference order: longest first, so the padding in each batch is minimal."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class ClassificationBatches:
    """A deterministic, resumable source of training batches for sequence classification.

    The training loop asks for ``batches(epoch, start)``; the same epoch always yields the
    same batches, which is what makes ``--resume`` reach the same result as a clean run.
    """

    def __init__(self, encoded: EncodedTexts, label_ids: Sequence[int], batch_size: int, pad_id: int, seed: int):
        import torch

        self.encoded = encoded
        self.label_ids = torch.as_tensor(list(label_ids), dtype=torch.long)
        self.batch_size = batch_size
        self.pad_id = pad_id
        self.seed = seed
        self._lengths = encoded.lengths

    def __len__(self) -> int:
        return (len(self._lengths) + self.batch_size - 1) // self.batch_size

    @property
    def num_examples(self) -> int:
        return len(self._lengths)

    def batches(self, epoch: int, start: int = 0) -> Iterator[dict]:
        import torch

        order = length_grouped_order(self._lengths, self.batch_size, self.seed, epoch)
        for indices in order[start:]:
            batch = pad_batch([self.encoded.input_ids[i] for i in indices], self.pad_id)
            batch["labels"] = self.label_ids[torch.as_tensor(indices)]
            yield batch
