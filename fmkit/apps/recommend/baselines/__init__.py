"""Recommender baselines: popularity, item-kNN, ALS and BPR, each registered in its own file.

    from fmkit.apps.recommend.baselines import BASELINES, tune_baselines
    scorer = BASELINES.get("item-knn").make(neighbours=100).fit(data)
"""

from fmkit.apps.recommend.baselines.base import BASELINES, Baseline, Scorer

__all__ = ["BASELINES", "Baseline", "Scorer"]
