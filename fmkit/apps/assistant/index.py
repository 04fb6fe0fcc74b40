"""Search the index: dense (exact numpy, or an HNSW graph past a size), BM25, and their fusion.

The embeddings are the stored artifact (``index/embeddings.npy``); the HNSW graph and the BM25
statistics are rebuilt from them and from the entry texts when the assistant opens, so the
directory holds only npy and JSON (no library's private format, nothing unpickled).
"""

from __future__ import annotations

import numpy as np

RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al. 2009): damps the weight of the very top ranks
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200


class DenseIndex:
    """Inner-product search over L2-normalised embeddings (= cosine)."""

    def __init__(self, embeddings: np.ndarray, *, ann_threshold: int, seed: int = 0):
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.kind = "hnsw" if len(self.embeddings) > ann_threshold else "exact"
        self.graph = None
        if self.kind == "hnsw":
            import hnswlib

            count, dimension = self.embeddings.shape
            self.graph = hnswlib.Index(space="ip", dim=dimension)
            self.graph.init_index(max_elements=count, ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M,
                                  random_seed=seed)
            self.graph.add_items(self.embeddings, np.arange(count))

    def __len__(self) -> int:
        return len(self.embeddings)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(entry indices, cosine scores) of the ``k`` nearest entries, best first."""
        k = min(k, len(self))
        if self.graph is not None:
            self.graph.set_ef(max(2 * k, 64))
            labels, distances = self.graph.knn_query(query[None, :], k=k)
            return labels[0].astype(np.int64), (1.0 - distances[0]).astype(np.float32)
        scores = self.embeddings @ query
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return top, scores[top]

    def scores_of(self, query: np.ndarray, indices: np.ndarray) -> np.ndarray:
        return self.embeddings[indices] @ query


class LexicalIndex:
    """BM25 (bm25s, English stop words) over the entry texts."""

    def __init__(self, texts: list[str]):
        import bm25s

        self._tokenize = bm25s.tokenize
        self.bm25 = bm25s.BM25()
        self.bm25.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(entry indices, BM25 scores) of the best ``k`` entries sharing a word with ``query``."""
        tokens = self._tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
        if not tokens:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        scores = np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)
        matched = np.flatnonzero(scores > 0)
        top = matched[np.argsort(-scores[matched], kind="stable")][:k]
        return top, scores[top]


def reciprocal_rank_fusion(rankings: list[np.ndarray], k: int = RRF_K) -> tuple[np.ndarray, np.ndarray]:
    """Entries of several rankings ordered by sum(1 / (k + rank)): (indices, fused scores), best first."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, index in enumerate(ranking.tolist(), start=1):
            fused[index] = fused.get(index, 0.0) + 1.0 / (k + rank)
    order = sorted(fused, key=lambda index: -fused[index])
    return np.array(order, dtype=np.int64), np.array([fused[i] for i in order], dtype=np.float32)
