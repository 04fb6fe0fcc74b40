"""Recommender baselines: popularity, item-kNN, ALS and BPR, each registered in its own file.

    from fmkit.apps.recommend.baselines import BASELINES
    scorer = BASELINES["item-knn"]().fit(data)           # tuned on data.valid over the class's grid
    BASELINES["als"](factors=64, tune=False).fit(data)   # fixed settings
"""

from fmkit.apps.recommend.baselines import als, bpr, item_knn, popularity  # noqa: F401  (register themselves)
from fmkit.apps.recommend.baselines.base import BASELINES, Scorer

__all__ = ["BASELINES", "Scorer"]
