"""The shared training loop and fine-tuning methods on a tiny BERT built in code."""

import json

import numpy as np
import pytest
import torch

from conftest import CrashAfter
from fmkit.errors import TrainingDivergedError
from fmkit.finetune import FinetuneConfig
from fmkit.finetune.stage import checkpoint_dir_for, run_finetune

FAST = {"epochs": 3, "batch_size": 16, "progress": False, "precision": "fp32"}


def config(model_dir, data, method="full", **train):
    learning_rate = 5e-3
    return FinetuneConfig(model=str(model_dir), data={"source": str(data)}, method=method,
                          train={**FAST, "learning_rate": learning_rate, **train})


@pytest.fixture(scope="module")
def full_bundle(tiny_bert_dir, reviews_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "bundle"
    run_finetune(config(tiny_bert_dir, reviews_csv), out)
    return out


@pytest.fixture(scope="module")
def lora_bundle(full_bundle, tmp_path_factory):
    """LoRA on a bundle as base (a random tiny BERT gives LoRA nothing to adapt), with new label
    names so the classifier head starts from scratch and must be learned and saved."""
    from conftest import synthetic_reviews, write_csv

    directory = tmp_path_factory.mktemp("lora")
    renamed = [(text, {"pos": "good", "neg": "bad"}[label]) for text, label in synthetic_reviews(400, seed=1)]
    data = write_csv(directory / "renamed.csv", renamed)
    run_finetune(config(full_bundle, data, "lora"), directory / "bundle")
    return directory / "bundle"


def test_full_finetune_learns_and_records_everything(full_bundle, reviews_csv):
    from fmkit.bundle import read_manifest

    manifest = read_manifest(full_bundle)
    assert manifest.metrics["test"]["accuracy"] >= 0.9
    assert manifest.labels == ["neg", "pos"]
    (entry,) = manifest.lineage
    assert entry.stage == "finetune" and entry.config["method"]["name"] == "full"
    assert entry.data_fingerprint == manifest.data["fingerprint"] and entry.parent_digest.startswith("sha256:")
    assert manifest.content_digest.startswith("sha256:")
    assert (full_bundle / "reports" / "confusion_test.png").stat().st_size > 1000
    assert not checkpoint_dir_for(full_bundle).exists()  # cleaned after success
    split = json.loads((full_bundle / "split.json").read_text())
    assert split["fingerprint"] == manifest.data["fingerprint"]


def test_bundle_opens_in_plain_transformers_with_identical_logits(full_bundle):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import fmkit

    texts = ["the film was great and warm", "a dull and tedious plot", "movie"]
    tokenizer = AutoTokenizer.from_pretrained(str(full_bundle))
    model = AutoModelForSequenceClassification.from_pretrained(str(full_bundle)).eval()
    with torch.inference_mode():
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        reference = model(**batch).logits.numpy()
    ours = fmkit.load(full_bundle, device="cpu").logits(texts)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert model.config.id2label == {0: "neg", 1: "pos"}


def test_predict_api_returns_labels_and_probabilities(full_bundle):
    import fmkit

    model = fmkit.load(full_bundle, device="cpu")
    texts = ["a superb and moving film " * 3, "dull", "awful clumsy plot"]
    predictions = model.predict(texts)
    assert [p.label for p in predictions] == ["pos", "neg", "neg"]
    for prediction in predictions:
        assert set(prediction.probabilities) == {"neg", "pos"}
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    # Batched and sorted by length internally, returned in input order.
    single = [model.predict([t])[0].probabilities for t in texts]
    for alone, batched in zip(single, predictions):
        for label in alone:
            assert alone[label] == pytest.approx(batched.probabilities[label], abs=1e-5)


def test_lora_saves_head_and_reloads_adapter_exactly(lora_bundle, full_bundle):
    """PEFT's pitfall (peft#310): the trained classifier head must survive save + reload."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from fmkit.bundle import read_manifest

    manifest = read_manifest(lora_bundle)
    assert manifest.metrics["test"]["accuracy"] >= 0.9
    assert manifest.labels == ["bad", "good"]
    assert [entry.stage for entry in manifest.lineage] == ["finetune", "finetune"]  # inherits the parent's
    assert manifest.training["trainable_parameters"] < manifest.training["total_parameters"] / 2
    texts = ["the film was great", "a dull plot and bland cast"]
    tokenizer = AutoTokenizer.from_pretrained(str(lora_bundle))
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    merged = AutoModelForSequenceClassification.from_pretrained(str(lora_bundle)).eval()
    base = AutoModelForSequenceClassification.from_pretrained(
        str(full_bundle), id2label={0: "bad", 1: "good"}, label2id={"bad": 0, "good": 1})
    adapter = PeftModel.from_pretrained(base, str(lora_bundle / "adapter")).eval()
    with torch.inference_mode():
        np.testing.assert_allclose(adapter(**batch).logits.numpy(), merged(**batch).logits.numpy(), atol=1e-5)


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tiny_bert_dir, reviews_csv, tmp_path):
    from safetensors.torch import load_file

    # checkpoint every 7 steps, crash at 25: resumes mid-epoch from step 21 (3 steps lost, redone).
    cfg = config(tiny_bert_dir, reviews_csv, checkpoint_every_steps=7, epochs=2)
    run_finetune(cfg, tmp_path / "clean")
    with pytest.raises(KeyboardInterrupt):
        run_finetune(cfg, tmp_path / "resumed", hooks=CrashAfter(25))
    assert not (tmp_path / "resumed").exists()
    assert (checkpoint_dir_for(tmp_path / "resumed") / "latest" / "state.json").is_file()
    run_finetune(cfg, tmp_path / "resumed", resume=True)
    clean = load_file(str(tmp_path / "clean" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    for name in clean:
        torch.testing.assert_close(resumed[name], clean[name], rtol=0, atol=0)


def test_gradient_accumulation_matches_a_large_batch(tiny_bert_dir, reviews_csv, tmp_path):
    """Two accumulated batches of 8 = one batch of 16, up to float summation order."""
    from fmkit.data import DataConfig, load_text_classification
    from fmkit.data.batching import ClassificationBatches, encode_texts
    from fmkit.finetune.text_model import load_base_classifier
    from fmkit.models import resolve_model
    from fmkit.train import TrainConfig, train

    data = load_text_classification(DataConfig(source=str(reviews_csv)))
    weights = []
    for batch_size, accumulation in ((16, 1), (8, 2)):
        tokenizer, model = load_base_classifier(resolve_model(str(tiny_bert_dir)), data.label_names, 0.0, 0)
        texts, labels = data.split("train")
        encoded = encode_texts(tokenizer, texts[:16], 64)
        ids = [data.label_names.index(l) for l in labels[:16]]
        source = ClassificationBatches(encoded, ids, batch_size, tokenizer.pad_token_id, seed=0)
        source.batches = lambda epoch, start=0, s=source: (  # one fixed order: same examples, same grouping
            b for b in ClassificationBatches.batches(s, 0, start))
        train(model, source, TrainConfig(epochs=1, batch_size=batch_size, gradient_accumulation_steps=accumulation,
                                         learning_rate=1e-2, warmup_ratio=0, max_grad_norm=None, precision="fp32",
                                         progress=False), checkpoint_dir=tmp_path / f"ckpt{batch_size}")
        weights.append(model.classifier.weight.detach().clone())
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-4, atol=1e-5)


def test_nan_loss_stops_with_a_clear_message_and_keeps_checkpoint(tiny_bert_dir, reviews_csv, tmp_path):
    from fmkit.data import DataConfig, load_text_classification
    from fmkit.data.batching import ClassificationBatches, encode_texts
    from fmkit.finetune.text_model import load_base_classifier
    from fmkit.models import resolve_model
    from fmkit.train import TrainConfig, train

    data = load_text_classification(DataConfig(source=str(reviews_csv)))
    tokenizer, model = load_base_classifier(resolve_model(str(tiny_bert_dir)), data.label_names, None, 0)
    texts, labels = data.split("train")
    source = ClassificationBatches(encode_texts(tokenizer, texts, 64), [data.label_names.index(l) for l in labels],
                                   16, tokenizer.pad_token_id, 0)
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        loss = model(**batch).loss
        return loss * float("nan") if calls["n"] > 5 else loss

    with pytest.raises(TrainingDivergedError, match=r"loss became nan .* optimizer step 5.*Lower the learning rate"):
        train(model, source, TrainConfig(epochs=1, learning_rate=1e-3, checkpoint_every_steps=2, progress=False),
              loss_fn=loss_fn, checkpoint_dir=tmp_path)
    state = json.loads((tmp_path / "latest" / "state.json").read_text())
    assert state["step"] == 4


def test_early_stopping_restores_the_best_weights(tiny_bert_dir, reviews_csv, tmp_path):
    from fmkit.bundle import read_manifest

    # A huge learning rate makes validation F1 collapse after it first improves.
    manifest = run_finetune(config(tiny_bert_dir, reviews_csv, epochs=6, early_stopping_patience=1), tmp_path / "b")
    history = manifest.training["history"]
    best = max(h["macro_f1"] for h in history)
    assert manifest.training["best_metric"] == best
    assert read_manifest(tmp_path / "b").metrics["validation"]["macro_f1"] == pytest.approx(best)


def test_config_errors_are_all_reported():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as error:
        FinetuneConfig(data={"source": "x.csv"}, method={"name": "lora", "r": 0}, max_length=2,
                       train={"epochs": 0, "learning_rate": 5})
    message = str(error.value)
    for fragment in ("r=0", "max_length", "epochs=0", "learning_rate=5"):
        assert fragment in message


def test_resume_without_a_checkpoint_says_so(tiny_bert_dir, reviews_csv, tmp_path):
    with pytest.warns(UserWarning, match="no checkpoint in .*starts from the beginning"):
        run_finetune(config(tiny_bert_dir, reviews_csv, epochs=1), tmp_path / "fresh", resume=True)


def test_auto_schedule_class_weights_and_checks_are_recorded(tiny_bert_dir, tmp_path):
    """Issue 15: default epochs plan a step budget from the data size; a 5:1 imbalance turns class weights on;
    the manifest records schedule, weights, status and per-class recall."""
    from conftest import synthetic_reviews, write_csv

    rows = [row for row in synthetic_reviews(720) if row[1] == "pos"][:300]
    rows += [row for row in synthetic_reviews(720) if row[1] == "neg"][:60]
    data = write_csv(tmp_path / "skewed.csv", rows)
    cfg = FinetuneConfig(model=str(tiny_bert_dir), data={"source": str(data)},
                         train={"batch_size": 64, "learning_rate": 5e-3, "progress": False, "precision": "fp32"})
    lines = []
    manifest = run_finetune(cfg, tmp_path / "b", echo=lines.append)
    training = manifest.training
    assert training["schedule"]["source"] == "auto" and training["schedule"]["epochs"] == 40  # 5 steps per epoch
    assert training["schedule"]["patience"] == 8 and training["steps"] <= training["schedule"]["total_steps"]
    assert training["class_weights"]["mode"] == "sqrt" and training["class_weights"]["imbalance_ratio"] == 5.0
    assert training["status"] == "ok" and manifest.metrics["test"]["min_recall"] > 0.5
    assert any(line.startswith("schedule: 40 epochs") for line in lines)
    assert any(line.startswith("class weights: sqrt") for line in lines)


def test_a_collapsed_run_is_flagged_degenerate_with_cause_and_fix(tiny_bert_dir, reviews_csv, tmp_path):
    cfg = config(tiny_bert_dir, reviews_csv, epochs=1, max_steps=2, learning_rate=1e-7)
    with pytest.warns(UserWarning, match=r"DEGENERATE MODEL: .*Likely cause: too few optimizer steps \(2\).*Fix:"):
        manifest = run_finetune(cfg, tmp_path / "b")
    assert manifest.training["status"] == "degenerate"
    assert manifest.training["collapse"]["split"] == "validation"
    assert manifest.training["schedule"]["source"] == "epochs"  # explicit epochs win over auto


def test_learning_rate_auto_is_recorded_and_refused_with_dp(tiny_bert_dir, reviews_csv, tmp_path):
    from fmkit.errors import BadInputError
    from fmkit.finetune.stage import check_method
    from fmkit.tasks import TASKS

    manifest = run_finetune(config(tiny_bert_dir, reviews_csv, epochs=4, learning_rate="auto", batch_size=8),
                            tmp_path / "b")
    search = manifest.training["learning_rate_search"]
    assert search["steps"] <= 0.05 * search["budget_steps"] and manifest.training["learning_rate"] == search["learning_rate"]
    private = FinetuneConfig(model=str(tiny_bert_dir), data={"source": str(reviews_csv)}, privacy={},
                             train={"learning_rate": "auto"})
    with pytest.raises(BadInputError, match="learning_rate=auto: the range test would train on the private data"):
        check_method(TASKS.get("text-classification"), private)


def test_dp_keeps_three_epochs_under_auto(tiny_bert_dir, reviews_csv):
    from fmkit.finetune.stage import planned_for_privacy

    cfg = FinetuneConfig(model=str(tiny_bert_dir), data={"source": str(reviews_csv)}, privacy={},
                         train={"batch_size": 16, "learning_rate": 5e-3})
    planned, plan = planned_for_privacy(cfg, 320, evaluates=True)
    assert (planned.train.epochs, planned.train.early_stopping_patience) == (3, 2)
    assert plan.source == "privacy" and "DP-SGD keeps 3 epochs" in plan.reason
