"""BPR (implicit's BayesianPersonalizedRanking): pairwise ranking loss on the 0/1 train matrix.

Known users are scored with their learned factors (their train history); a user unseen at training
is folded in as the mean of their history items' factors — BPR has no closed-form user step, and
the mean keeps a request's history meaningful without retraining.
"""

from __future__ import annotations

import numpy as np

from fmkit.apps.recommend.baselines.base import (BASELINES, history_positions, index_lookup, item_lookup, load_state,
                                                  save_state, train_matrix)


@BASELINES.register("bpr")
class BPRScorer:
    name = "bpr"
    grid = {"factors": [64, 128], "learning_rate": [0.005, 0.01, 0.05], "regularization": [0.0001, 0.001, 0.01]}

    def __init__(self, factors: int = 128, learning_rate: float = 0.01, regularization: float = 0.001,
                 iterations: int = 100, seed: int = 0, threads: int = 1, tune: bool = True):
        # one thread by default: implicit's multi-threaded BPR updates factors racily (Hogwild), so two runs
        # with the same seed differ; one thread makes the figures reproducible (threads=0: all cores)
        self.factors, self.learning_rate, self.regularization = factors, learning_rate, regularization
        self.iterations, self.seed, self.threads, self.tune = iterations, seed, threads, tune
        self.user_factors_: np.ndarray | None = None
        self.item_factors_: np.ndarray | None = None
        self.user_index_ = None
        self.item_index_ = None
        self.facts_: dict = {}

    def params(self) -> dict:
        return {"factors": self.factors, "learning_rate": self.learning_rate, "regularization": self.regularization,
                "iterations": self.iterations, "seed": self.seed, "threads": self.threads}

    def fit(self, data) -> "BPRScorer":
        from fmkit.apps.recommend.baselines.tune import tune_

        return tune_(self, data) if self.tune else self.fit_train_(data)

    def fit_train_(self, data) -> "BPRScorer":
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking(factors=self.factors, learning_rate=self.learning_rate,
                                            regularization=self.regularization, iterations=self.iterations,
                                            random_state=self.seed, num_threads=self.threads)
        model.fit(train_matrix(data), show_progress=False)
        # implicit appends a bias column to the item factors and a constant 1 to the user factors
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        self.user_index_, self.item_index_ = data.user_index, data.item_index
        self.facts_ = self.params()
        return self

    def score(self, users: list, histories: list[list]) -> np.ndarray:
        user_rows, lookup = index_lookup(self, "user_index_"), item_lookup(self)
        factors = np.empty((len(users), self.item_factors_.shape[1]), dtype=np.float32)
        for row, (user, history) in enumerate(zip(users, histories)):
            known = user_rows.get(user) if user is not None else None
            if known is not None:
                factors[row] = self.user_factors_[known]
            else:  # folded in: the mean of the history's item factors
                positions = history_positions(lookup, history)
                factors[row] = self.item_factors_[positions].mean(axis=0) if len(positions) else 0.0
                factors[row, -1] = 1.0  # the bias column's partner
        return factors @ self.item_factors_.T

    def save(self, directory) -> None:
        from fmkit.apps.recommend.baselines.base import _id_array

        save_state(directory, self.name, self.params(), self.item_index_,
                   {"user_factors": self.user_factors_, "item_factors": self.item_factors_,
                    "users": _id_array(self.user_index_)})

    @classmethod
    def load(cls, directory) -> "BPRScorer":
        import pandas as pd

        params, item_index, arrays = load_state(directory, cls.name, ("user_factors", "item_factors", "users"))
        model = cls(**params, tune=False)
        model.item_index_, model.user_index_ = item_index, pd.Index(arrays["users"].tolist(), name="user")
        model.user_factors_, model.item_factors_ = arrays["user_factors"], arrays["item_factors"]
        return model
