"""The recommender's data, stored beside its models: the item catalogue, the users and the split as arrays.

``evaluate`` re-scores the very split the models were trained and tuned on (read back from these
files, not re-derived from the source, which may have changed), and the server ranks a known user
from their stored history. JSON and one ``.npz`` of integer arrays: no pickle, no pandas format.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError

SPLITS = ("train", "valid", "test", "cold")  # split code = position
ITEM_FIELDS = ("title", "text", "genres", "year", "plot", "plot_summary", "popularity")


def _plain(value):
    """A JSON-ready value: numpy scalars unwrapped, NaN -> None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def item_records(items) -> list[dict]:
    """One dict per item in score-column order: ``id`` plus the catalogue fields the table has."""
    fields = [f for f in ITEM_FIELDS if f in items.columns]
    return [{"id": _plain(row["item"]), **{f: _plain(row[f]) for f in fields}}
            for row in items[["item", *fields]].to_dict("records")]


def write_catalog(directory: Path, data) -> dict:
    """Write catalog/items.json, users.json and interactions.npz for ``data`` (a RecData); returns a summary."""
    import pandas as pd

    from fmkit.apps.recommend.store import INTERACTIONS, ITEMS, USERS
    from fmkit.fileio import write_json_atomic

    directory = Path(directory)
    (directory / ITEMS).parent.mkdir(parents=True, exist_ok=True)
    items = item_records(data.items)
    frames = [data.split(name).assign(split=code) for code, name in enumerate(SPLITS)]
    events = pd.concat(frames, ignore_index=True)
    indexed = [_plain(user) for user in data.user_index]
    extra = [_plain(user) for user in pd.unique(events["user"]) if user not in set(data.user_index)]
    users = indexed + extra
    user_row = {user: row for row, user in enumerate(users)}
    item_column = {entry["id"]: column for column, entry in enumerate(items)}
    arrays = {"user": events["user"].map(lambda u: user_row[_plain(u)]).to_numpy(np.int32),
              "item": events["item"].map(lambda i: item_column[_plain(i)]).to_numpy(np.int32),
              "time": pd.to_datetime(events["time"], utc=True).astype("int64").to_numpy(np.int64),
              "split": events["split"].to_numpy(np.int8),
              "cold_items": np.array(sorted(item_column[_plain(i)] for i in data.cold_items), dtype=np.int32)}
    write_json_atomic(directory / ITEMS, items)
    write_json_atomic(directory / USERS, users)
    with open(directory / INTERACTIONS, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return {"items": len(items), "users": len(users), "indexed_users": len(indexed),
            "cold_items": len(data.cold_items), "interactions": {name: int(len(data.split(name))) for name in SPLITS}}


def stored_data(path: Path, manifest: dict):
    """The RecData a recommender was trained on, rebuilt from its catalog (items added later are left out)."""
    import pandas as pd

    from fmkit.apps.recommend.data import RecData
    from fmkit.apps.recommend.recommender import read_catalog

    catalog, users, arrays = read_catalog(Path(path))
    trained = catalog[:manifest["trained_items"]]
    if not trained:
        raise BadInputError(f"{path}: its catalogue is empty; retrain the recommender")
    items = pd.DataFrame([{"item": entry["id"], **{k: v for k, v in entry.items() if k != "id"}} for entry in trained])
    item_ids = items["item"].to_numpy()
    user_ids = np.array(users, dtype=object)
    frames = {}
    for code, name in enumerate(SPLITS):
        keep = arrays["split"] == code
        frames[name] = pd.DataFrame({"user": pd.Series(user_ids[arrays["user"][keep]]).infer_objects(),
                                     "item": item_ids[arrays["item"][keep]],
                                     "time": pd.to_datetime(arrays["time"][keep], utc=True)})
    indexed = manifest["data"]["indexed_users"]
    return RecData(items=items, train=frames["train"], valid=frames["valid"], test=frames["test"],
                   cold=frames["cold"], cold_items={_plain(i) for i in item_ids[arrays["cold_items"]]},
                   drops=dict(manifest["data"].get("drops", {})),
                   user_index=pd.Index(pd.Series(users[:indexed]).infer_objects()), item_index=pd.Index(item_ids),
                   facts=dict(manifest["data"].get("facts", {})))
