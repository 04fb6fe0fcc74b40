"""Experiment tracking: fmkit runs and bundles in MLflow.

``fmkit runs export --mlflow URI`` copies the workspace run registry and its bundles' manifests into an
MLflow tracking store after the fact (fmkit/tracking/mlflow_export.py); ``--mlflow URI`` on a training
stage logs while it trains (fmkit/tracking/live.py). mlflow is imported only inside the functions that
talk to a store, so ``import fmkit`` and ``fmkit --help`` stay cheap.
"""
