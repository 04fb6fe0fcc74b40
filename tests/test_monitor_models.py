"""The monitor's models and data: the LM lexicon, the gold set, topics, the scorer contract and the
default sentiment bundle (built here from a tiny BERT so the whole file stays fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fmkit.errors import BadInputError


def test_lexicon_reads_the_lm_word_lists_and_labels_by_hit_counts():
    from fmkit.apps.monitor.lexicon import LexiconSentiment, hit_counts, lexicon_labels, word_lists

    positive, negative = word_lists()
    assert len(positive) > 300 and len(negative) > 2000 and "LOSS" in negative and "GAIN" in positive
    # LM's lists are finance-specific: "losses" and "collapse" are negative, "profits" is in neither list
    assert hit_counts("Losses mount as the bank's profits collapse") == (0, 2)
    assert lexicon_labels(["Shares plunge as losses mount", "Record gains for the strong exporter",
                           "Johnson meets Sunak in Downing Street"]) == ["negative", "positive", "neutral"]
    rows = LexiconSentiment().probabilities(["Shares plunge as losses mount"])
    assert rows.tolist() == [[1.0, 0.0, 0.0]]


def test_gold_set_is_large_stratified_over_the_stream_and_labelled_within_the_guideline():
    from fmkit.apps.monitor.gold import guardian_headlines, read_gold
    from fmkit.apps.monitor.topics import DEFAULT_TOPICS_FILE, OTHER, read_topics_file

    gold = read_gold()
    assert len(gold) >= 400
    assert len({row["id"] for row in gold}) == len(gold) and len({row["text"] for row in gold}) == len(gold)
    stream = {row["id"]: row for row in guardian_headlines()}
    assert all(stream[row["id"]]["text"] == row["text"] and stream[row["id"]]["time"] == row["time"] for row in gold)
    days = {row["time"][:10] for row in gold}
    assert len(days) >= 150 and min(days) < "2020-01-10" and max(days) > "2020-07-10"  # all 170 days, not only March
    allowed = set(read_topics_file(DEFAULT_TOPICS_FILE)) | {OTHER}
    assert all(row["topics"] and set(row["topics"]) <= allowed for row in gold)
    assert all(row["topics"] == [OTHER] or OTHER not in row["topics"] for row in gold)
    splits = {split: [row for row in gold if row["split"] == split] for split in ("train", "test")}
    assert len(splits["test"]) >= 200 and len(splits["train"]) >= 100
    for rows in splits.values():
        assert {row["sentiment"] for row in rows} == {"negative", "neutral", "positive"}


def test_topics_file_errors_are_reported_all_at_once(tmp_path):
    from fmkit.apps.monitor.topics import read_topics_file

    path = tmp_path / "topics.yaml"
    path.write_text("rates: []\noil:\n  - ''\nother: [x]\n", encoding="utf-8")
    with pytest.raises(BadInputError) as error:
        read_topics_file(path)
    message = str(error.value)
    assert "topic 'rates' has no example texts" in message and "topic 'oil' has no example texts" in message
    assert "reserved" in message
    path.write_text("rates: [a\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="not valid YAML"):
        read_topics_file(path)
    with pytest.raises(BadInputError, match="no such file"):
        read_topics_file(tmp_path / "missing.yaml")


def test_example_topics_are_multi_label_with_other_below_the_threshold(tiny_bert_dir, tmp_path):
    from fmkit.apps.monitor.topics import ExampleTopics

    path = tmp_path / "topics.json"
    path.write_text(json.dumps({"fun": ["great funny warm film"], "dull": ["boring dull tedious plot"]}))
    topics = ExampleTopics(path, encoder=str(tiny_bert_dir), threshold=0.999)
    assigned = topics.assign(["great funny warm film", "boring dull tedious plot"])
    assert assigned == [("fun",), ("dull",)]  # an example is at cosine 1 to its own one-example centroid
    similarities = topics.similarities(["great funny warm film"])
    assert similarities.shape == (1, 2) and np.isclose(similarities[0, 0], 1.0, atol=1e-4)
    loose = ExampleTopics(path, encoder=str(tiny_bert_dir), threshold=-1.0)
    assert loose.assign(["the cast"]) == [("fun", "dull")]  # every topic clears a threshold of -1
    strict = ExampleTopics(path, encoder=str(tiny_bert_dir), threshold=1.01)
    assert strict.assign(["great funny warm film"]) == [("other",)]
    assert topics.describe()["topics"] == ["fun", "dull"]


def test_scorer_refuses_a_bundle_whose_labels_are_not_sentiment(tiny_bundle, tmp_path):
    from fmkit.apps.monitor.scoring import load_scorer

    with pytest.raises(BadInputError, match="negative/neutral/positive"):
        load_scorer(str(tiny_bundle), None, workspace=tmp_path, log=lambda line: None)


@pytest.fixture(scope="module")
def tiny_default(tiny_sentence_encoder, tmp_path_factory):
    """The default-bundle build (fine-tune, 1-layer anchored student, INT8) on the tiny mean-pooled BERT and 60 weak
    rows: (workspace, settings, log lines, path)."""
    from fmkit.apps.monitor.sentiment import DefaultSentimentSettings, default_sentiment_bundle

    workspace = tmp_path_factory.mktemp("workspace")
    settings = DefaultSentimentSettings(model=str(tiny_sentence_encoder), epochs=1, weak_rows=60, gold_train_repeats=1,
                                        max_length=32, learning_rate=1e-3, max_accuracy_drop=100, student_layers=1,
                                        student_epochs=1)
    lines: list[str] = []
    path = default_sentiment_bundle(workspace, settings=settings, log=lines.append)
    return workspace, settings, lines, path


def test_default_bundle_is_built_once_then_reused_from_the_workspace(tiny_default):
    from fmkit.apps.monitor.sentiment import cache_key, default_sentiment_bundle
    from fmkit.bundle import open_bundle

    workspace, settings, lines, path = tiny_default
    assert any("building it once" in line for line in lines)
    assert path.name == "int8" and open_bundle(path).runtime == "onnx"
    from fmkit.apps.monitor.scoring import embedding_anchor

    # full -> a student whose embedding is anchored to the base -> INT8 of the student
    assert [entry.stage for entry in open_bundle(path).lineage] == ["finetune", "distill", "quantize-dynamic"]
    assert embedding_anchor(path) == settings.model and embedding_anchor(path.parent / "full") is None
    assert open_bundle(path.parent / "student").compression["student_layers"] == 1
    full = open_bundle(path.parent / "full")
    assert full.labels == ["negative", "neutral", "positive"]
    again: list[str] = []
    assert default_sentiment_bundle(workspace, settings=settings, log=again.append) == path
    assert any("cached in" in line for line in again) and not any("building" in line for line in again)
    assert cache_key(settings.model_copy(update={"epochs": 2})) != cache_key(settings)
    trained = [json.loads(line)["text"] for line in (path.parent / "train.jsonl").read_text().splitlines()]
    from fmkit.apps.monitor.gold import gold_split

    assert not {row["text"] for row in gold_split("test")} & set(trained)  # the gold test half never trains it


def test_scorer_contract_on_the_onnx_bundle_in_micro_batches(tiny_default, tmp_path):
    from fmkit.apps.monitor.scoring import Score, load_scorer

    path = tiny_default[3]
    texts = ["Shares plunge as losses mount", "Profits soar", "Sunak meets bankers", "Oil slumps", "Jobs return",
             "Markets rally", "Retail sales fall"]
    scorer = load_scorer(str(path), None, workspace=tmp_path, log=lambda line: None, batch_size=3)
    scores = scorer.score(texts)
    assert len(scores) == len(texts) and all(isinstance(score, Score) for score in scores)
    for score in scores:
        assert -1.0 <= score.value <= 1.0 and abs(sum(score.probs.values()) - 1.0) < 1e-4
        assert score.sentiment == max(score.probs, key=score.probs.get)
        assert np.isclose(score.value, score.probs["positive"] - score.probs["negative"], atol=1e-6)
        assert score.topics == ("all",)
    whole = load_scorer(str(path), None, workspace=tmp_path, log=lambda line: None).score(texts)

    def as_rows(result):
        return np.array([[s.probs[label] for label in ("negative", "neutral", "positive")] for s in result])

    # micro-batches of 3 vs one batch: INT8 activations are quantized per batch, so close, not bit-equal
    assert np.allclose(as_rows(whole), as_rows(scores), atol=0.02)
    described = scorer.describe()
    assert described["sentiment"]["runtime"] == "onnx" and described["sentiment"]["digest"]
    with pytest.raises(AttributeError):
        scores[0].value = 0.0  # frozen


def _topics_file(tmp_path) -> Path:
    path = tmp_path / "topics.json"
    path.write_text(json.dumps({"losses": ["shares plunge as losses mount", "oil slumps"],
                                "gains": ["profits soar", "markets rally"]}))
    return path


def test_shared_encoder_is_the_bundles_own_graph_with_its_head_input_as_a_second_output(tiny_default):
    import fmkit
    from fmkit.apps.monitor.shared_encoder import EmbeddingOnnxRuntime

    path = tiny_default[3]
    texts = ["Shares plunge as losses mount", "Profits soar", "Sunak meets bankers", "Oil slumps"]
    shared = EmbeddingOnnxRuntime(path)
    logits, vectors = shared.logits_and_embeddings(texts)
    assert shared.runtime == "onnx-int8" and vectors.shape == (len(texts), 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # the bundle's own logits (fmkit.load pads to a multiple of 8: INT8 activations quantize per batch)
    assert np.allclose(logits, fmkit.load(path).logits(texts), atol=0.05)
    assert np.allclose(shared.predict_proba(texts).sum(axis=1), 1.0, atol=1e-5)  # still a full runtime
    assert not (path / "model.onnx").read_bytes().count(b"sentence_embedding")  # the bundle's file is untouched


def test_head_input_refuses_a_graph_without_a_linear_head():
    from onnx import TensorProto, helper

    from fmkit.apps.monitor.shared_encoder import head_input

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["logits"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])])
    with pytest.raises(BadInputError, match="no linear layer"):
        head_input(graph)


def test_scorer_shares_the_sentiment_encoder_with_the_topics_in_one_forward(tiny_default, tmp_path):
    from fmkit.apps.monitor.scoring import load_scorer
    from fmkit.apps.monitor.topics import ANCHORED_THRESHOLD, SHARED_THRESHOLD

    path, topics = tiny_default[3], _topics_file(tmp_path)
    texts = ["Shares plunge as losses mount", "Profits soar", "Sunak meets bankers", "Oil slumps", "Markets rally"]
    shared = load_scorer(str(path), str(topics), workspace=tmp_path, log=lambda line: None, batch_size=2,
                         topic_encoder="sentiment")
    described = shared.describe()
    assert shared.shared and described["one_forward"] and described["sentiment"]["shares_encoder_with_topics"]
    assert described["topics"]["encoder"] == str(path) and described["topics"]["runtime"] == "onnx-int8"
    # this build's student was distilled to its base's embedding: the anchored space's threshold
    assert shared.topics.threshold == ANCHORED_THRESHOLD != SHARED_THRESHOLD
    scores = shared.score(texts)
    # the same topics as the topic model computes on its own from the same encoder, the same sentiment as the bundle
    alone = [topic for start in range(0, len(texts), 2) for topic in shared.topics.assign(texts[start:start + 2])]
    assert [score.topics for score in scores] == alone
    plain = load_scorer(str(path), None, workspace=tmp_path, log=lambda line: None, batch_size=2).score(texts)
    assert [s.sentiment for s in scores] == [s.sentiment for s in plain]
    assert np.allclose([s.value for s in scores], [s.value for s in plain], atol=0.05)
    auto = load_scorer(str(path), str(topics), workspace=tmp_path, log=lambda line: None, batch_size=2)
    # auto: this student is anchored to the tiny encoder, not to MiniLM (auto's topic encoder): its own INT8 MiniLM
    assert not auto.shared and auto.topics.encoder.runtime == "onnx-int8"
    with pytest.raises(BadInputError, match="sharing its encoder with the topics needs an ONNX bundle"):
        load_scorer(str(path.parent / "full"), str(topics), workspace=tmp_path, log=lambda line: None,
                    topic_encoder="sentiment")  # the fp32 PyTorch bundle
    with pytest.raises(BadInputError, match="lexicon has no encoder"):
        load_scorer("lexicon", str(topics), workspace=tmp_path, log=lambda line: None, topic_encoder="sentiment")


def test_auto_shares_the_forward_of_a_student_anchored_to_the_topic_encoder(tiny_default, tmp_path, monkeypatch):
    """``topic_encoder: auto`` picks the base encoder (MiniLM); a sentiment student anchored to that encoder stands in
    for it, so auto shares its forward. Here the tiny encoder plays MiniLM's part."""
    import fmkit.apps.monitor.topics as topics_module
    from fmkit.apps.monitor.scoring import load_scorer

    workspace, settings, _, path = tiny_default
    monkeypatch.setattr(topics_module, "DEFAULT_ENCODER", settings.model)
    lines: list[str] = []
    auto = load_scorer(str(path), str(_topics_file(tmp_path)), workspace=tmp_path, log=lines.append)
    assert auto.shared and auto.describe()["one_forward"]
    assert any("distilled to" in line and "share its forward" in line for line in lines)
    assert auto.topics.threshold == topics_module.ANCHORED_THRESHOLD
    plain = load_scorer(str(path.parent / "full"), str(_topics_file(tmp_path)), workspace=tmp_path,
                        log=lambda line: None)
    assert not plain.shared  # the fine-tuned model's own embedding is not anchored: the topics run their encoder


