"""Training batches of packed, masked sequences read from disk (a :class:`~fmkit.train.loop.BatchSource`)."""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

from fmkit.pretrain.masking import Masker
from fmkit.pretrain.packing import PackedStream


def batch_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """Masks are a pure function of (seed, epoch, batch): a resumed run masks exactly as a clean one."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + index)


class PackedMLMBatches:
    def __init__(self, stream: PackedStream, batch_size: int, masker: Masker, pad_id: int, seed: int = 0,
                 shuffle: bool = True, limit: int | None = None):
        self.stream = stream
        self.batch_size = batch_size
        self.masker = masker
        self.pad_id = pad_id
        self.seed = seed
        self.shuffle = shuffle
        self.sequences = stream.num_sequences if limit is None else min(limit, stream.num_sequences)
        self.tokens_served = 0  # real (non-pad) tokens handed to the model, for tokens/s

    def __len__(self) -> int:
        return math.ceil(self.sequences / self.batch_size)

    @property
    def num_examples(self) -> int:
        return self.sequences

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.sequences)
        return np.random.default_rng([self.seed, epoch]).permutation(self.stream.num_sequences)[: self.sequences]

    def batches(self, epoch: int, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        from fmkit.data.batching import pad_batch

        tokens = self.stream.tokens()
        order = self.order(epoch)
        for index in range(start, len(self)):
            rows = order[index * self.batch_size : (index + 1) * self.batch_size]
            batch = pad_batch([self.stream.sequence(int(i), tokens) for i in rows], self.pad_id)
            batch["input_ids"], batch["labels"] = self.masker(batch["input_ids"], batch["attention_mask"],
                                                              batch_generator(self.seed, epoch, index))
            self.tokens_served += int(batch["attention_mask"].sum())
            yield batch
