"""The support assistant on a tiny in-code BERT: build, ask, evaluate, documents, intents, the handoff
calibration, the ANN path and every bad input of issue 16 part 8 (each a clear error, nothing half-written)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import FILLER, NEGATIVE, POSITIVE, write_csv

from fmkit.errors import BadInputError


def category_faq(count: int = 40, seed: int = 0) -> list[tuple[str, str, str, str]]:
    """(id, question, answer, category): the question and its answer share a key word ("item7"), the
    category is the sentiment word's (pos/neg), so BM25 finds every answer and the tiny classifier the intent."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        category = "pos" if index % 2 == 0 else "neg"
        word = rng.choice(POSITIVE if category == "pos" else NEGATIVE)
        rows.append((f"q{index}", f"{' '.join(rng.sample(FILLER, 2))} {word} item{index}",
                     f"item{index} {' '.join(rng.sample(FILLER, 4))} answer{index}", category))
    return rows


HEADER = ("id", "q", "a", "category")


@pytest.fixture(scope="module")
def faq(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("faq") / "faq.csv", category_faq(), header=HEADER)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    rows = category_faq()
    rng = random.Random(1)  # the same answers asked another way
    asked = [(i, f"{rng.choice(FILLER)} item{i[1:]} {rng.choice(FILLER)}", a, c) for i, _, a, c in rows[:20]]
    return write_csv(tmp_path_factory.mktemp("held") / "held.csv", asked, header=HEADER)


def build(encoder, faq, out, **changes):
    from fmkit.apps.assistant.build import build_assistant
    from fmkit.apps.assistant.config import BuildConfig

    settings = {"encoder": str(encoder), "faq": str(faq), **changes}
    return build_assistant(BuildConfig(**settings), out, log=lambda line: None)


