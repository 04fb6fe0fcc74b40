"""Training batches of (query, its document, its hard negatives) for the in-batch-negatives loss.

Deterministic per (seed, epoch), as the shared loop's resume requires. The candidates of a batch
are its queries' documents, then their hard negatives; ``exclude`` masks every candidate that is a
right answer of a query other than its own target (fmkit/retrieval/loss.py). Training documents
past the index (the passages of pseudo-questions, fmkit/retrieval/pseudo.py) name the index entry
they come from in ``origin``.
"""

from __future__ import annotations

import numpy as np


class PairBatches:
    def __init__(self, query_ids: list[list[int]], positives: list[int], relevant: list[set[int]],
                 negatives: np.ndarray, document_ids: list[list[int]], *, batch_size: int, pad_id: int, seed: int,
                 scale: float, symmetric: bool, origin: list[int] | None = None):
        self.query_ids, self.positives, self.relevant = query_ids, positives, relevant
        self.negatives, self.document_ids = negatives, document_ids
        self.batch_size, self.pad_id, self.seed = batch_size, pad_id, seed
        self.scale, self.symmetric = scale, symmetric
        self.origin = origin if origin is not None else list(range(len(document_ids)))
        self.num_examples = len(query_ids)

    def __len__(self) -> int:
        return -(-self.num_examples // self.batch_size)

    def batches(self, epoch: int, start: int = 0):
        import torch

        from fmkit.data.batching import pad_batch

        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
        for index in range(start, len(self)):
            rows = order[index * self.batch_size:(index + 1) * self.batch_size]
            candidates = [self.positives[i] for i in rows] + [int(n) for i in rows for n in self.negatives[i]]
            exclude = np.array([[column != target and self.origin[position] in self.relevant[row]
                                 for column, position in enumerate(candidates)]
                                for target, row in enumerate(rows)], dtype=bool)
            queries = pad_batch([self.query_ids[i] for i in rows], self.pad_id)
            documents = pad_batch([self.document_ids[p] for p in candidates], self.pad_id)
            yield {"query_input_ids": queries["input_ids"], "query_attention_mask": queries["attention_mask"],
                   "candidate_input_ids": documents["input_ids"],
                   "candidate_attention_mask": documents["attention_mask"], "exclude": torch.from_numpy(exclude),
                   "scale": torch.tensor(self.scale), "symmetric": torch.tensor(self.symmetric)}
