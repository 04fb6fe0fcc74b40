"""The recommender's text interest model and hybrid ranker on a tiny in-code BERT and synthetic users.

Synthetic world: items belong to one of four groups named by a word in their text; each user picks
items of one group over time. A text model that reads the history must learn "history of group g ->
an item of group g"; the ranker must keep seen items out and combine its components.
"""

from __future__ import annotations

import json
import random
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import FILLER, POSITIVE

GROUPS = POSITIVE[:4]
TEXT = {"model": None, "int8": True, "epochs": 5, "learning_rate": 3e-3, "max_length": 64, "precision": "fp32", "batch_size": 16,
        "threads": 1}


def synthetic_tables(directory: Path, users: int = 60, items: int = 48, per_user: int = 12, seed: int = 0):
    """Items of four word-groups; each user picks ``per_user`` items of their group, one a day; as the CSV
    files a user would bring (interactions + items), read by the recommender's data layer."""
    import pandas as pd

    rng = random.Random(seed)
    catalogue = pd.DataFrame([{"item": 100 + i, "title": f"{GROUPS[i % 4]} {' '.join(rng.sample(FILLER, 3))} {i}",
                               "genres": GROUPS[i % 4], "year": 1990 + i % 7} for i in range(items)])
    rows = []
    for user in range(users):
        mine = [100 + i for i in range(items) if i % 4 == user % 4]
        rows += [{"user": user, "item": item, "time": f"2020-01-{t + 1:02d}T12:00:00Z"}
                 for t, item in enumerate(rng.sample(mine, per_user))]
    catalogue.to_csv(directory / "items.csv", index=False)
    pd.DataFrame(rows).to_csv(directory / "interactions.csv", index=False)
    return directory / "interactions.csv", directory / "items.csv"


