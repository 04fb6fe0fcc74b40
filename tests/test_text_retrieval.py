"""The text-retrieval task on a tiny in-code BERT: pairs, the ranking loss, mining, metrics, the bundle in
sentence-transformers layout, the encoder runtime on PyTorch / ONNX / INT8, and `fmkit finetune|evaluate`."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import FILLER, NEGATIVE, POSITIVE, write_csv

TRAIN = {"epochs": 10, "batch_size": 16, "learning_rate": 3e-3, "progress": False, "precision": "fp32",
         "device": "cpu"}


def synthetic_faq(count: int = 60, seed: int = 0) -> list[tuple[str, str]]:
    """Questions whose answer shares its two key words (a word and a number): learnable by a tiny encoder."""
    rng = random.Random(seed)
    words = POSITIVE + NEGATIVE
    rows = []
    for index in range(count):
        key = f"{words[index % len(words)]} {index}"
        rows.append((f"{' '.join(rng.sample(FILLER, 2))} {key}",
                     f"{' '.join(rng.sample(FILLER, 4))} {key} {' '.join(rng.sample(FILLER, 3))}"))
    return rows


@pytest.fixture(scope="module")
def faq_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("faq") / "faq.csv", synthetic_faq(), header=("q", "a"))


def retrieval_config(model, source, **changes):
    from fmkit.tasks import finetune_config

    settings = {"task": "text-retrieval", "model": str(model),
                "data": {"source": str(source), "query_column": "q", "document_column": "a"},
                "train": TRAIN, "max_length": 32, **changes}
    return finetune_config(settings)


@pytest.fixture(scope="module")
def retrieval_bundle(tiny_bert_dir, faq_csv, tmp_path_factory) -> Path:
    from fmkit.finetune.stage import run_finetune

    out = tmp_path_factory.mktemp("retrieval") / "faq-encoder"
    run_finetune(retrieval_config(tiny_bert_dir, faq_csv), out)
    return out


# -- pieces -----------------------------------------------------------------------------------------------

def test_metrics_against_a_hand_computed_ranking():
    from fmkit.retrieval.metrics import ranking_metrics

    documents = np.eye(4, dtype=np.float32)
    # query 0 ranks doc 0 first; query 1 ranks doc 3, then doc 1 (its answer) second; query 2's answer is absent
    queries = np.array([[1, 0, 0, 0], [0, 0.6, 0, 0.8], [0.1, 0.05, -0.05, 0.99]], dtype=np.float32)
    metrics = ranking_metrics(queries, documents, [{0}, {1}, {2}])
    assert metrics["count"] == 3 and metrics["index_size"] == 4
    assert metrics["recall@1"] == pytest.approx(1 / 3) and metrics["accuracy"] == metrics["recall@1"]
    assert metrics["mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)  # doc 2 ranks last of four, not absent
    assert metrics["ndcg@10"] == pytest.approx((1 + 1 / np.log2(3) + 1 / np.log2(5)) / 3)
    assert metrics["recall@5"] == 1.0


def test_ranking_loss_masks_other_right_answers_and_is_symmetric():
    import torch
    import torch.nn.functional as F

    from fmkit.retrieval.loss import ranking_loss

    torch.manual_seed(0)
    query, candidates = F.normalize(torch.randn(3, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    none = torch.zeros(3, 5, dtype=torch.bool)
    expected = F.cross_entropy(20 * query @ candidates.T, torch.arange(3))
    assert torch.allclose(ranking_loss(query, candidates, none, 20.0, False), expected)
    exclude = none.clone()
    exclude[0, 4] = True  # candidate 4 is another right answer of query 0: not a negative
    logits = 20 * query @ candidates.T
    logits[0, 4] = float("-inf")
    assert torch.allclose(ranking_loss(query, candidates, exclude, 20.0, False), F.cross_entropy(logits, torch.arange(3)))
    backward = F.cross_entropy(20 * candidates[:3] @ query.T, torch.arange(3))
    assert torch.allclose(ranking_loss(query, candidates, none, 20.0, True), (expected + backward) / 2)


def test_hard_negatives_skip_answers_and_near_duplicates():
    from fmkit.retrieval.negatives import mine_hard_negatives

    documents = np.array([[1, 0, 0], [0.999, 0.0447, 0], [0.8, 0.6, 0], [0.1, 0.99, 0], [0, 0, 1]], dtype=np.float32)
    queries = np.array([[1, 0, 0]], dtype=np.float32)
    chosen, facts = mine_hard_negatives(queries, documents, [0], [{0}], count=2, depth=4, margin=0.05, seed=0)
    # doc 1 scores 0.999 of the answer's 1.0: above the margin, likely another right answer, so skipped
    assert chosen.tolist() == [[2, 3]] and facts["mined"] == 2 and facts["mean_rank"] == 3.5


def test_pairs_are_split_by_question_and_duplicates_reported(tmp_path):
    from fmkit.retrieval.config import RetrievalDataConfig
    from fmkit.retrieval.data import load_pairs

    rows = synthetic_faq(40) + [("the plot great 0", "another answer to the same question"), ("", "no question")]
    rows.insert(0, ("the plot great 0", "the first answer"))
    path = write_csv(tmp_path / "pairs.csv", rows, header=("q", "a"))
    with pytest.warns(UserWarning, match="questions have more than one answer"):
        data = load_pairs(RetrievalDataConfig(source=str(path), query_column="q", document_column="a", seed=3))
    assert data.report["empty_dropped"] == 1 and data.report["questions_with_several_answers"] == 1
    assert len(data.documents) == len(set(data.documents)) == len(data.queries)
    where = {name: {data.queries[i] for i in split} for name, split in data.splits.items()}
    assert not (where["train"] & where["test"]) and not (where["train"] & where["validation"])
    twice = [i for i, q in enumerate(data.queries) if q == "the plot great 0"]
    assert len(twice) == 2 and data.relevant(twice)[0] == data.relevant(twice)[1] and len(data.relevant(twice)[0]) == 2


def test_missing_columns_are_bad_input(tmp_path):
    from fmkit.errors import BadInputError
    from fmkit.retrieval.config import RetrievalDataConfig
    from fmkit.retrieval.data import load_pairs

    path = write_csv(tmp_path / "pairs.csv", synthetic_faq(12), header=("question", "answer"))
    with pytest.raises(BadInputError, match=r"column\(s\) 'q', 'a' not found.*--query-column/--document-column"):
        load_pairs(RetrievalDataConfig(source=str(path), query_column="q", document_column="a"))
    with pytest.raises(ValueError, match="query_column and document_column are both 'q'"):
        RetrievalDataConfig(source=str(path), query_column="q", document_column="q")


# -- the task through the finetune stage ------------------------------------------------------------------

def test_finetuned_encoder_beats_its_zero_shot_start_and_records_everything(retrieval_bundle):
    from fmkit.bundle import open_bundle

    manifest = open_bundle(retrieval_bundle)
    assert manifest.task == "text-retrieval" and manifest.training["method"] == "full"
    test, zero_shot = manifest.metrics["test"], manifest.training["zero_shot"]["test"]
    assert test["index_size"] == 60 and test["count"] == 12  # 20% of 60 questions against all 60 answers
    assert set(test) >= {"mrr@10", "recall@1", "recall@5", "recall@10", "ndcg@10"}
    assert test["mrr@10"] > zero_shot["mrr@10"] + 0.1, (test, zero_shot)
    assert manifest.training["mining"]["hard_negatives"] == 1 and manifest.training["pooling"] == "mean"
    assert manifest.training["best_metric"] is not None  # early-stopped on validation MRR@10
    files = set(manifest.files)
    assert {"modules.json", "1_Pooling/config.json", "sentence_bert_config.json", "model.safetensors"} <= files


def test_sentence_transformers_opens_the_bundle_with_the_same_embeddings(retrieval_bundle):
    from sentence_transformers import SentenceTransformer

    from fmkit.retrieval import load_encoder

    texts = ["the plot great 0", "a film is dull 9 and very long"]
    ours = load_encoder(retrieval_bundle)
    theirs = SentenceTransformer(str(retrieval_bundle), device="cpu").encode(texts)
    assert ours.runtime == "torch" and ours.digest.startswith("sha256:")
    np.testing.assert_allclose(ours.encode(texts), theirs, atol=1e-5)
    assert np.allclose(np.linalg.norm(theirs, axis=1), 1, atol=1e-5)


def test_onnx_and_int8_variants_keep_the_embeddings_and_record_ranking_metrics(retrieval_bundle, tmp_path):
    from fmkit.bundle import read_manifest
    from fmkit.compress.config import CompressConfig
    from fmkit.compress.stage import run_compress
    from fmkit.retrieval import load_encoder

    texts = ["the plot great 0", "a film is dull 9 and very long"]
    reference = load_encoder(retrieval_bundle).encode(texts)
    for method, runtime, tolerance in (("export-onnx", "onnx", 1e-4), ("quantize-dynamic", "onnx-int8", 0.2)):
        out = tmp_path / method
        run_compress(retrieval_bundle, CompressConfig(method={"name": method}, max_accuracy_drop=100,
                                                      measure={"enabled": False}), out, log=lambda line: None)
        encoder = load_encoder(out)
        assert encoder.runtime == runtime
        vectors = encoder.encode(texts)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
        assert np.abs(vectors - reference).max() < tolerance
        manifest = read_manifest(out)
        assert manifest.compression["status"] == "ok" and "mrr@10" in manifest.metrics["test"]


def test_cli_compress_of_an_encoder_prints_its_measured_figures(retrieval_bundle, tmp_path, capsys):
    """The text summary of `fmkit compress ENCODER` (not --json) names the encoder's figures, peak RSS included."""
    from fmkit.cli.main import main as cli

    out = tmp_path / "encoder-onnx"
    assert cli(["compress", str(retrieval_bundle), "--method", "export-onnx", "--out", str(out),
                "--max-accuracy-drop", "100", "--latency-samples", "10", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (export-onnx)" in printed
    assert re.search(r"onnx: p50 \d+\.\d ms, p95 \d+\.\d ms, \d+\.\d texts/s at batch 32, \d+\.\d MB, peak RSS \d+ MB",
                     printed), printed


def test_lora_trains_the_encoder_and_saves_merged_weights_and_the_adapter(tiny_bert_dir, faq_csv, tmp_path):
    from fmkit.finetune.stage import run_finetune

    cfg = retrieval_config(tiny_bert_dir, faq_csv, method={"name": "lora", "r": 4}, symmetric=True,
                           train={**TRAIN, "epochs": 1, "learning_rate": 5e-3})
    manifest = run_finetune(cfg, tmp_path / "lora")
    assert manifest.training["adapter"] == "adapter" and manifest.training["loss"]["symmetric"] is True
    assert manifest.training["trainable_parameters"] < manifest.training["total_parameters"]
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").is_file()
    assert "mrr@10" in manifest.metrics["test"]


def test_zero_shot_base_and_wrong_bundles(tiny_bert_dir, tiny_bundle, retrieval_bundle):
    from fmkit.errors import BadInputError
    from fmkit.retrieval import load_encoder

    base = load_encoder(str(tiny_bert_dir))
    vectors = base.encode(["great film", "dull plot", "great film"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 32) and base.runtime == "torch"
    assert np.allclose(vectors[0], vectors[2]) and base.encode([]).shape == (0, 32)
    with pytest.raises(BadInputError, match="is a text-classification bundle, not a text-retrieval encoder"):
        load_encoder(tiny_bundle)
    with pytest.raises(BadInputError, match="has no model.onnx; make one with `fmkit compress"):
        load_encoder(retrieval_bundle, runtime="onnx")
    import fmkit

    with pytest.raises(BadInputError, match=r"is a text-retrieval bundle: fmkit.load predicts labels.*load_encoder"):
        fmkit.load(retrieval_bundle)


def test_cli_finetune_and_evaluate_print_the_ranking_metrics(tiny_bert_dir, faq_csv, tmp_path, capsys):
    from fmkit.cli.main import main as cli

    out = tmp_path / "cli-encoder"
    # no --task: a query/document column means pairs
    assert cli(["finetune", "--model", str(tiny_bert_dir), "--data", str(faq_csv), "--query-column", "q",
                "--document-column", "a", "--out", str(out), "--epochs", "2", "--batch-size", "16",
                "--learning-rate", "3e-3", "--max-length", "32", "--hard-negatives", "2", "--symmetric",
                "--no-progress", "--precision", "fp32", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "mrr@10" in printed and "test (zero-shot)" in printed
    assert cli(["evaluate", str(out), "--json", "--no-record"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    from fmkit.bundle import read_manifest

    manifest = read_manifest(out)
    assert manifest.task == "text-retrieval" and manifest.training["mining"]["hard_negatives"] == 2
    assert metrics["mrr@10"] == pytest.approx(manifest.metrics["test"]["mrr@10"], abs=1e-6)
    assert metrics["runtime"] == "torch" and metrics["index_size"] == 60


def test_document_queries_add_a_pseudo_question_per_document(tiny_bert_dir, faq_csv, tmp_path):
    from fmkit.finetune.stage import run_finetune
    from fmkit.retrieval.pseudo import pseudo_pairs

    assert pseudo_pairs(["Roofs take two weeks. We order the tiles first.", "Yes. It does.", "One sentence only"]) == [
        (0, "Roofs take two weeks.", "We order the tiles first.")]
    rows = [(q, f"{a}. the story was very long") for q, a in synthetic_faq()]  # two sentences each
    path = write_csv(tmp_path / "two-sentences.csv", rows, header=("q", "a"))
    manifest = run_finetune(retrieval_config(tiny_bert_dir, path, document_queries=True,
                                             train={**TRAIN, "epochs": 1}), tmp_path / "pseudo")
    assert manifest.training["document_queries"] == 60 and "mrr@10" in manifest.metrics["test"]


def test_a_partial_training_section_keeps_the_retrieval_defaults():
    cfg = retrieval_config("minilm", "pairs.csv", train={"progress": False})  # what `--no-progress` alone makes
    assert (cfg.train.epochs, cfg.train.early_stopping_patience, cfg.train.progress) == (4, 2, False)
    assert retrieval_config("minilm", "pairs.csv", train={"epochs": "auto"}).train.epochs == "auto"


def test_too_few_candidates_are_filled_with_random_non_answers():
    from fmkit.retrieval.negatives import mine_hard_negatives

    documents = np.eye(3, dtype=np.float32)
    chosen, facts = mine_hard_negatives(documents[:1], documents, [0], [{0}], count=2, depth=1, margin=0.05, seed=0)
    assert sorted(chosen[0].tolist()) == [1, 2] and facts["mined"] == 1 and facts["random_fill"] == 1
    chosen, _ = mine_hard_negatives(documents[:1], documents[:2], [0], [{0, 1}], count=1, depth=5, margin=0, seed=0)
    assert chosen.tolist() == [[0]]  # every document is an answer: the positive, which the loss masks
