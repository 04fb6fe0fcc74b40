"""Item-kNN: cosine similarity of items' co-occurrence in users' train histories, kept to k neighbours.

sim(i, j) = |users with i and j| / sqrt(|users with i| * |users with j|); each item keeps its
``neighbours`` most similar items, and a user's score for item j is the sum of sim(i, j) over the
history items i that have j among their neighbours. No user factors: a history sent in a request
(an unseen user) is scored exactly like a known user's.
"""

from __future__ import annotations

import numpy as np

from fmkit.apps.recommend.baselines.base import (BASELINES, history_matrix, item_lookup, load_state, save_state,
                                                  train_matrix)


@BASELINES.register("item-knn")
class ItemKNNScorer:
    name = "item-knn"
    grid = {"neighbours": [5, 10, 20, 50, 100, 200]}

    def __init__(self, neighbours: int = 20, tune: bool = True):
        self.neighbours = neighbours
        self.tune = tune
        self.similarity_ = None  # (n_items, n_items) CSR: row i = item i's neighbours
        self.item_index_ = None
        self.facts_: dict = {}

    def params(self) -> dict:
        return {"neighbours": self.neighbours}

    def fit(self, data) -> "ItemKNNScorer":
        from fmkit.apps.recommend.baselines.tune import tune_

        return tune_(self, data) if self.tune else self.fit_train_(data)

    def fit_train_(self, data) -> "ItemKNNScorer":
        from scipy.sparse import diags

        matrix = train_matrix(data)
        cooccurrence = (matrix.T @ matrix).tocsr()
        cooccurrence.setdiag(0)
        cooccurrence.eliminate_zeros()
        counts = np.asarray(matrix.sum(axis=0)).ravel()
        inverse = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
        cosine = (diags(inverse) @ cooccurrence @ diags(inverse)).tocsr()
        self.similarity_ = keep_top_per_row(cosine, self.neighbours)
        self.item_index_ = data.item_index
        self.facts_ = {"neighbours": self.neighbours, "similarities": int(self.similarity_.nnz)}
        return self

    def score(self, users: list, histories: list[list]) -> np.ndarray:
        matrix = history_matrix(self.item_index_, histories, item_lookup(self))
        return np.asarray((matrix @ self.similarity_).todense(), dtype=np.float32)

    def save(self, directory) -> None:
        s = self.similarity_
        save_state(directory, self.name, self.params(), self.item_index_,
                   {"data": s.data.astype(np.float32), "indices": s.indices.astype(np.int64),
                    "indptr": s.indptr.astype(np.int64)})

    @classmethod
    def load(cls, directory) -> "ItemKNNScorer":
        from scipy.sparse import csr_matrix

        params, item_index, arrays = load_state(directory, cls.name, ("data", "indices", "indptr"))
        model = cls(**params, tune=False)
        n = len(item_index)
        model.item_index_ = item_index
        model.similarity_ = csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n, n))
        return model


def keep_top_per_row(matrix, k: int):
    """The ``k`` largest entries of each CSR row (ties: the lower column), the rest dropped."""
    from scipy.sparse import csr_matrix

    matrix = matrix.tocsr()
    data, indices, indptr = [], [], [0]
    for row in range(matrix.shape[0]):
        start, stop = matrix.indptr[row], matrix.indptr[row + 1]
        values, columns = matrix.data[start:stop], matrix.indices[start:stop]
        if len(values) > k:
            keep = np.lexsort((columns, -values))[:k]
            values, columns = values[keep], columns[keep]
        order = np.argsort(columns)
        data.append(values[order])
        indices.append(columns[order])
        indptr.append(indptr[-1] + len(values))
    return csr_matrix((np.concatenate(data).astype(np.float32), np.concatenate(indices), np.asarray(indptr)),
                      shape=matrix.shape)
