"""Multiple-negatives ranking loss (in-batch negatives), with hard negatives and a symmetric option.

Each query's candidates are every positive document in the batch plus the mined hard negatives;
cross-entropy over ``scale x cosine`` picks its own document (van den Oord et al. 2018; Henderson
et al. 2017; sentence-transformers' MultipleNegativesRankingLoss). Candidates that are also right
for a query (the same answer twice in a batch, a question with two answers) are masked out rather
than pushed away. ``symmetric`` adds the document -> query direction over the positives
(MultipleNegativesSymmetricRankingLoss) and averages the two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ranking_loss(query: torch.Tensor, candidates: torch.Tensor, exclude: torch.Tensor, scale: float,
                 symmetric: bool) -> torch.Tensor:
    """``query`` (B, d) and ``candidates`` (C >= B, d) unit vectors, the first B the positives in order;
    ``exclude`` (B, C) marks right-but-not-target candidates, left out of each query's softmax."""
    batch = query.shape[0]
    target = torch.arange(batch, device=query.device)
    logits = (scale * query @ candidates.T).masked_fill(exclude, float("-inf"))
    loss = F.cross_entropy(logits, target)
    if symmetric:
        backward = (scale * candidates[:batch] @ query.T).masked_fill(exclude[:, :batch].T, float("-inf"))
        loss = (loss + F.cross_entropy(backward, target)) / 2
    return loss


def loss(model, batch: dict) -> torch.Tensor:
    """The task's loss for the shared loop: embed queries and candidates with the one encoder, rank."""
    query = model(batch["query_input_ids"], batch["query_attention_mask"])
    candidates = model(batch["candidate_input_ids"], batch["candidate_attention_mask"])
    return ranking_loss(query, candidates, batch["exclude"], float(batch["scale"]), bool(batch["symmetric"]))