def test_int8_topic_encoder_is_built_once_and_close_to_the_fp32_encoder(tiny_bert_dir, tmp_path):
    from fmkit.apps.monitor.topic_encoder import int8_topic_encoder
    from fmkit.runtime.embeddings import load_encoder

    lines: list[str] = []
    encoder = int8_topic_encoder(str(tiny_bert_dir), tmp_path, log=lines.append)
    assert any("building it once" in line for line in lines) and encoder.runtime == "onnx-int8"
    texts = ["great funny warm film", "boring dull tedious plot", "the cast"]
    reference = load_encoder(str(tiny_bert_dir)).encode(texts)
    vectors = encoder.encode(texts)
    assert vectors.shape == reference.shape and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors * reference).sum(axis=1).min() > 0.95  # INT8 weights: close, not equal
    again: list[str] = []
    int8_topic_encoder(str(tiny_bert_dir), tmp_path, log=again.append)
    assert any("cached in" in line for line in again) and not any("building" in line for line in again)
    (model,) = (tmp_path / "monitor-topic-encoder").glob("*/model.onnx")
    damaged = bytearray(model.read_bytes())
    damaged[-1] ^= 0xFF
    model.write_bytes(bytes(damaged))  # a damaged cache file is rebuilt, never used
    rebuilt: list[str] = []
    int8_topic_encoder(str(tiny_bert_dir), tmp_path, log=rebuilt.append)
    assert any("differ from their recorded digests" in line for line in rebuilt)
    assert np.allclose(int8_topic_encoder(str(tiny_bert_dir), tmp_path, log=lambda line: None).encode(texts), vectors)
