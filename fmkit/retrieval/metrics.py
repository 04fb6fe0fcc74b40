"""Ranking metrics of question -> answer retrieval: MRR@10, Recall@1/5/10, nDCG@10.

Every query is ranked against the whole index (cosine similarity of unit vectors = dot product).
A query may have several right documents (the same question asked with two answers): it is
found at the rank of the first right one (MRR, Recall@k: the share of queries with a right
document in the top k), and nDCG@10 counts each right document with binary gain.
``accuracy`` is Recall@1 under the name every stage reads (the compression budget, the card):
the share of questions whose top answer is a right one.
"""

from __future__ import annotations

import numpy as np

CUTOFF = 10  # MRR@10, nDCG@10
RECALL_AT = (1, 5, 10)
QUERY_CHUNK = 1024  # queries scored at once: memory is chunk x index size


def top_ranked(queries: np.ndarray, documents: np.ndarray, depth: int) -> np.ndarray:
    """(n, depth) document positions, best first, for (n, dim) and (m, dim) unit vectors."""
    depth = min(depth, len(documents))
    ranked = np.empty((len(queries), depth), dtype=np.int64)
    for start in range(0, len(queries), QUERY_CHUNK):
        scores = queries[start:start + QUERY_CHUNK] @ documents.T
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1, kind="stable")[:, ::-1]
        ranked[start:start + QUERY_CHUNK] = np.take_along_axis(top, order, axis=1)
    return ranked


def ranking_metrics(queries: np.ndarray, documents: np.ndarray, relevant: list[set[int]]) -> dict:
    """MRR@10, Recall@1/5/10, nDCG@10 (and ``accuracy`` = Recall@1) of ``queries`` against ``documents``."""
    count = len(relevant)
    if count == 0:
        return {"count": 0, "index_size": len(documents)}
    ranked = top_ranked(np.asarray(queries, np.float32), np.asarray(documents, np.float32), CUTOFF)
    discounts = 1.0 / np.log2(np.arange(2, CUTOFF + 2))
    reciprocal, ndcg = np.zeros(count), np.zeros(count)
    first = np.full(count, np.inf)
    for row, (top, right) in enumerate(zip(ranked, relevant)):
        hits = np.array([position in right for position in top], dtype=float)
        if hits.any():
            first[row] = int(hits.argmax()) + 1
            reciprocal[row] = 1.0 / first[row]
        ideal = discounts[:min(len(right), len(top))].sum()
        ndcg[row] = float((hits * discounts[:len(top)]).sum() / ideal) if ideal else 0.0
    metrics = {"count": count, "index_size": len(documents), "mrr@10": float(reciprocal.mean()),
               **{f"recall@{k}": float((first <= k).mean()) for k in RECALL_AT}, "ndcg@10": float(ndcg.mean())}
    metrics["accuracy"] = metrics["recall@1"]
    return metrics


HEADLINE = ("mrr@10", "recall@1", "recall@5", "recall@10", "ndcg@10")
