"""Few-shot text classification, the SetFit recipe (Tunstall et al. 2022), through the shared training loop.

With a few dozen rows per class a classifier head trained by cross-entropy has too little to
learn from; SetFit instead tunes the sentence encoder on pairs of texts (cosine similarity 1 for
the same label, 0 for different labels: many pairs from few rows), then fits a logistic regression
on the tuned embeddings. Here the pairs are an ordinary batch source for ``fmkit.train.train``
(:class:`PairBatches`, :func:`pair_loss`), and the logistic regression is written into the pooled
classifier's linear head (fmkit/finetune/probe.py) before every evaluation, so validation early
stopping sees real accuracy and the bundle has the same format as any other (pooled encoder + head).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

FEW_SHOT_ROWS_PER_CLASS = 30  # the "<= ~30 rows per class": below it pairs beat a cross-entropy head
# auto stays off past this many classes: on the 39-class support FAQ (~10 training rows per class) SetFit
# measured 0.679 test accuracy vs 0.768 for the ordinary fine-tune; on 2-class Rotten Tomatoes with 30 rows per
# class it measured 0.670 vs 0.610 (bench/small_data.py, bench/pooling_heads.py, 2026-12-02). Pairs of many
# classes are mostly negatives; the head-on-labels fine-tune learns those classes directly.
FEW_SHOT_MAX_CLASSES = 10
PAIR_ITERATIONS = 20  # SetFit's default num_iterations: one positive and one negative pair per row per iteration
MAX_PAIRS = 6000  # caps the budget on 2 CPU cores (~400 steps of 16 pairs); SetFit trains one epoch
PAIR_BATCH = 16  # SetFit's default batch size
LEARNING_RATE = 2e-5  # SetFit's default body learning rate
POOLING = "mean"  # SetFit's (sentence-transformers') pooling when the base declares none


@dataclass
class FewShotPlan:
    """What the few-shot mode needs after ``prepare``: the training split to refit the head on."""

    train_inputs: object  # EncodedTexts of the training split
    train_label_ids: list[int]
    num_classes: int
    pad_id: int
    seed: int

    def refit_head_(self, model, device) -> dict:
        """Logistic regression on the current encoder's training embeddings -> the model's head (SetFit's head)."""
        from fmkit.finetune.probe import probe_head_

        return probe_head_(model, self.train_inputs, self.train_label_ids, self.num_classes, self.pad_id, device,
                           self.seed)


def rows_per_class(train_label_ids: Sequence[int], num_classes: int) -> float:
    return len(train_label_ids) / max(1, num_classes)


def few_shot_chosen(mode: str, method: str, train_label_ids: Sequence[int], num_classes: int,
                    threshold: int = FEW_SHOT_ROWS_PER_CLASS, *, sentence_encoder: bool = True,
                    private: bool = False) -> bool:
    """"on"/"off", or for "auto": full fine-tuning, without DP, of a sentence encoder (a base that declares its
    pooling: SetFit's premise) with at most ``threshold`` training rows per class on average and at most
    ``FEW_SHOT_MAX_CLASSES`` classes."""
    from fmkit.errors import BadInputError

    if mode == "on" and method != "full":
        raise BadInputError(f"--few-shot on trains the whole encoder on pairs (SetFit); it does not combine with "
                            f"--method {method}: use --method full or --few-shot off")
    if mode == "on" and private:
        raise BadInputError("--few-shot on does not combine with --privacy dp (DP-SGD clips per labelled text, "
                            "not per pair); use --few-shot off")
    if mode != "auto":
        return mode == "on"
    return (method == "full" and not private and sentence_encoder
            and num_classes <= FEW_SHOT_MAX_CLASSES and rows_per_class(train_label_ids, num_classes) <= threshold)


def make_pairs(label_ids: Sequence[int], seed: int, iterations: int = PAIR_ITERATIONS,
               max_pairs: int = MAX_PAIRS) -> np.ndarray:
    """(pairs, 3) int array of (row, row, same-label 0/1): per iteration one positive and one negative pair per row.

    Iterations shrink so that at most ``max_pairs`` pairs are made; a row whose label has no other
    row gets no positive pair, and a single-label split no negatives.
    """
    labels = np.asarray(label_ids)
    rows = len(labels)
    iterations = max(1, min(iterations, math.ceil(max_pairs / max(1, 2 * rows))))
    rng = np.random.default_rng(seed)
    by_label = {label: np.flatnonzero(labels == label) for label in np.unique(labels)}
    others = {label: np.flatnonzero(labels != label) for label in by_label}
    pairs = []
    for _ in range(iterations):
        for row in range(rows):
            same = by_label[labels[row]]
            if len(same) > 1:
                partner = row
                while partner == row:
                    partner = int(rng.choice(same))
                pairs.append((row, partner, 1))
            if len(others[labels[row]]):
                pairs.append((row, int(rng.choice(others[labels[row]])), 0))
    return np.asarray(pairs[:max_pairs], dtype=np.int64).reshape(-1, 3)


class PairBatches:
    """A deterministic, resumable batch source of text pairs for the training loop (one epoch: the SetFit budget)."""

    fixed_epochs = 1  # the schedule takes this instead of deriving epochs from the data size

    def __init__(self, encoded, label_ids: Sequence[int], pad_id: int, seed: int, batch_size: int = PAIR_BATCH,
                 max_pairs: int = MAX_PAIRS):
        self.encoded = encoded
        self.pairs = make_pairs(label_ids, seed, max_pairs=max_pairs)
        self.batch_size = batch_size
        self.pad_id = pad_id
        self.seed = seed

    def __len__(self) -> int:
        return (len(self.pairs) + self.batch_size - 1) // self.batch_size

    @property
    def num_examples(self) -> int:
        return len(self.pairs)

    def batches(self, epoch: int, start: int = 0) -> Iterator[dict]:
        import torch

        from fmkit.data.batching import pad_batch

        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.pairs))
        for begin in range(start * self.batch_size, len(order), self.batch_size):
            chosen = self.pairs[order[begin:begin + self.batch_size]]
            left = pad_batch([self.encoded.input_ids[i] for i in chosen[:, 0]], self.pad_id)
            right = pad_batch([self.encoded.input_ids[i] for i in chosen[:, 1]], self.pad_id)
            yield {"input_ids": left["input_ids"], "attention_mask": left["attention_mask"],
                   "pair_input_ids": right["input_ids"], "pair_attention_mask": right["attention_mask"],
                   "pair_labels": torch.as_tensor(chosen[:, 2], dtype=torch.float32)}


def pair_loss(model, batch):
    """SetFit's CosineSimilarityLoss: MSE between cos(embedding a, embedding b) and 1 (same label) / 0."""
    import torch.nn.functional as F

    left = model.sentence_embedding(batch["input_ids"], batch["attention_mask"])
    right = model.sentence_embedding(batch["pair_input_ids"], batch["pair_attention_mask"])
    similarity = F.cosine_similarity(left, right, dim=-1)
    return F.mse_loss(similarity.float(), batch["pair_labels"].float())
