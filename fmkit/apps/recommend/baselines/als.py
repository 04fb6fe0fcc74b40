"""ALS (implicit's AlternatingLeastSquares): matrix factorisation of the 0/1 train matrix, confidence ``alpha``.

At score time every user's factors are solved from the history given (the exact ALS user step with
the item factors fixed, as implicit's ``recalculate_user`` does it, in numpy: ``user_step``), so the
validation items a test user has count, and a user unseen at training is ranked from the history in
the request.
"""

from __future__ import annotations

import numpy as np

from fmkit.apps.recommend.baselines.base import (BASELINES, history_positions, item_lookup, load_state, save_state,
                                                  train_matrix)


@BASELINES.register("als")
class ALSScorer:
    name = "als"
    grid = {"factors": [16, 32, 64], "regularization": [0.01, 0.05, 0.5], "alpha": [1.0, 5.0, 20.0]}

    def __init__(self, factors: int = 32, regularization: float = 0.05, alpha: float = 5.0, iterations: int = 15,
                 seed: int = 0, threads: int = 0, tune: bool = True):
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed, self.threads, self.tune = iterations, seed, threads, tune
        self.model_ = None
        self.item_index_ = None
        self.facts_: dict = {}

    def params(self) -> dict:
        return {"factors": self.factors, "regularization": self.regularization, "alpha": self.alpha,
                "iterations": self.iterations, "seed": self.seed, "threads": self.threads}

    def fit(self, data) -> "ALSScorer":
        from fmkit.apps.recommend.baselines.tune import tune_

        return tune_(self, data) if self.tune else self.fit_train_(data)

    def _new_model(self):
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit warns at construction when BLAS runs its own threads
            return AlternatingLeastSquares(factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                                           iterations=self.iterations, random_state=self.seed,
                                           num_threads=self.threads)

    def fit_train_(self, data) -> "ALSScorer":
        from threadpoolctl import threadpool_limits

        self.model_ = self._new_model()
        with threadpool_limits(1, "blas"):  # implicit's own threads do the work; nested BLAS threads slow it
            self.model_.fit(train_matrix(data), show_progress=False)
        self.item_index_ = data.item_index
        self.facts_ = self.params()
        return self

    def score(self, users: list, histories: list[list]) -> np.ndarray:
        item_factors = np.asarray(self.model_.item_factors, dtype=np.float32)
        lookup = item_lookup(self)
        factors = np.stack([self.user_step(history_positions(lookup, history)) for history in histories]) \
            if len(histories) else np.zeros((0, item_factors.shape[1]), dtype=np.float32)
        return factors @ item_factors.T

    def user_step(self, positions: np.ndarray) -> np.ndarray:
        """A user's factors from their history's item columns: implicit's ``recalculate_user`` (the exact ALS
        user step, its Cholesky solve) in numpy, without its per-call overhead (sparse matrix, thread pool):
        (YᵀY + λI + (α-1)·Y_hᵀY_h) x = α·Σ_h y_h over the history's rows Y_h; no history gives 0."""
        item_factors = self.model_.item_factors
        if not len(positions):
            return np.zeros(item_factors.shape[1], dtype=np.float32)
        rows = np.asarray(item_factors[positions], dtype=np.float64)
        system = self._gram() + (self.alpha - 1.0) * (rows.T @ rows)
        return np.linalg.solve(system, self.alpha * rows.sum(axis=0)).astype(np.float32)

    def _gram(self) -> np.ndarray:
        """YᵀY + λI over every item (float64), built once per item-factor matrix."""
        item_factors = self.model_.item_factors
        cached = self.__dict__.get("_gram_cache")
        if cached is None or cached[0] is not item_factors:
            factors = np.asarray(item_factors, dtype=np.float64)
            cached = (item_factors, factors.T @ factors + self.regularization * np.eye(factors.shape[1]))
            self.__dict__["_gram_cache"] = cached
        return cached[1]

    def save(self, directory) -> None:
        save_state(directory, self.name, self.params(), self.item_index_,
                   {"item_factors": np.asarray(self.model_.item_factors, dtype=np.float32)})

    @classmethod
    def load(cls, directory) -> "ALSScorer":
        params, item_index, arrays = load_state(directory, cls.name, ("item_factors",))
        model = cls(**params, tune=False)
        model.item_index_ = item_index
        model.model_ = model._new_model()
        model.model_.item_factors = arrays["item_factors"].astype(np.float32)
        return model
