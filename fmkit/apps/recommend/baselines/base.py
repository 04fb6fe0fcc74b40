"""The scorer protocol every recommender model follows, and the registry of the baselines.

    class Scorer(Protocol):
        name: str
        def fit(self, data: RecData) -> Scorer: ...                       # learns from data.train only
        def score(self, users: list, histories: list[list]) -> np.ndarray  # (len(users), data.n_items)

Column ``j`` of ``score`` is ``data.item_index[j]``; higher is better. ``histories[i]`` is what is
known about ``users[i]`` (item ids, oldest first: ``data.histories(users, split)``); a user unseen at
fit time is scored from the history alone, so a request can carry it. Seen items are not filtered
by the scorer: ``evaluate_models`` (and the serving layer) mask them.

A baseline is a class in its own file, registered by name (``@BASELINES.register("als")``): the
constructor only stores settings; ``fit(data)`` tunes them over the class's small ``grid`` on the
validation slice (``tune.py``; ``tune=False`` skips it) and learns from the train split;
``save(directory)`` writes JSON + ``.npy`` (never a pickle) and ``load(directory)`` reads them back.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from fmkit.registry import Registry


@runtime_checkable
class Scorer(Protocol):
    name: str

    def fit(self, data) -> "Scorer": ...

    def score(self, users: list, histories: list[list]) -> Any: ...


class BaselineRegistry(Registry):
    """Name -> scorer class; ``BASELINES["als"]()`` builds one with its defaults (tuned on ``fit``)."""

    def __getitem__(self, name: str):
        return self.get(name)


BASELINES: BaselineRegistry = BaselineRegistry("recommender baseline")


def index_lookup(model, attribute: str = "item_index_") -> dict:
    """id -> position in ``model.<attribute>`` (its item or user index), built once per index (a request must
    not rebuild it, and pandas' ``get_indexer`` costs ~0.3 ms a call)."""
    index = getattr(model, attribute)
    key = f"_lookup{attribute}"
    cached = model.__dict__.get(key)
    if cached is None or cached[0] is not index:
        cached = (index, {value: position for position, value in enumerate(list(index))})
        model.__dict__[key] = cached
    return cached[1]


def item_lookup(model) -> dict:
    """item id -> column of ``model.item_index_`` (index_lookup)."""
    return index_lookup(model, "item_index_")


def history_positions(lookup: dict, history) -> np.ndarray:
    """The sorted unique columns of a history's items (ids the lookup lacks skipped)."""
    import numpy as np

    positions = [lookup[item] for item in history if item in lookup]
    return np.unique(np.asarray(positions, dtype=np.int64))


def history_matrix(item_index, histories: list[list], lookup: dict | None = None):
    """(len(histories), n_items) CSR of 0/1: each history's items in ``item_index`` order (unknown ids skipped)."""
    import numpy as np
    from scipy.sparse import csr_matrix

    if lookup is None:
        lookup = {item: column for column, item in enumerate(list(item_index))}
    columns = [history_positions(lookup, history) for history in histories]
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in columns])]).astype(np.int64)
    indices = np.concatenate(columns) if columns else np.empty(0, dtype=np.int64)
    return csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                      shape=(len(histories), len(item_index)))


def train_matrix(data):
    """(n_users, n_items) CSR of 0/1 from the train split over ``data.user_index`` x ``data.item_index``."""
    histories = data.train.groupby("user", sort=False)["item"].agg(list).reindex(data.user_index).tolist()
    return history_matrix(data.item_index, [h if isinstance(h, list) else [] for h in histories])


def save_state(directory, name: str, params: dict, item_index, arrays: dict) -> None:
    """``params.json`` + ``items.npy`` + one ``.npy`` per array: no pickles (allow_pickle=False on both sides)."""
    import json
    from pathlib import Path

    import numpy as np

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "params.json").write_text(json.dumps({"name": name, "params": params}, indent=2), encoding="utf-8")
    np.save(directory / "items.npy", _id_array(item_index), allow_pickle=False)
    for key, array in arrays.items():
        np.save(directory / f"{key}.npy", np.asarray(array), allow_pickle=False)


def load_state(directory, name: str, keys: tuple[str, ...]):
    """(params, item_index, {key: array}) written by ``save_state``; a wrong or incomplete folder is bad input."""
    import json
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from fmkit.errors import BadInputError

    directory = Path(directory)
    try:
        meta = json.loads((directory / "params.json").read_text(encoding="utf-8"))
        if meta.get("name") != name:
            raise BadInputError(f"{directory} holds the {meta.get('name')!r} baseline, not {name!r}")
        items = np.load(directory / "items.npy", allow_pickle=False)
        arrays = {key: np.load(directory / f"{key}.npy", allow_pickle=False) for key in keys}
    except BadInputError:
        raise
    except (OSError, ValueError) as error:
        raise BadInputError(f"{directory}: not a saved {name} baseline ({error}); "
                            "train the recommender again") from None
    return meta["params"], pd.Index(items.tolist(), name="item"), arrays


def _id_array(item_index):
    import numpy as np

    values = list(item_index)
    if all(isinstance(v, (int, np.integer)) for v in values):
        return np.asarray(values, dtype=np.int64)
    return np.asarray([str(v) for v in values], dtype=str)
