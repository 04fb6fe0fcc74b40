"""Every model of a recommender side by side, and its NDCG@10 by how much history a user has.

``train`` runs it on the fresh models; ``fmkit recommend evaluate`` runs it again on the stored
models and the stored split (the same users, histories, masks and tie-breaking: R1's
``evaluate_models_detailed``), so the two agree to the last digit. The history-length breakdown asks
whether the text model helps where collaborative signals are thin (users with few items).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

# users by their known history (train + valid items) at test time: edges of each bucket, inclusive
HISTORY_BUCKETS = ((1, 10), (11, 25), (26, 50), (51, 100), (101, None))


def bucket_label(low: int, high: int | None) -> str:
    return f"{low}+" if high is None else f"{low}-{high}"


def by_history_length(per_user, part: str = "test", k: int = 10) -> dict:
    """{"buckets": [...], "users": [...], "ndcg@10": {model: [mean per bucket or None]}} over ``part``'s users."""
    rows = per_user[per_user["part"] == part] if len(per_user) else per_user
    buckets, counts, values = [], [], {}
    for low, high in HISTORY_BUCKETS:
        length = rows["history_length"] if len(rows) else None
        inside = rows[(length >= low) & ((length <= high) if high is not None else True)] if len(rows) else rows
        if not len(inside):
            continue  # a bucket no user falls in is left out of the table and the plot
        buckets.append(bucket_label(low, high))
        counts.append(int(inside["user"].nunique()))
        for model in (rows["model"].unique().tolist() if len(rows) else []):
            mine = inside[inside["model"] == model][f"ndcg@{k}"] if len(inside) else []
            values.setdefault(model, []).append(round(float(np.mean(mine)), 4) if len(mine) else None)
    return {"part": part, "buckets": buckets, "users": counts, f"ndcg@{k}": values}


def evaluate_all(models: dict, data, *, log=lambda message: None) -> dict:
    """The manifest's evaluation keys: ``evaluation`` (per model), ``by_history_length``, ``evaluated_at``."""
    from fmkit.apps.recommend.evaluate import evaluate_models_detailed

    started = time.perf_counter()
    summary, per_user = evaluate_models_detailed(models, data, "test", log=log)
    return {"evaluation": summary, "by_history_length": by_history_length(per_user),
            "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "evaluation_seconds": round(time.perf_counter() - started, 1)}


class TrainedColumns:
    """A stored model scored over the items it was trained with only (items added later are left out of
    the evaluation: the stored split has no interactions with them)."""

    def __init__(self, model, n_items: int):
        self.model, self.n_items = model, n_items
        self.name = getattr(model, "name", type(model).__name__)

    def score(self, users, histories):
        return np.asarray(self.model.score(users, histories))[:, :self.n_items]


def evaluate_directory(path, *, write_report: bool = True, log=lambda message: None) -> dict:
    """Re-evaluate recommender ``path``'s stored models on its stored split; reports/ is rewritten."""
    from fmkit.apps.recommend.catalog import stored_data
    from fmkit.apps.recommend.recommender import Recommender

    recommender = Recommender.open(Path(path))
    data = stored_data(recommender.path, recommender.manifest)
    models = {name: TrainedColumns(model, data.n_items) for name, model in recommender.models.items()}
    result = evaluate_all(models, data, log=log)
    if write_report:
        from fmkit.apps.recommend.report import write_report

        result["report"] = str(write_report(recommender.path, result))
    return result
