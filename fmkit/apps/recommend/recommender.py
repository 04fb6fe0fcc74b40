"""A recommender opened for use: ``Recommender.open(path).recommend(user=42)``.

The directory is verified (every file's digest, the manifest's seal) before anything is loaded.
A known user is ranked from everything they did up to training; a user the recommender has never
seen is ranked from the history sent with the request (item ids, oldest first) — every model reads
the history, none needs the user id. Items added after training (``add_items``) are embedded by the
text model and become rankable at once: the collaborative models have no interactions for them, so
they score them 0, exactly as they score the cold items the hybrid ranker was trained with.

    recommender = Recommender.open("recommenders/movies")
    recommender.recommend(user=42, k=10)["items"][0]   # {"rank": 1, "item": 318, "title": ..., "score": ...}
    recommender.recommend(history=[318, 296, 593])      # a user unseen at training
    recommender.similar(318, k=10)                      # items like item 318 (the text model by default)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from fmkit.errors import BadInputError

DEFAULT_K = 10
MAX_K = 100
MAX_HISTORY = 500  # items a request's history may hold: the text query reads the most recent ones anyway


class PaddedScorer:
    """A collaborative scorer over the items it was fitted on, scoring items added later 0 (no interactions)
    and ignoring them in a history it is given."""

    def __init__(self, model, trained_items: Sequence, n_items: int):
        self.model, self.trained, self.n_items = model, set(trained_items), n_items
        self.name = getattr(model, "name", type(model).__name__)

    def score(self, users, histories) -> np.ndarray:
        known = [[item for item in history if item in self.trained] for history in histories]
        scores = np.asarray(self.model.score(list(users), known), dtype=np.float32)
        if scores.shape[1] < self.n_items:
            scores = np.pad(scores, ((0, 0), (0, self.n_items - scores.shape[1])))
        return scores


class Recommender:
    def __init__(self, path: Path, manifest: dict, catalog: list[dict], users: list, histories: dict, models: dict):
        self.path, self.manifest, self.catalog, self.models = Path(path), manifest, catalog, models
        self.name = manifest["name"]
        self.items = [entry["id"] for entry in catalog]
        self.position = {item: column for column, item in enumerate(self.items)}
        self.item_by_text = {str(item): item for item in self.items}
        self.user_by_text = {str(user): user for user in users}
        self.histories = histories  # user id -> item ids, oldest first (every split)
        self.default_model = manifest["serving_model"]

    # -- opening --------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path, *, threads: int | None = None) -> "Recommender":
        """Verify the directory (digests + seal), then load its catalog, histories and every model."""
        from fmkit.apps.recommend.store import open_manifest

        path = Path(path)
        manifest = open_manifest(path)
        catalog, users, interactions = read_catalog(path)
        histories = histories_of(users, [entry["id"] for entry in catalog], interactions)
        models = load_models(path, manifest, [entry["id"] for entry in catalog], threads=threads)
        return cls(path, manifest, catalog, users, histories, models)

    # -- resolving ids --------------------------------------------------------------------------------------
    def resolve_item(self, item):
        found = self.item_by_text.get(str(item))
        if found is None:
            raise BadInputError(f"unknown item id {item!r}: {self.name} knows {len(self.items)} items (ids like "
                                f"{', '.join(map(str, self.items[:3]))}); add new ones with `fmkit recommend add-items`")
        return found

    def resolve_history(self, history) -> list:
        if not isinstance(history, (list, tuple)):
            raise BadInputError(f"a history is a list of item ids (oldest first), got {type(history).__name__}")
        if len(history) > MAX_HISTORY:
            raise BadInputError(f"the history has {len(history)} items, over the limit of {MAX_HISTORY}; send the "
                                f"most recent {MAX_HISTORY}")
        unknown = [item for item in history if str(item) not in self.item_by_text]
        if unknown:
            raise BadInputError(f"unknown item id(s) in the history: {unknown[:5]}; use ids from the recommender's "
                                "catalog (or add the items with `fmkit recommend add-items`)")
        return [self.item_by_text[str(item)] for item in history]

    def user_history(self, user) -> tuple[object, list]:
        found = self.user_by_text.get(str(user))
        if found is None:
            raise BadInputError(f"unknown user id {user!r}: {self.name} was trained on {len(self.user_by_text)} "
                                "users; for anyone else send their history (item ids, oldest first) instead")
        return found, list(self.histories.get(found, []))

    def model(self, name: str | None):
        name = name or self.default_model
        if name not in self.models:
            raise BadInputError(f"unknown model {name!r}: this recommender has {', '.join(self.models)}")
        return name, self.models[name]

    # -- ranking --------------------------------------------------------------------------------------------
    def recommend(self, user=None, history=None, *, k: int = DEFAULT_K, model: str | None = None,
                  exclude_seen: bool = True) -> dict:
        """The top ``k`` items for a known ``user`` or for a ``history`` (item ids, oldest first)."""
        started = time.perf_counter()
        if (user is None) == (history is None):
            raise BadInputError("give either a known user id or a history of item ids (oldest first), not "
                                f"{'both' if user is not None else 'neither'}")
        check_k(k)
        if history is None:
            user, history = self.user_history(user)
        else:
            history = self.resolve_history(history)
        name, scorer = self.model(model)
        if not exclude_seen and getattr(scorer, "masks_seen", False):
            raise BadInputError(f"model {name!r} ranks only items outside the history (it was trained that way), so "
                                "it cannot include seen items; keep exclude_seen, or pick another model, e.g. 'als'")
        scores = np.asarray(scorer.score([user], [history])[0], dtype=np.float64)
        if exclude_seen:
            scores[[self.position[item] for item in history]] = -np.inf
        return {"recommender": self.name, "model": name, "user": user, "history_length": len(history),
                "items": self.top(scores, k), "seconds": round(time.perf_counter() - started, 4)}

    def similar(self, item, *, k: int = DEFAULT_K, model: str = "text") -> dict:
        """Items like ``item``: what the model ranks for someone whose whole history is that one item."""
        started = time.perf_counter()
        check_k(k)
        item = self.resolve_item(item)
        name, scorer = self.model(model)
        scores = np.asarray(scorer.score([None], [[item]])[0], dtype=np.float64)
        scores[self.position[item]] = -np.inf
        return {"recommender": self.name, "model": name, "item": item, "title": self.catalog[self.position[item]]
                .get("title"), "items": self.top(scores, k), "seconds": round(time.perf_counter() - started, 4)}

    def top(self, scores: np.ndarray, k: int) -> list[dict]:
        finite = np.flatnonzero(np.isfinite(scores))
        k = min(k, len(finite))
        best = finite[np.argpartition(-scores[finite], k - 1)[:k]] if k else finite[:0]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [{"rank": rank, "item": self.items[column], "title": self.catalog[column].get("title"),
                 "score": round(float(scores[column]), 6)} for rank, column in enumerate(best, start=1)]

    # -- what it is -----------------------------------------------------------------------------------------
    def describe(self) -> dict:
        keys = ("name", "built_at", "fmkit_version", "data", "split", "models", "serving_model", "evaluation",
                "by_history_length", "added_items", "train_seconds", "content_digest")
        return {key: self.manifest.get(key) for key in keys} | {"items": len(self.items),
                                                                 "users": len(self.user_by_text)}


def check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise BadInputError(f"k={k!r}: ask for 1 to {MAX_K} items")


def read_catalog(path: Path) -> tuple[list[dict], list, dict[str, np.ndarray]]:
    """(items in score-column order, user ids, the split's index arrays) from a verified directory."""
    from fmkit.apps.recommend.store import INTERACTIONS, ITEMS, USERS

    catalog = json.loads((path / ITEMS).read_text(encoding="utf-8"))
    users = json.loads((path / USERS).read_text(encoding="utf-8"))
    with np.load(path / INTERACTIONS, allow_pickle=False) as arrays:
        interactions = {name: arrays[name] for name in arrays.files}
    return catalog, users, interactions


def histories_of(users: list, items: list, interactions: dict[str, np.ndarray], splits=(0, 1, 2, 3)) -> dict:
    """user id -> item ids in time order over the given split codes (catalog.SPLITS: train, valid, test, cold)."""
    keep = np.isin(interactions["split"], splits)
    user, item, when = interactions["user"][keep], interactions["item"][keep], interactions["time"][keep]
    order = np.lexsort((when, user))
    histories: dict = {}
    for u, i in zip(user[order].tolist(), item[order].tolist()):
        histories.setdefault(users[u], []).append(items[i])
    return histories


def load_models(path: Path, manifest: dict, items: list, *, threads: int | None = None) -> dict:
    """Every stored model, in the manifest's order; the hybrid last, over the ones it was trained with."""
    from fmkit.apps.recommend.store import MODELS_DIR

    trained_items = items[:manifest["trained_items"]]
    models: dict = {}
    for name in manifest["models"]:
        directory = path / MODELS_DIR / name
        if name == "text":
            from fmkit.apps.recommend.text_model import TextInterestModel

            models[name] = TextInterestModel.load(directory, threads=threads)
        elif name == "hybrid":
            from fmkit.apps.recommend.hybrid import HybridRanker

            models[name] = HybridRanker.load(directory, models)
        else:
            from fmkit.apps.recommend.baselines import BASELINES

            models[name] = PaddedScorer(BASELINES.get(name).load(directory), trained_items, len(items))
    return models