def histories_of(data, split: str):
    return dict(zip(data.user_index, data.histories(list(data.user_index), split)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from fmkit.apps.recommend.data import RecommendDataConfig, load_interactions

    interactions, items = synthetic_tables(tmp_path_factory.mktemp("shop"))
    return load_interactions(RecommendDataConfig(interactions=str(interactions), items=str(items),
                                                 text_columns=["title", "genres"]))


@pytest.fixture(scope="module")
def text_model(tiny_bert_dir, data, tmp_path_factory):
    from fmkit.apps.recommend.text_model import TextInterestModel, TextModelConfig

    cfg = TextModelConfig(**{**TEXT, "model": str(tiny_bert_dir)})
    return TextInterestModel(cfg).fit(data, tmp_path_factory.mktemp("text-model"), log=lambda line: None)


def test_training_pairs_come_from_the_train_split_only(data):
    from fmkit.apps.recommend.text_model import TextModelConfig, item_texts, training_pairs

    texts = dict(zip(data.item_index, item_texts(data)))
    queries, documents, facts = training_pairs(data.train, texts, TextModelConfig(pairs_per_user=3))
    assert facts["pairs"] == len(queries) == 3 * data.train["user"].nunique()
    held_out = {texts[i] for i in set(data.valid["item"]) | set(data.test["item"]) | data.cold_items}
    later = {texts[i] for i in set(data.train["item"])}
    assert not (held_out - later) & set(documents + [p for q in queries for p in q.split(" ; ")])
    assert not {texts[i] for i in data.cold_items} & set(documents)  # cold items never trained on
    train_texts = {texts[i] for i in data.train["item"]}
    assert set(documents) <= train_texts
    assert all(set(q.split(" ; ")) <= train_texts for q in queries)  # histories: the train split too


def test_popularity_negatives_follow_the_answers_and_avoid_the_query_s_own():
    from fmkit.retrieval.negatives import popularity_negatives

    positives = [0] * 80 + [1] * 15 + [2] * 5
    relevant = [{p} for p in positives]
    chosen, facts = popularity_negatives(positives, relevant, 4, 3, 0.75, seed=1)
    again, _ = popularity_negatives(positives, relevant, 4, 3, 0.75, seed=1)
    assert chosen.shape == (100, 3) and facts["sampling"] == "popularity"
    assert np.array_equal(chosen, again)
    assert not any(chosen[row, column] in relevant[row] for row in range(100) for column in range(3))
    assert 3 not in chosen  # never a training answer: weight 0
    rows_of_item_two = chosen[95:]  # their draws are items 0 and 1 in ratio (80/15)^0.75 ~ 3.5
    assert (rows_of_item_two == 0).sum() > (rows_of_item_two == 1).sum()


def test_text_model_learns_the_history_to_next_item_signal(text_model, data):
    users = sorted(data.test["user"].unique())
    histories = histories_of(data, "test")
    scores = text_model.score(users, [histories[u] for u in users])
    assert scores.shape == (len(users), data.n_items)
    for row, user in enumerate(users):
        scores[row, data.item_positions(histories[user])] = -np.inf
    top = data.item_index[scores.argmax(axis=1)]
    same_group = np.mean([(item - 100) % 4 == user % 4 for item, user in zip(top, users)])
    assert same_group >= 0.6, same_group  # chance is 0.25
    cold = sorted(data.cold_items)  # never trained on, still ranked by their text
    cold_scores = text_model.score(users, [histories[u] for u in users])[:, data.item_positions(cold)]
    best_cold = np.array(cold)[cold_scores.argmax(axis=1)]
    assert np.mean([(item - 100) % 4 == user % 4 for item, user in zip(best_cold, users)]) >= 0.5
    assert text_model.encoder_.runtime == "onnx-int8"
    assert text_model.facts_["pairs"]["from"] == "train split"
    assert not text_model.score([0], [[]]).any()  # no history, no opinion


def test_text_model_saves_npy_and_json_and_loads_the_same_scores(text_model, data, tmp_path):
    from fmkit.apps.recommend.text_model import EMBEDDINGS_FILE, META_FILE, TextInterestModel
    from fmkit.errors import BadInputError

    history = histories_of(data, "valid")[3]
    text_model.save(tmp_path / "text")
    assert np.load(tmp_path / "text" / EMBEDDINGS_FILE, allow_pickle=False).shape == (data.n_items, 32)
    assert json.loads((tmp_path / "text" / META_FILE).read_text())["items"] == list(data.item_index)
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pickle"))
    loaded = TextInterestModel.load(tmp_path / "text")
    assert np.allclose(loaded.score([3], [history]), text_model.score([3], [history]), atol=1e-5)
    with pytest.raises(BadInputError, match="unknown item id"):
        loaded.score([3], [[999999]])
    loaded.add_items([500], [f"{GROUPS[3]} the film 500"])
    scores = loaded.score([3], [history])
    assert scores.shape == (1, data.n_items + 1) and np.isfinite(scores[0, -1])
    with pytest.raises(BadInputError, match="already exist"):
        loaded.add_items([500], ["again"])
    with pytest.raises(BadInputError, match="not a saved text interest model"):
        TextInterestModel.load(tmp_path)


def test_known_users_cached_queries_score_as_encoding_does_and_never_go_stale(text_model, data, tmp_path):
    from fmkit.apps.recommend.user_queries import INDEX_FILE, VECTORS_FILE
    from fmkit.apps.recommend.text_model import TextInterestModel

    histories = histories_of(data, "valid")
    users = list(histories)[:6]
    encoded = text_model.score(users, [histories[u] for u in users])  # no cache yet: every query encoded
    text_model.cache_user_queries(users, [histories[u] for u in users])
    try:
        text_model.save(tmp_path / "text")
    finally:
        text_model.user_queries_ = None  # the module's shared model stays as the other tests expect it
    assert (tmp_path / "text" / VECTORS_FILE).is_file() and (tmp_path / "text" / INDEX_FILE).is_file()
    loaded = TextInterestModel.load(tmp_path / "text")
    assert len(loaded.user_queries_) == len(users)
    calls = []
    encode = loaded.encoder_.encode
    loaded.encoder_.encode = lambda texts, **options: calls.append(list(texts)) or encode(texts, **options)
    cached = loaded.score(users, [histories[u] for u in users])
    assert calls == []  # every known user with their cached history: no encoder forward
    np.testing.assert_allclose(cached, encoded, atol=1e-5)
    other = histories[users[1]]  # user 0 sends user 1's history: not the cached query, so it is encoded
    assert np.allclose(loaded.score([users[0]], [other]), loaded.score([users[1]], [other]), atol=1e-5)
    assert len(calls) == 1 and calls[0] == loaded.queries([other])
    assert not loaded.score(["nobody"], [[]]).any()  # an empty history scores 0


class CoOccurrence:
    """Item co-occurrence counts over the train split: the simplest collaborative scorer (a second component)."""

    name = "co-occurrence"

    def fit(self, data):
        users = {u: k for k, u in enumerate(sorted(data.train["user"].unique()))}
        matrix = np.zeros((len(users), data.n_items), dtype=np.float32)
        matrix[data.train["user"].map(users).to_numpy(), data.item_positions(data.train["item"])] = 1
        self.similar = matrix.T @ matrix
        np.fill_diagonal(self.similar, 0)
        self.positions = data.item_positions
        return self

    def score(self, users, histories):
        return np.stack([self.similar[self.positions(h)].sum(axis=0) for h in histories])


def test_hybrid_ranks_unseen_candidates_and_round_trips_its_lightgbm_text_model(text_model, data, tmp_path):
    from fmkit.apps.recommend.hybrid import META_FILE, RANKER_FILE, HybridConfig, HybridRanker
    from fmkit.errors import BadInputError

    components = {"co-occurrence": CoOccurrence().fit(data), "text": text_model}
    hybrid = HybridRanker(components, HybridConfig(candidates_per_model=8, min_rows_in_leaf=5, held_out_users=0.25, choose=False, threads=1)).fit(
        data, log=lambda line: None)
    assert hybrid.facts_["candidate_recall"] > 0.5 and hybrid.facts_["trained_on_users"] > 0
    assert hybrid.facts_["early_stopping_users"] > 0
    users = sorted(data.test["user"].unique())
    histories = histories_of(data, "test")
    scores = hybrid.score(users, [histories[u] for u in users])
    for row, user in enumerate(users):
        assert np.isneginf(scores[row, data.item_positions(histories[user])]).all()  # seen filtered
    assert (np.isfinite(scores).sum(axis=1) == data.n_items - np.array([len(set(histories[u])) for u in users])).all()
    top10 = np.argsort(-scores, axis=1)[:, :10]
    relevant = data.test.groupby("user")["item"].apply(set)
    hits = [bool(set(data.item_index[row]) & relevant[user]) for user, row in zip(users, top10)]
    assert np.mean(hits) >= 0.6
    hybrid.save(tmp_path / "hybrid")
    assert (tmp_path / "hybrid" / RANKER_FILE).read_text().startswith("tree")  # LightGBM's text format
    assert json.loads((tmp_path / "hybrid" / META_FILE).read_text())["components"] == ["co-occurrence", "text"]
    loaded = HybridRanker.load(tmp_path / "hybrid", components)
    again = loaded.score(users[:5], [histories[u] for u in users[:5]])
    assert np.array_equal(np.isinf(again), np.isinf(scores[:5]))
    assert np.allclose(again[np.isfinite(again)], scores[:5][np.isfinite(scores[:5])], atol=1e-6)
    loaded.add_items([500], [1995.0], [["great", "unknown-genre"]])
    assert loaded.stats_.shape[0] == loaded.genres_.shape[0] == data.n_items + 1 and loaded.genres_[-1].sum() == 1
    with pytest.raises(BadInputError, match="needs the component"):
        HybridRanker.load(tmp_path / "hybrid", {"text": text_model})



def test_hybrid_chooses_its_boosting_settings_on_validation_users_only(text_model, data):
    from fmkit.apps.recommend.hybrid import SETTINGS, HybridConfig, HybridRanker

    components = {"co-occurrence": CoOccurrence().fit(data), "text": text_model}
    hybrid = HybridRanker(components, HybridConfig(candidates_per_model=8, threads=1)).fit(data, log=lambda line: None)
    choice = hybrid.facts_["choice"]
    assert len(choice["validation_ndcg@10"]) == len(SETTINGS) and all(0 <= v <= 1 for v in choice["validation_ndcg@10"])
    assert hybrid.facts_["setting"] == SETTINGS[choice["chosen"]]
    assert choice["validation_ndcg@10"][choice["chosen"]] == max(choice["validation_ndcg@10"])
    assert hybrid.booster_.num_trees() == SETTINGS[choice["chosen"]]["trees"]
