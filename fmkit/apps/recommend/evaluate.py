"""Every model side by side on the same split: the same users, histories, masks and tie-breaking.

    results = evaluate_models({"popularity": pop, "als": als}, data)   # split="test" + the cold items
    results["als"]["ndcg@10"], results["als"]["cold.ndcg@10"]

Test: each test user is scored from their train + valid history; items in that history are masked
(seen items are never recommended) and the user's test items are the relevant ones, ranked over the
whole catalogue except the cold items (held out of every split but ``cold``). Cold
(``cold.*``): the users who interacted with cold items, the same history, the candidates the cold
items only and the relevant ones the cold items they chose — the question a shop asks of new items.
Valid (``split="valid"``, tuning): train history only, valid items relevant, no cold part.
"""

from __future__ import annotations

import time

import numpy as np

from fmkit.apps.recommend.metrics import rank_users, summarise, tie_permutation
from fmkit.errors import BadInputError

SPLITS = ("valid", "test")


def evaluate_models(models: dict, data, split: str = "test", *, k: int = 10, cold: bool = True,
                    batch_size: int = 256, seed: int = 0, log=lambda message: None) -> dict:
    """{model name: {"ndcg@10", "recall@10", "mrr", "coverage", "users", "cold.ndcg@10", ...}}."""
    return evaluate_models_detailed(models, data, split, k=k, cold=cold, batch_size=batch_size, seed=seed,
                                    log=log)[0]


def evaluate_models_detailed(models: dict, data, split: str = "test", *, k: int = 10, cold: bool = True,
                             batch_size: int = 256, seed: int = 0, log=lambda message: None):
    """(the summary of ``evaluate_models``, a per-user DataFrame [model, part, user, history_length, ndcg@k,
    recall@k, reciprocal_rank]) — the per-user rows feed the report's NDCG-by-history-length plot."""
    import pandas as pd

    if split not in SPLITS:
        raise BadInputError(f"split={split!r}: evaluate on one of {', '.join(SPLITS)}")
    parts = {"": _part(data, data.split(split), split, exclude=data.cold_items)}
    if cold and split == "test" and len(data.cold_items):
        parts["cold."] = _part(data, data.cold, "test", only=data.cold_items)
    users = sorted(set().union(*(part["users"] for part in parts.values())))
    histories = data.histories(users, "valid" if split == "valid" else "test")
    row_of = {user: row for row, user in enumerate(users)}
    permutation = tie_permutation(data.n_items, seed)
    results, rows = {}, []
    for name, model in models.items():
        started = time.perf_counter()
        scores = score_in_batches(model, users, histories, data.n_items, batch_size)
        seconds = time.perf_counter() - started
        summary: dict = {}
        for prefix, part in parts.items():
            picked = np.array([row_of[user] for user in part["users"]], dtype=np.int64)
            masked = scores[picked].astype(np.float64, copy=True)
            masked[~np.isfinite(masked)] = np.finfo(np.float64).min  # a model's own -inf stays rankable, last
            masked[:, ~part["candidates"]] = -np.inf
            for row, user_row in enumerate(picked):
                seen = data.item_positions(histories[user_row])
                masked[row, seen[seen >= 0]] = -np.inf
            ndcg, recall, reciprocal, top = rank_users(masked, part["relevant"], k, permutation)
            summary.update(summarise(ndcg, recall, reciprocal, top, int(part["candidates"].sum()), k, prefix))
            rows.append(pd.DataFrame({"model": name, "part": prefix.rstrip(".") or split, "user": part["users"],
                                      "history_length": [len(histories[row_of[u]]) for u in part["users"]],
                                      f"ndcg@{k}": ndcg, f"recall@{k}": recall, "reciprocal_rank": reciprocal}))
        summary["score_ms_per_user"] = round(1000 * seconds / max(1, len(users)), 3)
        results[name] = summary
        log(f"  {name}: " + ", ".join(f"{key} {value}" for key, value in summary.items()))
    per_user = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return results, per_user


def _part(data, frame, split: str, *, exclude=(), only=None) -> dict:
    """Users, their relevant column positions, and the candidate mask of one evaluated part."""
    frame = frame[frame["user"].isin(data.user_index)]
    grouped = frame.groupby("user", sort=True)["item"].agg(list)
    candidates = np.ones(data.n_items, dtype=bool)
    if only is not None:
        candidates[:] = False
        positions = data.item_positions(sorted(only))
        candidates[positions[positions >= 0]] = True
    elif len(exclude):
        positions = data.item_positions(sorted(exclude))
        candidates[positions[positions >= 0]] = False
    relevant = []
    for items in grouped.tolist():
        positions = data.item_positions(items)
        relevant.append(positions[(positions >= 0)])
    return {"users": grouped.index.tolist(), "relevant": relevant, "candidates": candidates}


def score_in_batches(model, users: list, histories: list[list], n_items: int, batch_size: int) -> np.ndarray:
    """The model's (len(users), n_items) scores, a batch of users at a time; the shape is checked."""
    out = np.empty((len(users), n_items), dtype=np.float32)
    for start in range(0, len(users), batch_size):
        stop = start + batch_size
        scores = np.asarray(model.score(users[start:stop], histories[start:stop]), dtype=np.float32)
        if scores.shape != (len(users[start:stop]), n_items):
            raise ValueError(f"{getattr(model, 'name', type(model).__name__)}.score returned shape {scores.shape}; "
                             f"the scorer protocol wants (users, items) = {(len(users[start:stop]), n_items)}")
        out[start:stop] = scores
    return out