@pytest.fixture(scope="module")
def assistant_dir(tiny_bert_dir, faq, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("assistants") / "acme"
    build(tiny_bert_dir, faq, out, intent_column="category", retrieval="hybrid")
    return out


def test_build_writes_only_npy_and_json_and_ask_answers_with_ranked_matches(assistant_dir):
    from fmkit.apps.assistant import Assistant

    files = sorted(p.relative_to(assistant_dir).as_posix() for p in assistant_dir.rglob("*") if p.is_file())
    assert files == ["assistant.json", "index/embeddings.npy", "index/entries.json"]
    assistant = Assistant.open(assistant_dir)
    reply = assistant.ask("  tell me about item3 please ", top_k=3)
    assert set(reply) >= {"answer", "confidence", "handoff", "intent", "matches", "handoff_message"}
    assert [m["rank"] for m in reply["matches"]] == [1, 2, 3]
    assert set(reply["matches"][0]) >= {"id", "text", "score", "source"}
    assert 0.0 <= reply["confidence"] <= 1.0
    assert reply["handoff"] == (reply["confidence"] < assistant.threshold)
    assert (reply["answer"] is None) == reply["handoff"]
    card = assistant.describe()
    assert card["name"] == "acme" and card["faq"]["rows"] == 40 and card["faq"]["categories"] == 2
    assert set(card["handoff"]) >= {"threshold", "precision", "target_precision"}
    assert set(card["retrieval"]["metrics"]) >= {"mrr@10", "recall@1", "recall@5"}


def test_every_retrieval_way_is_measured_and_bm25_finds_the_shared_key_word(assistant_dir):
    from fmkit.apps.assistant import Assistant

    measured = Assistant.open(assistant_dir).manifest["retrieval"]["calibration_metrics"]
    assert set(measured) == {"dense", "bm25", "hybrid"}
    assert measured["bm25"]["recall@1"] == 1.0  # each question shares "itemN" with its answer only
    assert measured["hybrid"]["mrr@10"] >= measured["dense"]["mrr@10"]


def test_cli_build_ask_evaluate_json(tiny_bert_dir, faq, held_out, tmp_path, capsys):
    from fmkit.cli.main import main

    out = tmp_path / "cli-acme"
    assert main(["assistant", "build", "--encoder", str(tiny_bert_dir), "--faq", str(faq), "--question-column", "q",
                 "--answer-column", "a", "--retrieval", "hybrid", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["retrieval"]["mode"] == "hybrid"
    assert main(["assistant", "ask", str(out), "what about item5", "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert {"answer", "confidence", "handoff", "matches"} <= set(reply)
    assert reply["matches"][0]["id"] == "q5"  # BM25 in the fusion: item5 is in one answer only
    assert main(["assistant", "evaluate", str(out), "--data", str(held_out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"mrr@10", "recall@1", "recall@5", "handoff_rate", "accuracy_answered"} <= set(result)
    assert result["questions"] == 20 and result["ways"]["bm25"]["recall@1"] == 1.0
    assert 0.0 <= result["handoff_rate"] <= 1.0 and result["latency_ms"]["p99"] > 0
    assert (out / "reports" / "coverage_precision.png").read_bytes()[:4] == b"\x89PNG"
    from fmkit.apps.assistant import Assistant

    assert Assistant.open(out).describe()["evaluation"]["questions"] == 20  # reports/ is outside the digest


def test_documents_are_chunked_with_their_source(tiny_bert_dir, faq, tmp_path):
    from fmkit.apps.assistant import Assistant

    docs = tmp_path / "manuals"
    (docs / "sub").mkdir(parents=True)
    (docs / "roof.md").write_text("# Roofs\n\nA roof takes two weeks.\n\nTiles last fifty years.", encoding="utf-8")
    (docs / "sub" / "page.html").write_text("<html><head><script>var x = 'hidden';</script></head><body><p>Heat "
                                            "pumps need a permit.</p></body></html>", encoding="utf-8")
    (docs / "notes.txt").write_text("Gutters are cleaned each autumn.", encoding="utf-8")
    (docs / "image.png").write_bytes(b"\x89PNG")  # not a document: skipped
    out = tmp_path / "with-docs"
    manifest = build(tiny_bert_dir, faq, out, documents=str(docs), chunk_chars=100)
    assert manifest["documents"] == {"folder": str(docs), "files": 3, "chunks": 3}
    entries = json.loads((out / "index" / "entries.json").read_text())
    passages = {e["source"]: e["text"] for e in entries if e["kind"] == "document"}
    assert passages == {"notes.txt#1": "Gutters are cleaned each autumn.",
                        "roof.md#1": "# Roofs A roof takes two weeks. Tiles last fifty years.",
                        "sub/page.html#1": "Heat pumps need a permit."}
    matches = Assistant.open(out).ask("gutters autumn", top_k=60)["matches"]
    assert any(m["source"] == "notes.txt#1" and m["kind"] == "document" for m in matches)


def test_intent_bundle_routes_and_is_reported(tiny_bert_dir, tiny_bundle, faq, tmp_path):
    """tiny_bundle classifies pos/neg sentiment words: the FAQ's categories."""
    from fmkit.apps.assistant import Assistant

    out = tmp_path / "routed"
    manifest = build(tiny_bert_dir, faq, out, intent_column="category", intent_bundle=str(tiny_bundle),
                     intent_mass=0.75)
    assert set(manifest["retrieval"]["calibration_metrics"]) == {"dense", "dense+intent", "bm25", "bm25+intent",
                                                                 "hybrid", "hybrid+intent"}
    assistant = Assistant.open(out)
    reply = assistant.ask("the film was wonderful item4")
    assert reply["intent"]["label"] == "pos" and reply["intent"]["probability"] > 0.5
    assert (out / "intent" / "fmkit.json").is_file()  # the classifier travels with the assistant
    question = "wonderful brilliant superb"
    routed = assistant.retriever.rank([question], "dense", True)[0]
    assert routed.intent["label"] == "pos" and routed.intent["probability"] >= 0.75, routed.intent
    categories = [assistant.retriever.entries[i]["category"] for i in routed.indices[:20]]
    assert categories == ["pos"] * 20  # routing puts the predicted intent's 20 answers first
    unrouted = assistant.retriever.rank([question], "dense", False)[0]
    assert sorted(unrouted.indices.tolist()) == sorted(routed.indices.tolist())  # moved, never dropped


def test_intent_bundle_must_know_the_faq_categories(tiny_bert_dir, tiny_bundle, tmp_path):
    rows = [(i, q, a, "billing" if c == "pos" else c) for i, q, a, c in category_faq()]
    faq = write_csv(tmp_path / "other.csv", rows, header=HEADER)
    with pytest.raises(BadInputError, match="'billing'"):
        build(tiny_bert_dir, faq, tmp_path / "out", intent_column="category", intent_bundle=str(tiny_bundle))
    assert not (tmp_path / "out").exists()


def test_threshold_reaches_the_target_precision_with_the_most_coverage():
    from fmkit.apps.assistant.confidence import choose_threshold, coverage_precision

    confidence = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    correct = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, ], dtype=bool)
    correct[4] = False  # 8/9 right down to 0.3, 7/8 down to 0.4
    chosen = choose_threshold(confidence, correct, 0.85)
    assert chosen["threshold"] == 0.4 and chosen["coverage"] == 0.8 and chosen["precision"] == 7 / 8
    curve = coverage_precision(confidence, correct)
    assert [round(p["coverage"], 1) for p in curve] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    with pytest.warns(UserWarning, match="hand every question off"):
        assert choose_threshold(confidence, np.zeros(10, dtype=bool), 0.9)["reached"] is False


def test_reciprocal_rank_fusion_and_ranking_metrics():
    from fmkit.apps.assistant.confidence import ranking_metrics
    from fmkit.apps.assistant.index import RRF_K, reciprocal_rank_fusion

    order, scores = reciprocal_rank_fusion([np.array([3, 1, 2]), np.array([1, 4])])
    assert order.tolist() == [1, 3, 4, 2]
    assert scores[0] == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 1))
    metrics = ranking_metrics(np.array([1, 2, 0, 11]))
    assert metrics["mrr@10"] == pytest.approx((1 + 0.5) / 4)
    assert (metrics["recall@1"], metrics["recall@5"], metrics["recall@10"]) == (0.25, 0.5, 0.5)


def test_hnsw_search_past_the_threshold_finds_what_exact_search_finds():
    from fmkit.apps.assistant.index import DenseIndex

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact, graph = DenseIndex(vectors, ann_threshold=1000), DenseIndex(vectors, ann_threshold=100)
    assert (exact.kind, graph.kind) == ("exact", "hnsw")
    for query in vectors[:20]:
        (top_exact, score_exact), (top_graph, score_graph) = exact.search(query, 5), graph.search(query, 5)
        assert top_graph[0] == top_exact[0]
        np.testing.assert_allclose(score_graph[:1], score_exact[:1], atol=1e-5)


def test_split_by_question_keeps_each_question_in_one_split(tmp_path):
    from fmkit.cli.main import main

    rows = category_faq(60)
    rows.append(("dup", rows[0][1], "a different answer to the same question", rows[0][3]))  # asked twice
    faq = write_csv(tmp_path / "faq.csv", rows, header=HEADER)
    with pytest.warns(UserWarning, match="different answers"):
        assert main(["assistant", "split", "--faq", str(faq), "--intent-column", "category", "--out",
                     str(tmp_path / "split")]) == 0
    import pandas as pd

    parts = {name: pd.read_csv(tmp_path / "split" / f"{name}.csv") for name in ("train", "validation", "held_out")}
    assert sum(len(p) for p in parts.values()) == 61 and len(parts["held_out"]) == 12
    questions = [set(p["q"]) for p in parts.values()]
    assert not (questions[0] & questions[1] or questions[0] & questions[2] or questions[1] & questions[2])
    assert set(parts["held_out"]["category"]) == {"pos", "neg"}


# -- bad input: each a clear error, nothing half-written ----------------------------------------------

def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_missing_and_empty_columns_are_named(tiny_bert_dir, faq, tmp_path):
    out = tmp_path / "bad"
    with pytest.raises(BadInputError, match=r"column\(s\) 'question' not found.*'q'"):
        build(tiny_bert_dir, faq, out, question_column="question")
    empty = write_csv(tmp_path / "empty.csv", [(i, q, "", c) for i, q, _, c in category_faq()], header=HEADER)
    with pytest.raises(BadInputError, match="column 'a' is empty in every row"):
        build(tiny_bert_dir, empty, out)
    assert_nothing_written(out)


def test_duplicate_questions_with_different_answers_are_reported_and_both_kept(tiny_bert_dir, tmp_path):
    rows = category_faq(20)
    rows.append(("q0-bis", rows[0][1].upper(), "another approved answer item0", rows[0][3]))
    rows.append(rows[1])  # an exact repeat: kept once
    faq = write_csv(tmp_path / "dups.csv", rows, header=HEADER)
    with pytest.warns(UserWarning, match="1 question\\(s\\) appear with different answers"):
        manifest = build(tiny_bert_dir, faq, tmp_path / "dups")
    assert manifest["faq"]["duplicate_questions"] == [{"question": rows[0][1], "ids": ["q0", "q0-bis"]}]
    assert manifest["faq"]["dropped_repeats"] == 1 and manifest["index"]["entries"] == 21


def test_an_encoder_bundle_of_the_wrong_task_is_refused(tiny_bundle, faq, tmp_path):
    out = tmp_path / "wrong"
    with pytest.raises(BadInputError, match="text-classification bundle, not a text-retrieval encoder"):
        build(tiny_bundle, faq, out)
    assert_nothing_written(out)


def test_an_empty_index_is_refused(tiny_bert_dir, tmp_path):
    faq = write_csv(tmp_path / "blank.csv", [("1", "", "an answer", "x"), ("2", "a question", "", "y")],
                    header=HEADER)
    with pytest.raises(BadInputError, match="nothing to index"):
        build(tiny_bert_dir, faq, tmp_path / "blank")
    assert_nothing_written(tmp_path / "blank")


def test_a_question_over_the_length_limit_or_empty_is_refused(assistant_dir):
    from fmkit.apps.assistant import Assistant

    assistant = Assistant.open(assistant_dir)
    with pytest.raises(BadInputError, match="1001 characters, over this assistant's limit of 1000"):
        assistant.ask("x" * 1001)
    with pytest.raises(BadInputError, match="the question is empty"):
        assistant.ask("   ")


def test_a_non_utf8_faq_names_the_byte(tiny_bert_dir, tmp_path):
    faq = tmp_path / "latin1.csv"
    faq.write_bytes("id,q,a\n1,Qu'est-ce qu'un permis?,Un permis délivré\n".encode("latin-1"))
    with pytest.raises(BadInputError, match=r"line 2, column \d+: byte 0xe9 is not valid UTF-8"):
        build(tiny_bert_dir, faq, tmp_path / "latin")
    assert_nothing_written(tmp_path / "latin")


def test_a_changed_index_file_is_refused_on_open(assistant_dir, tmp_path):
    import shutil

    from fmkit.apps.assistant import Assistant
    from fmkit.errors import BundleIntegrityError

    copy = tmp_path / "tampered"
    shutil.copytree(assistant_dir, copy)
    entries = json.loads((copy / "index" / "entries.json").read_text())
    entries[0]["text"] = "call 555-0100 for a refund"
    (copy / "index" / "entries.json").write_text(json.dumps(entries))
    with pytest.raises(BundleIntegrityError, match="index/entries.json changed"):
        Assistant.open(copy)
    with pytest.raises(BadInputError, match="not an assistant directory"):
        Assistant.open(tmp_path)


def test_a_failed_build_leaves_an_existing_assistant_untouched(tiny_bert_dir, faq, assistant_dir, tmp_path):
    import shutil

    out = tmp_path / "keep"
    shutil.copytree(assistant_dir, out)
    before = (out / "assistant.json").read_bytes()
    with pytest.raises(BadInputError, match="already exists"):
        build(tiny_bert_dir, faq, out)
    bad = write_csv(tmp_path / "bad.csv", [("1", "q", "a", "c")], header=("id", "question", "answer", "category"))
    from fmkit.apps.assistant.build import build_assistant
    from fmkit.apps.assistant.config import BuildConfig

    with pytest.raises(BadInputError):
        build_assistant(BuildConfig(encoder=str(tiny_bert_dir), faq=str(bad)), out, overwrite=True)
    assert (out / "assistant.json").read_bytes() == before


def test_build_config_reports_every_problem_at_once():
    from pydantic import ValidationError

    from fmkit.apps.assistant.config import BuildConfig

    with pytest.raises(ValidationError) as caught:
        BuildConfig(encoder="minilm", faq="f.csv", retrieval="fuzzy", target_precision=1.5, intent_bundle="x")
    text = str(caught.value)
    assert "retrieval='fuzzy'" in text and "target_precision=1.5" in text and "intent_bundle given" in text


def test_a_fine_tuned_encoder_travels_with_the_assistant_and_calibrates_on_its_held_out_questions(
        tiny_bert_dir, faq, tmp_path):
    from fmkit.apps.assistant import Assistant
    from fmkit.finetune.stage import run_finetune
    from fmkit.tasks import finetune_config

    encoder = tmp_path / "faq-encoder"
    run_finetune(finetune_config({
        "task": "text-retrieval", "model": str(tiny_bert_dir), "max_length": 32,
        "data": {"source": str(faq), "query_column": "q", "document_column": "a"},
        "train": {"epochs": 1, "batch_size": 16, "learning_rate": 3e-3, "progress": False, "precision": "fp32",
                  "device": "cpu"}}), encoder)
    out = tmp_path / "tuned"
    manifest = build(encoder, faq, out)
    assert manifest["handoff"]["calibration_source"].startswith("the encoder's held-out questions")
    assert 10 <= manifest["handoff"]["calibration_questions"] < 40  # only what the encoder did not train on
    assert (out / "encoder" / "fmkit.json").is_file()
    assistant = Assistant.open(out)
    assert assistant.describe()["encoder"]["digest"] == manifest["encoder"]["digest"]
    assert assistant.ask("item9")["matches"][0]["source"].startswith("faq:")


def test_calibration_leaves_out_questions_the_intent_classifier_trained_on(tiny_bert_dir, tmp_path):
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    faq = write_csv(tmp_path / "faq.csv", category_faq(120), header=HEADER)
    intents = tmp_path / "intents"
    run_finetune(FinetuneConfig(model=str(tiny_bert_dir), few_shot="off",
                                data={"source": str(faq), "text_column": "q", "label_column": "category"},
                                train={"epochs": 1, "batch_size": 16, "learning_rate": 5e-3, "progress": False,
                                       "precision": "fp32"}), intents)
    manifest = build(tiny_bert_dir, faq, tmp_path / "routed", intent_column="category", intent_bundle=str(intents))
    handoff = manifest["handoff"]
    assert handoff["calibration_source"].startswith("the FAQ's own questions, less 96 the intent classifier")
    assert handoff["calibration_questions"] == 120 - 96  # its validation and test questions only


def test_an_int8_intent_bundle_runs_on_onnx_runtime_inside_the_assistant(tiny_bert_dir, tiny_bundle, faq, held_out,
                                                                         tmp_path):
    """`fmkit compress --method quantize-dynamic` on the intent bundle: the assistant runs it on its own runtime
    (ONNX Runtime INT8, no second PyTorch forward) and evaluate names both runtimes beside the latency."""
    from fmkit.apps.assistant import Assistant
    from fmkit.apps.assistant.evaluate import evaluate_assistant
    from fmkit.compress import CompressConfig
    from fmkit.compress.stage import run_compress

    variant = tmp_path / "intents-int8"
    run_compress(tiny_bundle, CompressConfig(method="quantize-dynamic", max_accuracy_drop=100,
                                             measure={"latency_samples": 10, "threads": 1}), variant)
    out = tmp_path / "int8-intents"
    build(tiny_bert_dir, faq, out, intent_column="category", intent_bundle=str(variant))
    assistant = Assistant.open(out)
    runtime = json.loads((out / "intent" / "fmkit.json").read_text())["runtime"]
    assert runtime.startswith("onnx") and assistant.retriever.intent.runtime == runtime
    assert assistant.ask("the film was wonderful item4")["intent"]["label"] == "pos"
    result = evaluate_assistant(assistant, str(held_out), "q", "a", write_report=False)
    assert result["latency_ms"]["intent_runtime"] == runtime and result["latency_ms"]["runtime"] == "torch"
