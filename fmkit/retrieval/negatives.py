"""Hard negatives: mined from a first pass with the zero-shot encoder, or sampled by popularity.

For each training query the base encoder ranks the whole index; its hard negatives are the
highest-ranked documents that are not one of its answers and score below ``(1 - margin)`` of its
answer (a candidate scoring as high as the answer is likely another right answer: the
false-negative filter of sentence-transformers' ``mine_hard_negatives``, relative margin). A query
with too few such candidates in ``depth`` gets seeded random documents for the rest.
"""

from __future__ import annotations

import numpy as np


def mine_hard_negatives(query_vectors: np.ndarray, document_vectors: np.ndarray, positives: list[int],
                        relevant: list[set[int]], count: int, depth: int, margin: float, seed: int) -> tuple:
    """(rows x count) document positions, and facts: how many came from the ranking, their mean rank."""
    from fmkit.retrieval.metrics import top_ranked

    if count == 0 or not len(query_vectors):
        return np.zeros((len(query_vectors), 0), dtype=np.int64), {"hard_negatives": 0}
    rng = np.random.default_rng(seed)
    ranked = top_ranked(query_vectors, document_vectors, min(depth + max(len(r) for r in relevant),
                                                           len(document_vectors)))
    chosen = np.empty((len(query_vectors), count), dtype=np.int64)
    mined, ranks = 0, []
    for row, (top, positive, right) in enumerate(zip(ranked, positives, relevant)):
        ceiling = (1 - margin) * float(query_vectors[row] @ document_vectors[positive])
        picks = []
        for rank, position in enumerate(top[:depth + len(right)]):
            if position not in right and float(query_vectors[row] @ document_vectors[position]) <= ceiling:
                picks.append(int(position))
                ranks.append(rank + 1)
                if len(picks) == count:
                    break
        mined += len(picks)
        if len(picks) < count:  # too few hard ones: random documents that are not an answer (unused ones first)
            others = [d for d in range(len(document_vectors)) if d not in right]
            pool = [d for d in others if d not in picks] or others or [positive]  # an answer is masked in the loss
            picks += [int(d) for d in rng.choice(pool, count - len(picks), replace=len(pool) < count - len(picks))]
        chosen[row] = picks
    facts = {"hard_negatives": count, "mined": mined, "random_fill": len(query_vectors) * count - mined,
             "mean_rank": round(float(np.mean(ranks)), 2) if ranks else None, "depth": depth, "margin": margin}
    return chosen, facts


def popularity_negatives(positives: list[int], relevant: list[set[int]], index_size: int, count: int,
                         exponent: float, seed: int) -> tuple:
    """(rows x count) documents drawn by how often each is a training positive, to the power ``exponent``
    (word2vec's unigram^0.75; recommenders' popularity-sampled negatives): no zero-shot pass, so it suits
    many pairs whose "documents" are items that users pick. A draw that is one of the query's answers is
    redrawn from the other documents (where there are none it stays: the loss masks answers)."""
    if count == 0 or not len(positives):
        return np.zeros((len(positives), 0), dtype=np.int64), {"hard_negatives": 0}
    rng = np.random.default_rng(seed)
    weights = np.bincount(np.asarray(positives, dtype=np.int64), minlength=index_size).astype(float) ** exponent
    weights = weights + (weights.sum() == 0)  # no positives counted: uniform
    probabilities = weights / weights.sum()
    chosen = rng.choice(index_size, size=(len(positives), count), p=probabilities)
    for row, right in enumerate(relevant):  # a draw that is an answer of its own query: redrawn from the others
        clashes = [column for column in range(count) if chosen[row, column] in right]
        if clashes:
            others = probabilities.copy()
            others[list(right)] = 0.0
            if others.sum() > 0:
                chosen[row, clashes] = rng.choice(index_size, size=len(clashes), p=others / others.sum())
    facts = {"hard_negatives": count, "sampling": "popularity", "exponent": exponent,
             "distinct_negatives": int(len(np.unique(chosen)))}
    return chosen, facts
