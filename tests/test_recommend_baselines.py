"""Recommender baselines, metrics and the side-by-side evaluation on a small synthetic shop."""

from __future__ import annotations

import numpy as np
import pytest

from fmkit.apps.recommend.baselines import BASELINES
from fmkit.apps.recommend.data import RecommendDataConfig, load_interactions
from fmkit.apps.recommend.evaluate import evaluate_models, evaluate_models_detailed
from fmkit.apps.recommend.metrics import coverage, rank_users
from test_recommend_data import write_shop


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    events, items = write_shop(tmp_path_factory.mktemp("shop"), users=60, items=48, per_user=12)
    return load_interactions(RecommendDataConfig(interactions=str(events), items=str(items), time_column="ts",
                                                 text_columns=["title", "genres"], cold_fraction=0.1))


class Oracle:
    """Scores each user's held-out items highest: what a perfect model would do (checks the evaluation)."""

    name = "oracle"

    def __init__(self, data, frame):
        self.index = data.item_index
        self.wanted = frame.groupby("user")["item"].agg(set).to_dict()

    def score(self, users, histories):
        scores = np.zeros((len(users), len(self.index)), dtype=np.float32)
        for row, user in enumerate(users):
            positions = self.index.get_indexer(list(self.wanted.get(user, ())))
            scores[row, positions[positions >= 0]] = 1.0
        return scores


class SeenFirst:
    """Scores the user's own history highest: evaluation must mask it, leaving chance."""

    name = "seen-first"

    def __init__(self, data):
        self.index = data.item_index

    def score(self, users, histories):
        scores = np.zeros((len(users), len(self.index)), dtype=np.float32)
        for row, history in enumerate(histories):
            scores[row, self.index.get_indexer(history)] = 100.0
        return scores


def test_metrics_match_a_hand_computed_ranking():
    scores = np.array([[0.9, 0.8, 0.7, 0.1, -np.inf], [0.0, 0.0, 0.5, 0.9, 0.2]])
    relevant = [np.array([1, 3]), np.array([0])]
    identity = np.arange(5)
    ndcg, recall, reciprocal, top = rank_users(scores, relevant, 2, identity)
    # user 0: top-2 = [0, 1]; hit at rank 2; ideal = 2 hits
    assert ndcg[0] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert recall[0] == pytest.approx(0.5) and reciprocal[0] == pytest.approx(0.5)
    # user 1: ranking 3, 2, 4, then the tie 0/1 (identity order): item 0 is 4th
    assert ndcg[1] == 0.0 and reciprocal[1] == pytest.approx(0.25)
    assert top.tolist() == [[0, 1], [3, 2]]
    assert coverage(top, 5) == pytest.approx(0.8)
    # ties follow the permutation, not the column order
    _, _, reciprocal, _ = rank_users(scores[1:], relevant[1:], 2, np.array([4, 3, 2, 0, 1]))
    assert reciprocal[0] == pytest.approx(1 / 4)
    _, _, reciprocal, _ = rank_users(scores[1:], relevant[1:], 2, np.array([4, 3, 2, 1, 0]))
    assert reciprocal[0] == pytest.approx(1 / 5)


def test_evaluation_masks_seen_items_and_scores_an_oracle_perfectly(shop):
    results = evaluate_models({"oracle": Oracle(shop, shop.test), "seen": SeenFirst(shop),
                               "cold-oracle": Oracle(shop, shop.cold)}, shop)
    oracle = results["oracle"]
    assert oracle["ndcg@10"] == pytest.approx(1.0) and oracle["recall@10"] == pytest.approx(1.0)
    assert oracle["mrr"] == pytest.approx(1.0) and oracle["users"] == shop.test["user"].nunique()
    assert results["cold-oracle"]["cold.ndcg@10"] == pytest.approx(1.0)
    assert results["cold-oracle"]["cold.users"] == shop.cold["user"].nunique()
    assert results["seen"]["ndcg@10"] < 0.5  # its top items are all masked: what is left is chance
    summary, per_user = evaluate_models_detailed({"oracle": Oracle(shop, shop.test)}, shop)
    assert set(per_user["part"]) == {"test", "cold"} and (per_user["history_length"] > 0).all()
    with pytest.raises(ValueError, match="split='train'"):
        evaluate_models({}, shop, "train")


