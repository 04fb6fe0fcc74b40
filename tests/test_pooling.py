"""Classification from the base's own sentence pooling (issue 15 part 4), on a tiny BERT with a 1_Pooling folder.

The pooled bundle must open in sentence-transformers with fmkit's logits, export to ONNX with the
same logits, and go through every compression method, LoRA and captum explanations like any other.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

TRAIN = {"epochs": 2, "batch_size": 16, "learning_rate": 5e-3, "progress": False, "precision": "fp32",
         "device": "cpu", "early_stopping_patience": 2}
TEXTS = ["a great and warm film", "a dull and tedious plot", "the movie was quite boring", "superb acting"]


@pytest.fixture(scope="module")
def tiny_encoder(tiny_sentence_encoder) -> Path:
    return tiny_sentence_encoder


def finetune(model: Path, data: Path, out: Path, **settings):
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    return run_finetune(FinetuneConfig(model=str(model), data={"source": str(data)}, train=TRAIN, **settings), out)


@pytest.fixture(scope="module")
def pooled_bundle(tiny_encoder, reviews_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pooled") / "bundle"
    finetune(tiny_encoder, reviews_csv, out)
    return out


def fmkit_probabilities(bundle: Path, texts=TEXTS) -> np.ndarray:
    import fmkit
    from fmkit.bundle import read_manifest

    labels = read_manifest(bundle).labels
    return np.array([[p.probabilities[label] for label in labels]
                     for p in fmkit.load(bundle, device="cpu").predict(texts)])


def sentence_transformers_probabilities(bundle: Path, texts=TEXTS) -> np.ndarray:
    import torch
    from sentence_transformers import SentenceTransformer

    logits = SentenceTransformer(str(bundle), device="cpu").encode(texts, convert_to_tensor=True)
    return torch.softmax(logits.float(), dim=-1).numpy()


def test_auto_pooling_is_the_one_the_base_declares(tiny_encoder, tiny_bert_dir):
    from fmkit.finetune.text_model import classifier_pooling
    from fmkit.models import resolve_model

    assert classifier_pooling(resolve_model(str(tiny_encoder)), "auto", "bert") == "mean"
    assert classifier_pooling(resolve_model(str(tiny_bert_dir)), "auto", "bert") == "pooler"  # declares none
    assert classifier_pooling(resolve_model(str(tiny_encoder)), "auto", "roberta") == "pooler"
    assert classifier_pooling(resolve_model(str(tiny_encoder)), "cls", "bert") == "cls"


def test_pooled_bundle_opens_in_sentence_transformers_with_the_same_predictions(pooled_bundle):
    from fmkit.bundle import open_bundle, read_manifest

    open_bundle(pooled_bundle)  # the sentence-transformers files are part of the verified bundle
    manifest = read_manifest(pooled_bundle)
    assert manifest.training["head"]["pooling"] == "mean"
    config = json.loads((pooled_bundle / "config.json").read_text())
    assert config["classifier_pooling"] == "mean" and config["architectures"] == ["PooledBertForSequenceClassification"]
    modules = json.loads((pooled_bundle / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Dense"]
    texts = TEXTS + ["superb but dull " * 100]  # truncated at the bundle's max_length by both
    assert json.loads((pooled_bundle / "sentence_bert_config.json").read_text())["max_seq_length"] == manifest.max_length
    ours, theirs = fmkit_probabilities(pooled_bundle, texts), sentence_transformers_probabilities(pooled_bundle, texts)
    assert np.abs(ours - theirs).max() < 1e-5
    assert len(set(ours.argmax(1))) == 2  # it learned something, so agreement is not two constant outputs


def test_base_without_pooling_keeps_the_bert_pooler_head(tiny_bundle):
    config = json.loads((tiny_bundle / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and not config.get("classifier_pooling")
    assert not (tiny_bundle / "modules.json").exists()


@pytest.mark.parametrize("method", ["export-onnx", "quantize-dynamic", "quantize-static", "prune-structured",
                                    "prune-magnitude", "distill", "bf16"])
def test_every_compression_method_applies_to_a_pooled_bundle(pooled_bundle, tmp_path, method):
    from fmkit.bundle import read_manifest
    from fmkit.compress.config import CompressConfig
    from fmkit.compress.stage import run_compress

    options = {"distill": {"student_layers": 1, "train": {"epochs": 1, "batch_size": 16, "progress": False,
                                                          "device": "cpu"}},
               "prune-structured": {"calibration_samples": 16, "recovery": None},
               "quantize-static": {"calibration_samples": 16, "validation_samples": 50, "fallback": False}}
    run_compress(pooled_bundle, CompressConfig(method={"name": method, **options.get(method, {})},
                                               max_accuracy_drop=100, measure={"enabled": False}),
                 tmp_path / "variant", log=lambda line: None)
    variant = tmp_path / "variant"
    assert read_manifest(variant).compression["status"] == "ok"
    ours = fmkit_probabilities(variant)
    if method == "export-onnx":  # ONNX Runtime computes the pooled model's logits
        assert np.abs(ours - fmkit_probabilities(pooled_bundle)).max() < 1e-4
    if read_manifest(variant).runtime == "torch":  # a torch variant rewrites its sentence-transformers head too
        tolerance = 2e-2 if method == "bf16" else 1e-5
        assert np.abs(ours - sentence_transformers_probabilities(variant)).max() < tolerance


def test_lora_on_a_pooled_base_merges_into_a_bundle_sentence_transformers_opens(tiny_encoder, reviews_csv, tmp_path):
    manifest = finetune(tiny_encoder, reviews_csv, tmp_path / "lora", method="lora")
    assert manifest.training["head"]["pooling"] == "mean" and manifest.training["merged"]
    bundle = tmp_path / "lora"
    assert np.abs(fmkit_probabilities(bundle) - sentence_transformers_probabilities(bundle)).max() < 1e-5


def test_captum_explains_a_pooled_bundle_completely(pooled_bundle):
    import torch

    from fmkit.audit.explain import Explainer

    explainer = Explainer(pooled_bundle, device="cpu", n_steps=200, internal_batch_size=100, batch_size=2)
    (explanation,) = explainer.explain(["the film was superb and warm"])
    ids = explainer.tokenizer("the film was superb and warm", return_tensors="pt")["input_ids"]
    special = torch.tensor([[t in explainer.tokenizer.all_special_ids for t in ids[0].tolist()]])
    baseline = torch.where(special, ids, torch.full_like(ids, explainer.tokenizer.pad_token_id))
    target = explainer.labels.index(explanation.label)
    with torch.no_grad():
        difference = (explainer.model(input_ids=ids).logits[0, target]
                      - explainer.model(input_ids=baseline).logits[0, target]).item()
    total = sum(t["attribution"] for t in explanation.tokens)
    assert total == pytest.approx(difference, abs=2e-3 + 0.01 * abs(difference))


@pytest.mark.parametrize("classes", [2, 3])
def test_probe_head_computes_the_logistic_regressions_probabilities(classes):
    import torch
    from sklearn.linear_model import LogisticRegression

    from fmkit.finetune.probe import fit_probe

    rng = np.random.default_rng(0)
    labels = np.arange(90) % classes
    features = (rng.normal(size=(90, 8)) * 3 + 5 + labels[:, None]).astype(np.float32)
    weight, bias, facts = fit_probe(features, labels, classes, seed=0)
    head = torch.softmax(torch.as_tensor(features @ weight.T + bias), dim=-1).numpy()
    mean, scale = features.mean(0), features.std(0) + 1e-6
    reference = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit((features - mean) / scale, labels)
    assert np.abs(head - reference.predict_proba((features - mean) / scale)).max() < 1e-4
    assert facts["train_accuracy"] == pytest.approx(reference.score((features - mean) / scale, labels), abs=1e-4)


def test_a_label_without_training_rows_is_never_predicted_by_the_probe():
    from fmkit.finetune.probe import fit_probe

    rng = np.random.default_rng(1)
    labels = np.arange(40) % 2  # class 2 has no rows
    weight, bias, _ = fit_probe(rng.normal(size=(40, 4)).astype(np.float32) + labels[:, None], labels, 3, seed=0)
    logits = rng.normal(size=(100, 4)).astype(np.float32) @ weight.T + bias
    assert not (logits.argmax(1) == 2).any()


def test_lp_ft_starts_training_from_the_probe(tiny_encoder, reviews_csv):
    """head_init=probe: before any step, the model already classifies the training split as the probe did."""
    from fmkit.finetune import FinetuneConfig
    from fmkit.runtime.inference import stream_metrics
    from fmkit.tasks import TASKS

    task = TASKS.get("text-classification")
    cfg = FinetuneConfig(model=str(tiny_encoder), data={"source": str(reviews_csv)}, train=TRAIN, head_init="probe")
    data = task.load_data(cfg.data)
    setup = task.prepare(cfg, data)
    probe = setup.facts["head"]["probe"]
    label_ids = [data.label_names.index(data.labels[i]) for i in data.splits["train"]]
    metrics = stream_metrics(setup.model, setup.inputs["train"], label_ids, data.label_names,
                             setup.tools.pad_token_id, 64, "cpu")
    assert setup.facts["head"]["init"] == "probe"
    assert metrics["accuracy"] == pytest.approx(probe["train_accuracy"], abs=1e-4)  # facts keep 4 decimals


@pytest.mark.parametrize("method", ["full", "lora"])
def test_dp_sgd_trains_a_pooled_head(tiny_encoder, reviews_csv, tmp_path, method):
    """Opacus' per-sample gradients (ghost clipping for full, hooks for LoRA) go through the pooled head too."""
    from fmkit.bundle import read_manifest
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    cfg = FinetuneConfig(model=str(tiny_encoder), data={"source": str(reviews_csv)}, method=method,
                         train={**TRAIN, "batch_size": 24, "early_stopping_patience": None},
                         privacy={"target_epsilon": 8.0, "delta": 1e-4})
    run_finetune(cfg, tmp_path / "dp")
    manifest = read_manifest(tmp_path / "dp")
    assert manifest.training["head"]["pooling"] == "mean" and not manifest.training["head"]["few_shot"]
    assert 7.9 <= manifest.privacy["dp"]["epsilon"] <= 8.0
    assert np.abs(fmkit_probabilities(tmp_path / "dp") - sentence_transformers_probabilities(tmp_path / "dp")).max() < 1e-5


def test_distill_with_an_embedding_teacher_keeps_the_student_embedding_near_the_base(pooled_bundle, tiny_bundle,
                                                                                     tiny_encoder, tmp_path):
    """The anchored student embeds closer to its base encoder than a plain student; its lineage names the anchor."""
    from fmkit.bundle import read_manifest
    from fmkit.compress.config import CompressConfig
    from fmkit.compress.methods.distill import embedding_anchor_of, embedding_loss
    from fmkit.compress.stage import run_compress
    from fmkit.errors import BadInputError

    import torch

    a, b = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    assert float(embedding_loss(a, b)) == pytest.approx(((1 - 2 ** -0.5) + 2) / 2, rel=1e-6)

    train = {"epochs": 2, "batch_size": 16, "learning_rate": 5e-3, "progress": False, "device": "cpu"}

    def student(name: str, **options):
        method = {"name": "distill", "student_layers": 1, "train": train, **options}
        run_compress(pooled_bundle, CompressConfig(method=method, max_accuracy_drop=100, measure={"enabled": False}),
                     tmp_path / name, log=lambda line: None)
        return read_manifest(tmp_path / name)

    anchored = student("anchored", embedding_teacher="base", embedding_weight=5.0)
    record = anchored.compression["embedding_teacher"]
    assert record["name"] == str(tiny_encoder) and record["digest"].startswith("sha256:") and record["weight"] == 5.0
    assert embedding_anchor_of(anchored) == str(tiny_encoder)
    assert all("embedding_cosine" in row for row in anchored.compression["distillation"]["history"]
               if "macro_f1" in row)
    plain = student("plain")
    assert embedding_anchor_of(plain) is None and "embedding_teacher" not in plain.compression
    from fmkit.compress.methods.distill import EmbeddingAnchor, mean_cosine
    from fmkit.data.batching import encode_texts
    from fmkit.models.text_classifier import load_text_classifier
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_encoder))
    encoded = encode_texts(tokenizer, TEXTS * 4, 32, warn=False)
    anchor = EmbeddingAnchor(str(tiny_encoder), anchored, "cpu")
    cosine = {name: mean_cosine(load_text_classifier(tmp_path / name).eval(), anchor, encoded, tokenizer.pad_token_id,
                                "cpu") for name in ("anchored", "plain")}
    assert cosine["anchored"] > cosine["plain"] + 0.05, cosine
    with pytest.raises(BadInputError, match="reads BERT's \\[CLS\\] pooler"):  # a head without a sentence embedding
        run_compress(tiny_bundle, CompressConfig(method={"name": "distill", "student_layers": 1, "train": train,
                                                         "embedding_teacher": "base"}, measure={"enabled": False}),
                     tmp_path / "cls", log=lambda line: None)
