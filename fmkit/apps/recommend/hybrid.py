"""The hybrid ranker: candidates from every model's top-N, re-ranked by LightGBM LambdaRank.

Collaborative models know what people pick together but cannot rank an item no one has picked; the
text model reads what an item is. The hybrid takes the union of each component's top-N (the CF
models' and the text model's), describes each (user, candidate) by the components' scores and
per-user ranks, the item's popularity (all time and recent), its year against the user's, and how
much of the user's history shares its genres, and ranks with a LambdaRank model (LightGBM) trained
on the validation slice: the components are fitted on the train split, their histories are the
train split and the labels are the validation items, so the ranker learns how to combine them on
interactions none of them saw. Items in a user's history are never candidates (seen items filtered,
-inf); the items outside the candidates follow below them in the text model's order (or the first
component's), so a full ranking exists for every item, cold ones included.

    hybrid = HybridRanker({"als": als, "item-knn": knn, "text": text}, HybridConfig()).fit(data)
    scores = hybrid.score([42], [[318, 296]])        # (1, n_items): candidates by the ranker first
    hybrid.save(Path("recommender/hybrid"));  HybridRanker.load(Path("recommender/hybrid"), components)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field

from fmkit.errors import BadInputError

RANKER_FILE = "ranker.txt"  # LightGBM's own text format
META_FILE = "hybrid.json"
ITEM_STATS_FILE = "item_stats.npy"
ITEM_GENRES_FILE = "item_genres.npy"
ITEM_STATS = ("log_popularity", "log_recent_popularity", "year")
# what choose=True picks from: few trees / many; small leaves / large (few positives per user: large leaves generalise)
SETTINGS = ({"trees": 30, "learning_rate": 0.05, "min_rows_in_leaf": 20},
            {"trees": 100, "learning_rate": 0.05, "min_rows_in_leaf": 20},
            {"trees": 200, "learning_rate": 0.03, "min_rows_in_leaf": 100},
            {"trees": 300, "learning_rate": 0.02, "min_rows_in_leaf": 200})
CHOICE_FOLDS = 2
RECENT_SHARE = 0.1  # "recent popularity": interactions in the last 10% of the train split's time span
SEEN = float("-inf")


class HybridConfig(BaseModel):
    """The hybrid ranker's settings (LightGBM LambdaRank on the validation slice)."""

    model_config = ConfigDict(extra="forbid")

    candidates_per_model: int = Field(100, ge=1, le=2000, description="top-N items each component proposes")
    # Early stopping on 20% of ~580 movielens validation users stopped at 5-37 trees from run to run, so by default
    # the boosting settings are chosen by cross-validation over the validation users (choose=True, SETTINGS).
    choose: bool = Field(True, description="choose trees / learning rate / leaf size among the built-in settings by "
                                           "2-fold cross-validation over the validation users (NDCG@10), then refit "
                                           "on all of them; false: use the fields below")
    trees: int = Field(200, ge=1, le=5000, description="boosting rounds (early-stopped when held_out_users > 0)")
    learning_rate: float = Field(0.03, gt=0, le=1)
    leaves: int = Field(31, ge=2, le=1024)
    min_rows_in_leaf: int = Field(100, ge=1, description="rows (user, candidate) per leaf: few positives per user, "
                                                         "so leaves must be large to generalise")
    held_out_users: float = Field(0.0, ge=0, lt=1, description="share of validation users held out to early-stop "
                                                               "the ranker (0: all train it, `trees` rounds)")
    threads: int | None = Field(None, ge=1)
    seed: int = 0


def _genre_lists(items, column: str = "genres") -> list[list[str]]:
    if column not in items.columns:
        return [[] for _ in range(len(items))]
    return [[g.strip() for g in str(v).replace(",", "|").split("|") if g.strip() and str(v) != "nan"]
            for v in items[column].tolist()]


