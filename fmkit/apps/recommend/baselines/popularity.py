"""Popularity: every user gets the items most interacted with in the train split (the floor to beat)."""

from __future__ import annotations

import numpy as np

from fmkit.apps.recommend.baselines.base import BASELINES, load_state, save_state


@BASELINES.register("popularity")
class PopularityScorer:
    """Score = the item's train interaction count; the history does not matter (only the seen mask)."""

    name = "popularity"
    grid: dict = {}

    def __init__(self, tune: bool = True):
        self.tune = tune
        self.counts_: np.ndarray | None = None
        self.item_index_ = None
        self.facts_: dict = {}

    def params(self) -> dict:
        return {}

    def fit(self, data) -> "PopularityScorer":
        return self.fit_train_(data)

    def fit_train_(self, data) -> "PopularityScorer":
        counts = data.train["item"].value_counts()
        self.item_index_ = data.item_index
        self.counts_ = np.asarray(counts.reindex(data.item_index).fillna(0).to_numpy(), dtype=np.float32)
        self.facts_ = {"items_with_interactions": int((self.counts_ > 0).sum())}
        return self

    def score(self, users: list, histories: list[list]) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(users), len(self.counts_))).copy()

    def save(self, directory) -> None:
        save_state(directory, self.name, self.params(), self.item_index_, {"counts": self.counts_})

    @classmethod
    def load(cls, directory) -> "PopularityScorer":
        _, item_index, arrays = load_state(directory, cls.name, ("counts",))
        model = cls(tune=False)
        model.item_index_, model.counts_ = item_index, arrays["counts"].astype(np.float32)
        return model