def test_every_baseline_learns_the_groups_and_beats_popularity(shop):
    models = {name: BASELINES[name]().fit(shop) for name in BASELINES.names()}
    results = evaluate_models(models, shop)
    for name in ("item-knn", "als", "bpr"):
        assert results[name]["ndcg@10"] > results["popularity"]["ndcg@10"] + 0.1, (name, results)
        assert models[name].facts_["tuning"]["trials"], name  # tuned on the validation slice
    # CF cannot rank items no one interacted with: on the cold items every baseline is at chance
    assert results["item-knn"]["cold.ndcg@10"] == pytest.approx(results["popularity"]["cold.ndcg@10"])
    trials = models["item-knn"].facts_["tuning"]["trials"]
    assert len(trials) == len(BASELINES["item-knn"].grid["neighbours"])
    best = max(trials, key=lambda trial: trial["valid.ndcg@10"])
    assert models["item-knn"].neighbours == best["neighbours"]


def test_tuning_never_reads_the_test_split(shop):
    import dataclasses

    scrambled = dataclasses.replace(shop, test=shop.test.assign(item=np.roll(shop.test["item"].to_numpy(), 7)))
    first = BASELINES["als"](iterations=5).fit(shop).facts_["tuning"]
    second = BASELINES["als"](iterations=5).fit(scrambled).facts_["tuning"]
    assert first["trials"] == second["trials"]


@pytest.mark.parametrize("name", ["popularity", "item-knn", "als", "bpr"])
def test_saved_baselines_score_the_same_and_hold_no_pickles(shop, tmp_path, name):
    model = BASELINES[name](tune=False).fit(shop)
    users = shop.test["user"].unique().tolist()[:5] + ["someone-new"]
    histories = shop.histories(users[:-1], "test") + [[100, 104, 108]]
    model.save(tmp_path / name)
    loaded = BASELINES[name].load(tmp_path / name)
    assert np.allclose(model.score(users, histories), loaded.score(users, histories), atol=1e-5)
    assert model.score(users, histories).shape == (len(users), shop.n_items)
    for path in (tmp_path / name).iterdir():
        assert path.suffix in (".json", ".npy")
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)
    if name != "popularity":  # an unseen user is ranked from the history sent: red items (100, 104, ...) first
        scores = loaded.score(users[-1:], histories[-1:])[0]
        red = shop.item_positions([100 + 4 * i for i in range(1, 12)])
        others = np.setdiff1d(np.arange(shop.n_items), np.concatenate([red, shop.item_positions([100, 104, 108])]))
        assert scores[red].mean() > scores[others].mean()


def test_als_user_step_matches_implicit_recalculate_user(shop):
    """fmkit's numpy ALS user step (one Cholesky-free solve per request) against implicit's own, the reference."""
    from fmkit.apps.recommend.baselines.base import history_matrix

    model = BASELINES["als"](tune=False).fit(shop)
    rng = np.random.default_rng(0)
    items = model.item_index_
    histories = [list(items[rng.choice(len(items), size, replace=False)]) for size in (1, 5, 20)] + [[]]
    histories.append([items[0], items[0], items[3]])  # a repeated item counts once, as in the 0/1 matrix
    ours = model.score([None] * len(histories), histories)
    factors = model.model_.recalculate_user(np.arange(len(histories)), history_matrix(items, histories))
    reference = np.asarray(factors @ model.model_.item_factors.T)
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-4 * np.abs(reference).max())
    assert not ours[3].any()  # no history: zero factors, as implicit gives


def test_a_folder_that_is_not_a_baseline_is_bad_input(shop, tmp_path):
    from fmkit.errors import BadInputError

    BASELINES["popularity"]().fit(shop).save(tmp_path / "pop")
    with pytest.raises(BadInputError, match="holds the 'popularity' baseline, not 'als'"):
        BASELINES["als"].load(tmp_path / "pop")
    with pytest.raises(BadInputError, match="not a saved als baseline"):
        BASELINES["als"].load(tmp_path / "missing")
    with pytest.raises(BadInputError, match="unknown recommender baseline 'alss'"):
        BASELINES["alss"]


def test_the_same_seed_gives_the_same_factors(shop):
    for name, attribute in (("bpr", "item_factors_"), ("item-knn", "similarity_")):
        first = getattr(BASELINES[name](tune=False).fit(shop), attribute)
        second = getattr(BASELINES[name](tune=False).fit(shop), attribute)
        first, second = (first.toarray(), second.toarray()) if hasattr(first, "toarray") else (first, second)
        assert np.array_equal(first, second), name


def test_a_catalogue_smaller_than_k_is_ranked_whole():
    from fmkit.apps.recommend.metrics import rank_users

    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.1]])
    ndcg, recall, reciprocal, top = rank_users(scores, [np.array([0]), np.array([2, 1])], 10, np.arange(3))
    assert top.shape == (2, 3) and recall.tolist() == [1.0, 1.0] and reciprocal.tolist() == [1.0, 1.0]
    assert ndcg[1] == pytest.approx((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)))  # hits at ranks 1 and 3
