"""The text-aware recommender (issue 18): data and splits (data.py, split.py), baselines, the text interest
model, the hybrid ranker, evaluation side by side (evaluate.py).

Kept free of imports so ``import fmkit.apps.recommend.data`` stays cheap; import the modules you need.
"""
