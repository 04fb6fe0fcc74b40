"""Ranking metrics over a score matrix: ndcg@k, recall@k, MRR and catalogue coverage.

Every function takes scores already masked (seen items and non-candidates at ``-inf``) and, per
user, the column positions of the relevant items. Gains are binary. ``recall@k`` divides by
``min(|relevant|, k)`` so a perfect top-k scores 1 whatever the user's test size; ``mrr`` is the
reciprocal rank of the first relevant item in the *full* ranking (not cut at k); ``coverage`` is the
share of the candidate items that appear in at least one user's top k. Ties are broken by a fixed
seeded permutation of the columns, never by item id: a model that scores everything alike (popularity
on cold items) ranks like chance instead of like the catalogue's id order.
"""

from __future__ import annotations

import numpy as np

METRICS = ("ndcg", "recall", "mrr")


def metric_names(k: int = 10) -> tuple[str, ...]:
    return (f"ndcg@{k}", f"recall@{k}", "mrr", "coverage")


def tie_permutation(n_items: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n_items)


def rank_users(scores: np.ndarray, relevant: list[np.ndarray], k: int, permutation: np.ndarray):
    """Per user (ndcg@k, recall@k, reciprocal rank) arrays, and the top-k column positions (-1: no candidate).

    ``scores``: (n_users, n_items) floats with ``-inf`` where an item may not be recommended.
    """
    scores = np.asarray(scores, dtype=np.float64)
    users, n_items = scores.shape
    permuted = scores[:, permutation]
    order = np.argsort(-permuted, axis=1, kind="stable")  # ties: the permutation's order
    ranked = permutation[order]  # column positions, best first
    ranked_scores = np.take_along_axis(permuted, order, axis=1)
    top = np.where(np.isfinite(ranked_scores[:, :k]), ranked[:, :k], -1)
    position = np.empty_like(ranked)
    position[np.arange(users)[:, None], ranked] = np.arange(n_items)[None, :]  # rank of each column (0-based)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))[:top.shape[1]]  # a catalogue smaller than k: fewer slots
    ndcg, recall, reciprocal = np.zeros(users), np.zeros(users), np.zeros(users)
    for row, items in enumerate(relevant):
        items = np.asarray(items, dtype=np.int64)
        if len(items) == 0:
            continue
        hits = np.isin(top[row], items)
        ideal = discounts[:min(len(items), k)].sum()
        ndcg[row] = (discounts * hits).sum() / ideal
        recall[row] = hits.sum() / min(len(items), k)
        reachable = items[np.isfinite(scores[row, items])]
        if len(reachable):
            reciprocal[row] = 1.0 / (position[row, reachable].min() + 1)
    return ndcg, recall, reciprocal, top


def coverage(top: np.ndarray, candidates: int) -> float:
    """Share of the ``candidates`` items that appear in some user's top-k (``top``: positions, -1 = none)."""
    shown = np.unique(top[top >= 0])
    return float(len(shown) / candidates) if candidates else 0.0


def summarise(ndcg, recall, reciprocal, top, candidates: int, k: int, prefix: str = "") -> dict:
    """Means over users, rounded to 4 places, plus coverage and the user count."""
    if len(ndcg) == 0:
        return {f"{prefix}users": 0}
    return {f"{prefix}ndcg@{k}": round(float(np.mean(ndcg)), 4),
            f"{prefix}recall@{k}": round(float(np.mean(recall)), 4),
            f"{prefix}mrr": round(float(np.mean(reciprocal)), 4),
            f"{prefix}coverage": round(coverage(top, candidates), 4), f"{prefix}users": int(len(ndcg))}
