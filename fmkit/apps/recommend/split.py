"""The splits every recommender is measured on: a per-user time split and a cold-item hold-out.

Cold items first: ``cold_fraction`` of the items that have interactions are drawn (seeded) and *all*
their interactions leave train/valid/test for ``cold`` — no model sees them in training, so the cold
evaluation asks what a shop asks of a new item. Then each user's remaining interactions, in time
order, are cut: the last ``test_fraction`` is the test, the ``valid_fraction`` before it the
validation slice (tuning), the rest train. A user keeps at least one train interaction; a user with
two gets one train and one test interaction and no validation slice.
"""

from __future__ import annotations

from fmkit.errors import BadInputError


def draw_cold_items(events, fraction: float, seed: int) -> set:
    """``fraction`` of the items with interactions, drawn with ``seed`` (sorted first: the draw is reproducible)."""
    import numpy as np

    items = np.sort(events["item"].unique())
    count = int(round(fraction * len(items)))
    if count == 0:
        return set()
    rng = np.random.default_rng(seed)
    return set(items[rng.choice(len(items), count, replace=False)].tolist())


def time_split(events, test_fraction: float, valid_fraction: float):
    """(train, valid, test): per user, the last ``test_fraction`` in time is the test, the slice before it valid."""
    import numpy as np

    events = events.sort_values(["user", "time"], kind="stable").reset_index(drop=True)
    sizes = events.groupby("user", sort=False)["item"].transform("size").to_numpy()
    rank = events.groupby("user", sort=False).cumcount().to_numpy()
    from_end = sizes - 1 - rank
    n_test = np.where(sizes >= 2, np.maximum(1, np.rint(test_fraction * sizes)), 0).astype(int)
    n_valid = np.rint(valid_fraction * sizes).astype(int)
    n_valid = np.where(sizes - n_test - n_valid >= 1, n_valid, np.maximum(0, sizes - n_test - 1))
    test = from_end < n_test
    valid = ~test & (from_end < n_test + n_valid)
    columns = [c for c in ("user", "item", "time", "rating") if c in events.columns]
    return (events.loc[~test & ~valid, columns].reset_index(drop=True),
            events.loc[valid, columns].reset_index(drop=True),
            events.loc[test, columns].reset_index(drop=True))


def split_interactions(events, items, cfg, drops: dict, facts: dict):
    """Cleaned events + items -> RecData (``cfg``: a RecommendDataConfig)."""
    import pandas as pd

    from fmkit.apps.recommend.data import RecData

    cold_items = draw_cold_items(events, cfg.cold_fraction, cfg.seed)
    is_cold = events["item"].isin(cold_items)
    train, valid, test = time_split(events[~is_cold], cfg.test_fraction, cfg.valid_fraction)
    if train.empty or test.empty:
        raise BadInputError(f"{facts['source']}: the time split left {len(train)} train and {len(test)} test "
                            "interactions; the data needs users with at least two interactions on warm items")
    user_index = pd.Index(sorted(train["user"].unique().tolist()), name="user")
    columns = list(train.columns)
    cold = events.loc[is_cold, columns]
    facts["cold_interactions_without_train_history"] = int((~cold["user"].isin(user_index)).sum())
    cold = cold[cold["user"].isin(user_index)].sort_values(["user", "time"], kind="stable").reset_index(drop=True)
    items = items.sort_values("item", kind="stable").reset_index(drop=True)
    popularity = train["item"].value_counts()
    items["popularity"] = items["item"].map(popularity).fillna(0).astype("int64")
    item_index = pd.Index(items["item"].tolist(), name="item")
    facts.update({"users": len(user_index), "items": len(item_index), "cold_items": len(cold_items),
                  "interactions": {"train": len(train), "valid": len(valid), "test": len(test), "cold": len(cold)},
                  "split": {"test_fraction": cfg.test_fraction, "valid_fraction": cfg.valid_fraction,
                            "cold_fraction": cfg.cold_fraction, "seed": cfg.seed}})
    return RecData(items=items, train=train, valid=valid, test=test, cold=cold, cold_items=cold_items,
                   drops=drops, user_index=user_index, item_index=item_index, facts=facts)

