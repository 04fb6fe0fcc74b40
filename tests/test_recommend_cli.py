"""``fmkit recommend``: train on a small synthetic shop (real CSV tables, the tiny in-code BERT), evaluate every
model side by side, recommend for known and unseen users, similar items, add items without retraining, and
the directory's integrity (digests, seal, no pickles) and bad input (clear errors, nothing half-written).
"""

from __future__ import annotations

import json
import shutil

import pytest

from fmkit.cli.main import main
from recommend_fixtures import GROUPS, write_tables, trained_recommender

MODELS = ["popularity", "item-knn", "als", "bpr", "text", "hybrid"]
METRICS = ["ndcg@10", "recall@10", "mrr", "coverage", "cold.ndcg@10", "cold.recall@10", "cold.mrr"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory, tiny_bert_dir):
    return trained_recommender(tmp_path_factory, tiny_bert_dir)


def run_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_training_writes_a_sealed_directory_with_every_model_and_counted_drops(shop):
    manifest = json.loads((shop / "recommender.json").read_text())
    assert manifest["kind"] == "fmkit-recommender" and manifest["models"] == MODELS
    assert manifest["data"]["drops"] == {"below_threshold": 1, "unknown_items": 1, "duplicates": 1,
                                         "users_with_one_interaction": 1}
    assert manifest["data"]["items"] == 48 and manifest["data"]["cold_items"] == 5
    assert manifest["seal"] and manifest["content_digest"].startswith("sha256:")
    files = {path.suffix for path in shop.rglob("*") if path.is_file()}
    assert not files & {".pkl", ".pickle", ".pt", ".bin", ".joblib"}
    assert (shop / "models/hybrid/ranker.txt").read_text().startswith("tree")  # LightGBM's own text format
    for report in ("ndcg.png", "report.html", "RECOMMENDER_CARD.md", "card.html", "evaluation.json"):
        assert (shop / "reports" / report).is_file()
    card = (shop / "reports/RECOMMENDER_CARD.md").read_text()
    assert "## Evaluation" in card and "| hybrid |" in card and "cold.ndcg@10" in card


def test_evaluate_prints_every_model_and_matches_training(shop, capsys):
    evaluation = run_json(capsys, "recommend", "evaluate", str(shop), "--json", "--no-report")
    assert list(evaluation) == MODELS
    for name in MODELS:
        assert all(0.0 <= evaluation[name][metric] <= 1.0 for metric in METRICS), name
    recorded = json.loads((shop / "recommender.json").read_text())["evaluation"]
    assert {n: {m: evaluation[n][m] for m in METRICS} for n in MODELS} == \
        {n: {m: recorded[n][m] for m in METRICS} for n in MODELS}
    # the world is learnable: collaborative models and the text model beat popularity; only text reads cold items
    assert min(evaluation[n]["ndcg@10"] for n in ("item-knn", "als", "text")) > evaluation["popularity"]["ndcg@10"]
    assert evaluation["text"]["cold.ndcg@10"] > evaluation["als"]["cold.ndcg@10"]


def test_for_a_known_user_and_for_an_unseen_history(shop, capsys):
    known = run_json(capsys, "recommend", "for", str(shop), "--user", "5", "--k", "5", "--json")
    assert known["user"] == 5 and known["model"] == "hybrid" and len(known["items"]) == 5
    manifest_history = set(__import__("fmkit.apps.recommend.recommender", fromlist=["x"])
                           .Recommender.open(shop).histories[5])
    assert not {entry["item"] for entry in known["items"]} & manifest_history  # seen items filtered
    group = [100 + i for i in range(48) if i % 4 == 1][:3]
    unseen = run_json(capsys, "recommend", "for", str(shop), "--history", ",".join(map(str, group)), "--k", "5",
                      "--model", "text", "--json")
    assert unseen["user"] is None and unseen["history_length"] == 3
    assert all(GROUPS[1] in entry["title"] for entry in unseen["items"])  # the history's group, not the others
    assert not {entry["item"] for entry in unseen["items"]} & set(group)
    similar = run_json(capsys, "recommend", "similar", str(shop), "--item", "100", "--k", "3", "--json")
    assert similar["item"] == 100 and all(GROUPS[0] in entry["title"] for entry in similar["items"])


