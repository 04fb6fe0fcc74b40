"""Known users' history queries, encoded once at training, so ``recommend(user=...)`` runs no encoder forward.

The text model's query for a user is their most recent items as text; encoding it is most of a
request's time (~20 ms for MiniLM on one core, against a few ms for everything else). A known
user's history is fixed at training, so ``train`` encodes each known user's serving query once and
stores the vectors with the text model (``user_queries.npy`` + ``user_queries.json``: the user ids
and the sha256 of each query text; in the recommender's digest like every file, no pickles). At
score time a user's cached vector is used only when the query built from the history given has
the same digest — so evaluation (train + valid histories) and a history sent in a request still
encode theirs, and a stale entry can never be served. Items added later do not change an existing
item's text, so the cached queries stay valid after ``add-items``.

    cache = UserQueries.build([42, 7], ["Heat (1995) ; Alien (1979)", "Up (2009)"], encoder.encode)
    cache.vector(42, "Heat (1995) ; Alien (1979)")   # (dim,) float32, or None for another text
    cache.save(directory);  UserQueries.load(directory)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fmkit.errors import BadInputError

VECTORS_FILE = "user_queries.npy"
INDEX_FILE = "user_queries.json"


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class UserQueries:
    """user id -> (digest of the query text it was encoded from, its unit vector)."""

    def __init__(self, users: Sequence, digests: Sequence[str], vectors: np.ndarray):
        if not (len(users) == len(digests) == len(vectors)):
            raise BadInputError(f"{len(users)} users, {len(digests)} query digests and {len(vectors)} vectors: "
                                "the cached queries are damaged; retrain the recommender")
        self.users, self.digests = list(users), list(digests)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.row = {user: row for row, user in enumerate(self.users)}

    @classmethod
    def build(cls, users: Sequence, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]) -> "UserQueries":
        """Encode the non-empty ``texts`` (``encode``: list of texts -> (n, dim)); a user without one is left out."""
        kept = [(user, text) for user, text in zip(users, texts) if text]
        vectors = encode([text for _, text in kept]) if kept else np.zeros((0, 0), dtype=np.float32)
        return cls([user for user, _ in kept], [text_digest(text) for _, text in kept], vectors)

    def __len__(self) -> int:
        return len(self.users)

    def vector(self, user, text: str) -> np.ndarray | None:
        """The cached vector of ``user`` if it was encoded from exactly ``text``, else None."""
        row = self.row.get(user) if user is not None else None
        if row is None or self.digests[row] != text_digest(text):
            return None
        return self.vectors[row]

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        np.save(directory / VECTORS_FILE, self.vectors, allow_pickle=False)
        index = {"users": [user.item() if hasattr(user, "item") else user for user in self.users],
                 "sha256": self.digests}
        (directory / INDEX_FILE).write_text(json.dumps(index) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "UserQueries | None":
        """The cache saved in ``directory``, or None when it has none (a text model saved without one)."""
        directory = Path(directory)
        if not (directory / INDEX_FILE).is_file():
            return None
        index = json.loads((directory / INDEX_FILE).read_text(encoding="utf-8"))
        return cls(index["users"], index["sha256"], np.load(directory / VECTORS_FILE, allow_pickle=False))