def item_statistics(data, order: list) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(n_items, 3) popularity / recent popularity / year, (n_items, genres) multi-hot, the genre names;
    from the train split only (validation and test interactions are what the ranker is scored on)."""
    import numpy as np
    import pandas as pd

    position = {item: k for k, item in enumerate(order)}
    stats = np.zeros((len(order), len(ITEM_STATS)), dtype=np.float32)
    train = data.train
    counts = train["item"].map(position).dropna().astype(int).value_counts()
    stats[counts.index.to_numpy(), 0] = np.log1p(counts.to_numpy())
    times = train["time"].astype("int64") if pd.api.types.is_datetime64_any_dtype(train["time"]) \
        else pd.to_numeric(train["time"], errors="coerce")
    cutoff = times.max() - RECENT_SHARE * (times.max() - times.min())
    recent = train.loc[times >= cutoff, "item"].map(position).dropna().astype(int).value_counts()
    stats[recent.index.to_numpy(), 1] = np.log1p(recent.to_numpy())
    items = data.items.set_index("item" if "item" in data.items.columns else data.items.columns[0])
    items = items.reindex(order)
    if "year" in items.columns:
        stats[:, 2] = pd.to_numeric(items["year"], errors="coerce").fillna(np.nan).to_numpy(np.float32)
    else:
        stats[:, 2] = np.nan
    genres = _genre_lists(items.reset_index())
    names = sorted({g for row in genres for g in row})
    column = {g: k for k, g in enumerate(names)}
    multi_hot = np.zeros((len(order), len(names)), dtype=np.uint8)
    for row, values in enumerate(genres):
        multi_hot[row, [column[g] for g in values]] = 1
    return stats, multi_hot, names


class HybridRanker:
    """The scorer protocol over component scorers: ``fit(data)`` (components already fitted on data.train),
    ``score(users, histories) -> (n_users, n_items)`` with non-candidates at -inf."""

    name = "hybrid"
    masks_seen = True  # trained to rank unseen items only: its scores for the history are -inf

    def __init__(self, components: dict, cfg: HybridConfig | None = None):
        if not components:
            raise BadInputError("the hybrid ranker needs at least one component model (e.g. als, text)")
        self.components = dict(components)
        self.cfg = cfg or HybridConfig()
        self.booster_ = None
        self.items_: list = []
        self.stats_: np.ndarray | None = None
        self.genres_: np.ndarray | None = None
        self.genre_names_: list[str] = []
        self.facts_: dict = {}

    def _positions(self) -> dict:
        """Item id -> column, built once per catalogue size (a request must not rebuild it: 4 ms for 9,066 items)."""
        key = (id(self.items_), len(self.items_))
        if getattr(self, "_position_cache", (None, None))[1] != key:
            self._position_cache = ({item: k for k, item in enumerate(self.items_)}, key)
        return self._position_cache[0]

    @property
    def fallback(self) -> str:
        """The component whose order ranks the items outside the candidates: the text model's if there is one."""
        return "text" if "text" in self.components else next(iter(self.components))

    @property
    def feature_names(self) -> list[str]:
        per_model = [f"{name}.{kind}" for name in self.components for kind in ("score", "rank")]
        return per_model + list(ITEM_STATS) + ["year_gap", "genre_overlap", "genre_max", "history_length"]

    # -- features ---------------------------------------------------------------------------------------------
    def _component_scores(self, users, histories) -> dict[str, np.ndarray]:
        import numpy as np

        scores = {}
        for name, model in self.components.items():
            matrix = np.asarray(model.score(list(users), histories), dtype=np.float32)
            if matrix.shape != (len(users), len(self.items_)):
                raise BadInputError(f"component {name!r} scored {matrix.shape}, expected {(len(users), len(self.items_))}"
                                    ": every component must score the same items in the same order")
            scores[name] = np.nan_to_num(matrix, nan=0.0, neginf=-1e6, posinf=1e6)
        return scores

    def candidates_and_features(self, users, histories) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per user: (candidate item positions, (n_candidates, n_features) float32, the seen positions, the
        fallback component's scores of every item)."""
        import numpy as np

        position = self._positions()
        scores = self._component_scores(users, histories)
        top = self.cfg.candidates_per_model
        output = []
        for row, history in enumerate(histories):
            seen = np.array(sorted({position[i] for i in history if i in position}), dtype=np.int64)
            pools, unseen = [], {}
            depth = min(top, len(self.items_) - len(seen))
            for name, matrix in scores.items():
                values = matrix[row].copy()
                values[seen] = -np.inf
                unseen[name] = values
                if depth > 0:
                    best = np.argpartition(-values, depth - 1)[:depth]
                    pools.append(best[np.isfinite(values[best])])
            candidates = np.unique(np.concatenate(pools)) if pools else np.zeros(0, dtype=np.int64)
            columns = []
            for name, values in unseen.items():
                # a candidate's rank among the unseen items: 1 + how many score higher (a sort, not an argsort)
                ascending = np.sort(values)
                rank = len(values) - np.searchsorted(ascending, values[candidates], side="right") + 1
                columns += [values[candidates], np.log1p(rank.astype(np.float32))]
            stats = self.stats_[candidates]
            years = self.stats_[seen, 2] if len(seen) else np.array([np.nan])
            mean_year = np.nanmean(years) if np.isfinite(years).any() else np.nan
            profile = self.genres_[seen].mean(axis=0) if len(seen) else np.zeros(self.genres_.shape[1])
            item_genres = self.genres_[candidates].astype(np.float32)
            counts = np.maximum(item_genres.sum(axis=1), 1)
            overlap = (item_genres @ profile) / counts if item_genres.shape[1] else np.zeros(len(candidates))
            best_genre = (item_genres * profile).max(axis=1) if item_genres.shape[1] else np.zeros(len(candidates))
            columns += [stats[:, 0], stats[:, 1], stats[:, 2], np.abs(stats[:, 2] - mean_year), overlap, best_genre,
                        np.full(len(candidates), np.log1p(len(seen)), np.float32)]
            output.append((candidates, np.column_stack(columns).astype(np.float32), seen,
                           scores[self.fallback][row]))
        return output

    # -- training on the validation slice ---------------------------------------------------------------------
    def fit(self, data, *, log=print) -> "HybridRanker":
        import lightgbm as lgb
        import numpy as np

        from fmkit.apps.recommend.text_model import item_order

        self.items_ = item_order(data)
        self.stats_, self.genres_, self.genre_names_ = item_statistics(data, self.items_)
        histories = data.train.sort_values(["user", "time"], kind="stable").groupby("user")["item"].apply(list)
        targets = data.valid.groupby("user")["item"].apply(set)
        users = [u for u in targets.index if u in histories.index]
        if len(users) < 2:
            raise BadInputError(f"the validation slice has {len(users)} user(s) with a train history; the hybrid "
                                "ranker needs more (lower the test share or use more data)")
        rows = self.candidates_and_features(users, [histories[u] for u in users])  # the train split is the history
        groups, features, labels, kept, found, total = [], [], [], [], 0, 0
        for user, (candidates, matrix, _, _) in zip(users, rows):
            label = np.array([self.items_[c] in targets[user] for c in candidates], dtype=np.int32)
            found += int(label.sum())
            total += len(targets[user])
            if label.any() and len(candidates) > 1:  # a list with no positive gives LambdaRank nothing
                groups.append(len(candidates))
                features.append(matrix)
                labels.append(label)
                kept.append(user)
        if len(kept) < 2:
            raise BadInputError("fewer than two validation users have a validation item among their candidates; "
                                "raise candidates_per_model")
        rng = np.random.default_rng(self.cfg.seed)
        held = rng.random(len(kept)) < self.cfg.held_out_users if self.cfg.held_out_users else np.zeros(len(kept), bool)
        if held.all() or not held.any():
            held = np.zeros(len(kept), bool)
        def parameters(setting: dict) -> dict:
            return {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10],
                    "learning_rate": setting["learning_rate"], "num_leaves": self.cfg.leaves,
                    "min_data_in_leaf": setting["min_rows_in_leaf"], "verbosity": -1, "seed": self.cfg.seed,
                    "deterministic": True, "force_row_wise": True,
                    **({"num_threads": self.cfg.threads} if self.cfg.threads else {})}

        def dataset(mask):
            pick = [k for k in range(len(kept)) if mask[k]]
            return lgb.Dataset(np.concatenate([features[k] for k in pick]), np.concatenate([labels[k] for k in pick]),
                               group=[groups[k] for k in pick], feature_name=self.feature_names,
                               free_raw_data=False)

        setting = {"trees": self.cfg.trees, "learning_rate": self.cfg.learning_rate,
                   "min_rows_in_leaf": self.cfg.min_rows_in_leaf}
        choice = None
        if self.cfg.choose:
            choice = self._choose(lgb, parameters, dataset, kept, features, labels, [len(targets[u]) for u in kept])
            setting = SETTINGS[choice["chosen"]]
        params = parameters(setting)
        train_set = dataset(~held)
        callbacks, valid_sets = [], []
        if held.any():
            valid_sets = [dataset(held)]
            callbacks = [lgb.early_stopping(30, verbose=False)]
        self.booster_ = lgb.train(params, train_set, num_boost_round=setting["trees"], valid_sets=valid_sets,
                                  callbacks=callbacks)
        importance = self.booster_.feature_importance("gain")
        self.facts_ = {"validation_users": len(users), "trained_on_users": int((~held).sum()),
                       "early_stopping_users": int(held.sum()), "candidate_recall": round(found / max(total, 1), 4),
                       "mean_candidates": round(float(np.mean([len(row[0]) for row in rows])), 1),
                       "trees": self.booster_.best_iteration or self.booster_.num_trees(), "setting": setting,
                       "choice": choice,
                       "feature_gain": {n: round(float(g), 2) for n, g in zip(self.feature_names, importance)}}
        log(f"hybrid ranker: LambdaRank on {len(kept)} validation users ({self.facts_['mean_candidates']} candidates "
            f"each, {self.facts_['candidate_recall']:.1%} of validation items among them), {self.facts_['trees']} trees")
        return self

    def _choose(self, lgb, parameters, dataset, kept, features, labels, relevant_counts) -> dict:
        """The index in SETTINGS with the best mean NDCG@10 over CHOICE_FOLDS folds of the validation users
        (train on the others, rank each held-out user's candidates; a validation item outside the candidates
        counts as missed). The test split is never looked at."""
        import numpy as np

        folds = np.random.default_rng(self.cfg.seed + 1).permutation(len(kept)) % CHOICE_FOLDS
        discounts = 1.0 / np.log2(np.arange(2, 12))
        means = []
        for setting in SETTINGS:
            ndcg = []
            for fold in range(CHOICE_FOLDS):
                booster = lgb.train(parameters(setting), dataset(folds != fold), num_boost_round=setting["trees"])
                for k in np.flatnonzero(folds == fold):
                    order = np.argsort(-booster.predict(features[k]), kind="stable")[:10]
                    ideal = discounts[:min(relevant_counts[k], 10)].sum()
                    ndcg.append(float((labels[k][order] * discounts[:len(order)]).sum() / ideal))
            means.append(round(float(np.mean(ndcg)), 5))
        return {"by": f"{CHOICE_FOLDS}-fold cross-validation over the validation users, NDCG@10",
                "settings": list(SETTINGS), "validation_ndcg@10": means, "chosen": int(np.argmax(means))}

    def score(self, users: Sequence, histories: Sequence[Sequence]) -> np.ndarray:
        import numpy as np

        if self.booster_ is None:
            raise BadInputError("the hybrid ranker is not fitted; call fit(data) or HybridRanker.load(path, ...)")
        scores = np.full((len(histories), len(self.items_)), SEEN, dtype=np.float64)
        for row, (candidates, matrix, seen, fallback) in enumerate(self.candidates_and_features(users, histories)):
            # one thread: a few hundred candidates gain nothing from OpenMP's start-up and contend with the server
            predicted = self.booster_.predict(matrix, num_iteration=self.booster_.best_iteration or None,
                                              num_threads=1) if len(candidates) else np.zeros(0)
            floor = (predicted.min() if len(predicted) else 0.0) - 1.0
            order = np.argsort(-fallback, kind="stable")  # the rest: below every candidate, in the fallback's order
            scores[row, order] = floor - np.arange(len(order)) / len(order)
            scores[row, candidates] = predicted
            scores[row, seen] = SEEN
        return scores

    def add_items(self, items: Sequence, years: Sequence, genres: Sequence[Sequence[str]]) -> None:
        """New items (no interactions: popularity 0, like the cold items) become rankable columns; the
        components must score them too (the text model does; CF models give them 0). Unknown genres are ignored."""
        import numpy as np

        clash = [item for item in items if item in set(self.items_)]
        if clash:
            raise BadInputError(f"item id(s) {clash[:5]} already exist; new items need new ids")
        if not (len(items) == len(years) == len(genres)):
            raise BadInputError(f"add_items: {len(items)} ids, {len(years)} years and {len(genres)} genre lists")
        stats = np.zeros((len(items), len(ITEM_STATS)), dtype=np.float32)
        stats[:, 2] = [np.nan if year is None else float(year) for year in years]
        column = {g: k for k, g in enumerate(self.genre_names_)}
        multi_hot = np.zeros((len(items), len(self.genre_names_)), dtype=np.uint8)
        for row, values in enumerate(genres):
            multi_hot[row, [column[g] for g in values if g in column]] = 1
        self.items_ = list(self.items_) + list(items)
        self.stats_ = np.concatenate([self.stats_, stats])
        self.genres_ = np.concatenate([self.genres_, multi_hot])

    # -- storage: LightGBM text model + JSON + .npy ----------------------------------------------------------
    def save(self, directory: Path) -> None:
        import numpy as np

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(directory / RANKER_FILE))
        np.save(directory / ITEM_STATS_FILE, self.stats_, allow_pickle=False)
        np.save(directory / ITEM_GENRES_FILE, self.genres_, allow_pickle=False)
        meta = {"kind": "fmkit-hybrid-ranker", "config": self.cfg.model_dump(mode="json"),
                "components": list(self.components), "features": self.feature_names, "genres": self.genre_names_,
                "items": [i.item() if hasattr(i, "item") else i for i in self.items_], "facts": self.facts_}
        (directory / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, components: dict) -> "HybridRanker":
        """Open a saved ranker with its components (the same names, fitted on the same items)."""
        import lightgbm as lgb
        import numpy as np

        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise BadInputError(f"{directory} has no {META_FILE}: not a saved hybrid ranker")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        missing = [name for name in meta["components"] if name not in components]
        if missing:
            raise BadInputError(f"the hybrid ranker in {directory} needs the component model(s) {missing}")
        ranker = cls({name: components[name] for name in meta["components"]},
                     HybridConfig.model_validate(meta["config"]))
        if ranker.feature_names != meta["features"]:
            raise BadInputError(f"{directory}: its features {meta['features']} are not this fmkit's; retrain it")
        ranker.booster_ = lgb.Booster(model_file=str(directory / RANKER_FILE))
        ranker.stats_ = np.load(directory / ITEM_STATS_FILE, allow_pickle=False)
        ranker.genres_ = np.load(directory / ITEM_GENRES_FILE, allow_pickle=False)
        ranker.items_, ranker.genre_names_, ranker.facts_ = list(meta["items"]), meta["genres"], meta["facts"]
        return ranker