def test_unknown_ids_and_models_are_clear_errors(shop, capsys):
    cases = {("--user", "777"): "unknown user id '777'", ("--history", "100,5555"): "unknown item id(s) in the history",
             ("--user", "5", "--model", "nope"): "unknown model 'nope'", ("--user", "5", "--k", "0"): "k=0",
             ("--user", "5", "--include-seen"): "model 'hybrid' ranks only items outside the history"}
    for flags, message in cases.items():
        capsys.readouterr()
        assert main(["recommend", "for", str(shop), *flags]) == 2
        assert message in capsys.readouterr().err


def test_added_items_are_rankable_without_retraining(shop, tmp_path, capsys):
    new = tmp_path / "new.csv"
    new.write_text("item,title,genres,description,year\n900,great 900,great,the film was very,1995\n"
                   "901,funny 901,funny,a story cast quite,1996\n")
    grown = tmp_path / "grown"
    result = run_json(capsys, "recommend", "add-items", str(shop), "--items", str(new), "--out", str(grown), "--json")
    assert result["added"] == 2 and result["items"] == 50
    history = ",".join(str(100 + i) for i in range(0, 48, 4)[:3])
    for model in ("text", "hybrid"):
        ranked = run_json(capsys, "recommend", "for", str(grown), "--history", history, "--k", "40", "--model",
                          model, "--json")
        assert 900 in {entry["item"] for entry in ranked["items"]}, model
    assert run_json(capsys, "recommend", "similar", str(grown), "--item", "900", "--k", "3", "--json")["items"]
    assert main(["recommend", "add-items", str(grown), "--items", str(new)]) == 2  # the same ids again
    assert "already in the recommender" in capsys.readouterr().err
    evaluation = run_json(capsys, "recommend", "evaluate", str(grown), "--json", "--no-report")
    assert evaluation["hybrid"]["ndcg@10"] == json.loads((shop / "recommender.json").read_text())[
        "evaluation"]["hybrid"]["ndcg@10"]  # the stored split is unchanged by new items


def test_a_changed_file_or_edited_manifest_is_refused(shop, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(shop, copy)
    embeddings = copy / "models/text/item_embeddings.npy"
    embeddings.write_bytes(embeddings.read_bytes()[:-4] + b"\0\0\0\0")
    assert main(["recommend", "for", str(copy), "--user", "5"]) == 2
    assert "item_embeddings.npy changed" in capsys.readouterr().err
    shutil.rmtree(copy)
    shutil.copytree(shop, copy)
    manifest = json.loads((copy / "recommender.json").read_text())
    manifest["evaluation"]["hybrid"]["ndcg@10"] = 0.99
    (copy / "recommender.json").write_text(json.dumps(manifest))
    assert main(["recommend", "evaluate", str(copy)]) == 2
    assert "edited" in capsys.readouterr().err


def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, capsys):
    interactions, items = write_tables(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text(interactions.read_text().replace("2020-01-03T05:00:00Z", "yesterday", 1))
    out = tmp_path / "out"
    base = ["recommend", "train", "--items", str(items), "--time-column", "ts", "--out", str(out)]
    assert main([*base, "--interactions", str(bad)]) == 2
    assert "do not parse" in capsys.readouterr().err
    assert main([*base, "--interactions", str(interactions), "--user-column", "customer"]) == 2
    assert "customer" in capsys.readouterr().err
    assert main([*base, "--interactions", str(interactions), "--models", "als,bogus", "--serving-model", "text"]) == 2
    error = capsys.readouterr().err
    assert "bogus" in error and "serving_model='text'" in error  # every config error at once
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
