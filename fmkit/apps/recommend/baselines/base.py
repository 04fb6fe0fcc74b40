"""The scorer protocol every recommender model follows, and the registry of the baselines.

    class Scorer(Protocol):
        name: str
        def fit(self, data: RecData) -> Scorer: ...                       # learns from data.train only
        def score(self, users: list, histories: list[list]) -> np.ndarray  # (len(users), data.n_items)

Column ``j`` of ``score`` is ``data.item_index[j]``; higher is better. ``histories[i]`` is what is
known about ``users[i]`` (item ids, oldest first: ``data.histories(users, split)``); a user unseen at
fit time is scored from the history alone, so a request can carry it. Seen items are not filtered
by the scorer: ``evaluate_models`` (and the serving layer) mask them. A baseline registers itself in
its own file (``@BASELINES.register("als")``) with a small grid it is tuned over on the validation
slice (``tune.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

from fmkit.registry import Registry


@runtime_checkable
class Scorer(Protocol):
    name: str

    def fit(self, data) -> "Scorer": ...

    def score(self, users: list, histories: list[list]) -> Any: ...


@dataclass(frozen=True)
class Baseline:
    """How to build one baseline: ``make(**params) -> Scorer`` and the grid it is tuned over (valid slice)."""

    description: str
    make: Callable[..., Scorer]
    grid: dict[str, list] = field(default_factory=dict)


BASELINES: Registry[Baseline] = Registry("recommender baseline")


def history_matrix(data, histories: list[list]):
    """(len(histories), n_items) CSR of 0/1: each history's items in column order (unknown ids skipped)."""
    import numpy as np
    from scipy.sparse import csr_matrix

    rows, columns = [], []
    for row, history in enumerate(histories):
        positions = data.item_positions(history) if len(history) else np.empty(0, dtype=np.int64)
        positions = np.unique(positions[positions >= 0])
        rows.append(np.full(len(positions), row))
        columns.append(positions)
    rows_ = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    columns_ = np.concatenate(columns) if columns else np.empty(0, dtype=np.int64)
    return csr_matrix((np.ones(len(rows_), dtype=np.float32), (rows_, columns_)),
                      shape=(len(histories), data.n_items))


def interaction_matrix(data, frame):
    """(n_users, n_items) CSR of 0/1 over ``data.user_index`` x ``data.item_index`` from a [user, item] frame."""
    import numpy as np
    from scipy.sparse import csr_matrix

    rows = data.user_index.get_indexer(frame["user"].tolist())
    columns = data.item_positions(frame["item"].tolist())
    keep = (rows >= 0) & (columns >= 0)
    matrix = csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], columns[keep])),
                        shape=(len(data.user_index), data.n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix
