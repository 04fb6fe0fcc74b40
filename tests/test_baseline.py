"""The baseline every run reports: a logistic regression on the frozen base model's features.

Checked on the tiny in-code BERT and a tiny CNN: the features are the frozen base's pooled embeddings
(text) and penultimate activations (images), the probe is scored on the same rows as the model,
``fmkit evaluate`` reports it, and the card, the report and the gate rule read the gain over it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from fmkit.audit.gate import Policy, check_policy
from fmkit.bundle import Manifest, read_manifest, update_manifest
from fmkit.evaluate import baseline as baseline_module
from fmkit.evaluate.baseline import (baseline_warning, fit_probe, frozen_baseline, gain_over_baseline, gain_points,
                                     probe_sample)
from fmkit.tasks import TASKS


def label_ids_of(data) -> dict:
    label2id = {label: index for index, label in enumerate(data.label_names)}
    return {name: [label2id[data.labels[i]] for i in rows] for name, rows in data.splits.items()}


def text_setup(tiny_bert_dir, reviews_csv, **data):
    from fmkit.finetune import FinetuneConfig

    cfg = FinetuneConfig(model=str(tiny_bert_dir), data={"source": str(reviews_csv), **data},
                         train={"precision": "fp32", "device": "cpu"})
    task = TASKS.get("text-classification")
    return task, cfg, task.load_data(cfg.data)


def test_probe_scores_held_out_rows_with_fmkits_metrics_and_picks_c_on_validation():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (3, 8))
    labels = np.arange(90) % 3
    features = centres[labels] + rng.normal(0, 0.5, (90, 8))
    held = {"validation": (features[60:75], labels[60:75]), "test": (features[75:], labels[75:])}
    # a fourth label the training split never saw: never predicted, and its F1 of 0 counts in macro-F1
    scores = fit_probe(features[:60], labels[:60], held, ["a", "b", "c", "unseen"])
    assert scores["C"] in baseline_module.REGULARISATION
    assert scores["test"]["accuracy"] == 1.0 and scores["test"]["count"] == 15
    assert scores["test"]["macro_f1"] == pytest.approx(0.75)  # (1 + 1 + 1 + 0) / 4
    assert fit_probe(features[:60], labels[:60], {"test": held["test"]}, ["a", "b", "c"])["C"] == 1.0  # no validation


def test_text_features_are_the_frozen_bases_mean_pooled_embeddings(tiny_bert_dir, reviews_csv):
    import torch
    from transformers import AutoModel, AutoTokenizer

    task, cfg, data = text_setup(tiny_bert_dir, reviews_csv)
    rows = {"test": data.splits["test"][:3]}
    encoder_name, features = task.frozen_features(cfg, data, rows)
    assert "mean pooling" in encoder_name and features["test"].shape == (3, 32)
    tokenizer, model = AutoTokenizer.from_pretrained(tiny_bert_dir), AutoModel.from_pretrained(tiny_bert_dir).eval()
    batch = tokenizer([data.texts[i] for i in rows["test"]], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(features["test"], expected, atol=1e-5)


def test_frozen_baseline_on_the_finetune_split(tiny_bert_dir, reviews_csv):
    task, cfg, data = text_setup(tiny_bert_dir, reviews_csv)
    result = frozen_baseline(task, cfg, data, label_ids_of(data))
    assert result["train_rows"] == result["train_rows_available"] == len(data.splits["train"])
    assert result["test"]["count"] == len(data.splits["test"])
    assert result["validation"]["count"] == len(data.splits["validation"])
    assert 0.0 <= result["test"]["accuracy"] <= 1.0 and result["seconds"] >= 0
    assert result["method"] == baseline_module.METHOD


def test_a_large_training_split_is_sampled_class_proportionally(tiny_bert_dir, reviews_csv, monkeypatch):
    monkeypatch.setattr(baseline_module, "MAX_PROBE_TRAIN_ROWS", 40)
    task, cfg, data = text_setup(tiny_bert_dir, reviews_csv)
    ids = label_ids_of(data)
    kept = probe_sample(ids["train"], seed=0)
    assert len(kept) == 40 and sorted(np.bincount([ids["train"][i] for i in kept]).tolist()) == [20, 20]
    result = frozen_baseline(task, cfg, data, ids)
    assert result["train_rows"] == 40 and result["train_rows_available"] == len(ids["train"])
    assert result["test"]["count"] == len(data.splits["test"])  # held-out rows are always scored whole


def test_no_baseline_without_frozen_features_or_with_one_training_class(tiny_bert_dir, reviews_csv):
    import dataclasses

    task, cfg, data = text_setup(tiny_bert_dir, reviews_csv)
    assert frozen_baseline(dataclasses.replace(task, frozen_features=None), cfg, data, label_ids_of(data)) is None
    one_class = {name: [0] * len(ids) for name, ids in label_ids_of(data).items()}
    assert frozen_baseline(task, cfg, data, one_class) is None


def test_image_features_are_what_the_base_networks_last_layer_reads(tmp_path):
    import torch

    from fmkit.finetune.images.config import ImageFinetuneConfig
    from fmkit.finetune.images.model import build_model

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (40, 1, 12, 12), dtype=np.uint8), np.arange(40) % 2
    np.savez(tmp_path / "set.npz", images=images, labels=labels)
    cfg = ImageFinetuneConfig(model="cnn", data={"source": str(tmp_path / "set.npz")},
                              train={"precision": "fp32", "device": "cpu"})
    task = TASKS.get("image-classification")
    data = task.load_data(cfg.data)
    rows = {"train": data.splits["train"], "test": data.splits["test"]}
    encoder_name, features = task.frozen_features(cfg, data, rows)
    assert encoder_name == "cnn (random init, frozen)" and features["train"].shape == (len(rows["train"]), 512)
    model, _, _ = build_model(cfg, data)  # the same seeded start as fine-tuning
    model.eval()
    with torch.inference_mode():
        pixels = torch.from_numpy(data.images[rows["test"]]).float()
        expected = model.network.classifier[:-1](model.network.features(model.preprocess(pixels)))
    np.testing.assert_allclose(features["test"], expected.numpy(), atol=1e-4)
    result = frozen_baseline(task, cfg, data, label_ids_of(data))
    assert result["test"]["count"] == len(data.splits["test"]) and "cnn" in result["encoder"]


def test_gain_and_warning_read_the_same_rows():
    baseline = {"method": "lr", "encoder": "minilm (mean pooling, frozen)", "test": {"accuracy": 0.818}}
    assert gain_points({"accuracy": 0.752}, baseline["test"]) == -6.6
    message = baseline_warning({"accuracy": 0.752}, baseline)
    assert "does NOT beat the baseline" in message and "0.7520" in message and "0.8180" in message
    assert baseline_warning({"accuracy": 0.853}, baseline) is None
    assert baseline_warning({"accuracy": 0.8}, None) is None


def manifest_with(test_accuracy, baseline_accuracy=None) -> Manifest:
    training = {"baseline": {"method": "lr", "encoder": "enc", "train_rows": 10,
                             "test": {"accuracy": baseline_accuracy, "macro_f1": 0.5, "count": 20}}}
    return Manifest(task="text-classification", labels=["a", "b"], base_model={"name": "tiny"},
                    metrics={"test": {"accuracy": test_accuracy, "macro_f1": 0.6}},
                    training=training if baseline_accuracy is not None else {})


def test_gate_rule_min_gain_over_baseline():
    below = manifest_with(0.80, 0.85)
    assert gain_over_baseline(below) == -5.0
    assert [r.passed for r in check_policy(below, Policy(min_gain_over_baseline=0))] == [False]
    assert [r.passed for r in check_policy(below, Policy(min_gain_over_baseline=-6))] == [True]
    unmeasured = manifest_with(0.80)
    assert gain_over_baseline(unmeasured) is None
    assert [r.passed for r in check_policy(unmeasured, Policy(min_gain_over_baseline=0))] == [False]
    assert [r.passed for r in check_policy(unmeasured, Policy(min_gain_over_baseline=0, allow_unmeasured=True))] \
        == [True]


def test_card_shows_the_baseline_beside_the_model_or_not_measured(tmp_path):
    from fmkit.audit.card import render_markdown

    card = render_markdown(manifest_with(0.80, 0.85), tmp_path / "m")  # the card prints manifest numbers only
    assert "## Baseline" in card and "the model 0.8000, the baseline 0.8500" in card and "does not beat it" in card
    assert "| test | 0.8500 | 0.5000 | 20 |" in card
    assert "## Baseline\n_not measured_" in render_markdown(manifest_with(0.80), tmp_path / "m")


@pytest.fixture()
def evaluated_bundle(tiny_bundle, tmp_path):
    copy = tmp_path / "reviews"
    shutil.copytree(tiny_bundle, copy)
    update_manifest(copy, lambda m: m.training.pop("baseline", None))  # as a bundle made before the baseline
    return copy


def test_evaluate_fits_the_baseline_on_the_bundles_training_split(evaluated_bundle, tiny_bert_dir, reviews_csv):
    from fmkit.evaluate.stage import EvaluateConfig, evaluate_bundle

    metrics = evaluate_bundle(evaluated_bundle, EvaluateConfig(device="cpu"))
    baseline = metrics["baseline"]
    task, cfg, data = text_setup(tiny_bert_dir, reviews_csv)
    expected = frozen_baseline(task, cfg, data, label_ids_of(data))  # the finetune-time figure, same rows
    assert baseline["measured"] == "now" and baseline["count"] == metrics["count"]
    assert baseline["accuracy"] == pytest.approx(expected["test"]["accuracy"])
    assert baseline["train_rows"] == expected["train_rows"]
    recorded = read_manifest(evaluated_bundle)
    assert recorded.metrics["test"]["baseline"]["accuracy"] == baseline["accuracy"]
    assert gain_over_baseline(recorded) == gain_points(metrics, baseline)
    assert "baseline" not in evaluate_bundle(evaluated_bundle, EvaluateConfig(device="cpu", baseline=False),
                                             record=False)


def test_evaluate_on_another_file_fits_on_the_training_rows_only(evaluated_bundle, tmp_path):
    from conftest import synthetic_reviews, write_csv

    from fmkit.evaluate.stage import EvaluateConfig, evaluate_bundle

    other = write_csv(tmp_path / "other.csv", synthetic_reviews(30, seed=5))
    metrics = evaluate_bundle(evaluated_bundle, EvaluateConfig(data=str(other), split="all", device="cpu"),
                              record=False)
    manifest = read_manifest(evaluated_bundle)
    assert metrics["baseline"]["count"] == 30
    assert metrics["baseline"]["train_rows"] == manifest.data["split_sizes"]["train"]


def test_cli_evaluate_prints_the_baseline_and_the_gain(evaluated_bundle):
    result = subprocess.run([sys.executable, "-m", "fmkit", "evaluate", str(evaluated_bundle), "--device", "cpu",
                             "--no-record"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(text for text in result.stdout.splitlines() if text.startswith("baseline ("))
    assert "logistic regression on frozen base-model features" in line and "accuracy points" in line


def test_report_shows_the_gain_over_the_baseline(tiny_bundle, tmp_path):
    from fmkit.recipe.report import COLUMNS, render_report, report_rows

    copy = tmp_path / "run" / "reviews"
    shutil.copytree(tiny_bundle, copy)
    update_manifest(copy, lambda m: m.training.__setitem__("baseline", {
        "method": "lr", "encoder": "enc", "test": {"accuracy": m.metrics["test"]["accuracy"] - 0.05}}))
    rows = report_rows([copy], measure=False)
    baseline = rows[0]["test_accuracy"] - 0.05
    assert rows[0]["baseline_test_accuracy"] == pytest.approx(baseline)
    assert "baseline_test_accuracy" in [key for key, *_ in COLUMNS]
    assert f"{baseline:.4f}" in render_report(rows, "run", [])  # beside the model's, both manifest numbers
