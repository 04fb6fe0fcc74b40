"""Few-shot mode (issue 15 part 5): SetFit-style pairs through the shared loop, then a logistic-regression head."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import sentence_encoder, synthetic_reviews, write_csv
from test_pooling import TRAIN, fmkit_probabilities, sentence_transformers_probabilities


def test_pairs_are_one_positive_and_one_negative_per_row_and_iteration():
    from fmkit.finetune.fewshot import make_pairs

    labels = [0, 0, 0, 1, 1, 2, 2, 2]
    pairs = make_pairs(labels, seed=0, iterations=3)
    assert len(pairs) == 3 * 2 * len(labels)
    labels = np.asarray(labels)
    assert all((labels[a] == labels[b]) == bool(same) and a != b for a, b, same in pairs)
    assert pairs[:, 2].sum() == len(pairs) // 2
    assert len(make_pairs(labels, seed=0, iterations=20, max_pairs=50)) == 50  # the budget caps the iterations


def test_a_label_with_one_row_gets_no_positive_pair():
    from fmkit.finetune.fewshot import make_pairs

    pairs = make_pairs([0, 1, 1], seed=0, iterations=2)
    assert not any(a == 0 and same for a, _, same in pairs)


def test_pair_batches_are_deterministic_and_resume_mid_epoch():
    from fmkit.data.batching import EncodedTexts
    from fmkit.finetune.fewshot import PairBatches

    encoded = EncodedTexts(input_ids=[[2, 5 + i % 7, 3] for i in range(12)], truncated=0)
    source = PairBatches(encoded, [i % 3 for i in range(12)], pad_id=0, seed=1, batch_size=5)
    whole = list(source.batches(epoch=0))
    resumed = list(source.batches(epoch=0, start=2))
    assert len(whole) == len(source) and len(resumed) == len(whole) - 2
    for a, b in zip(whole[2:], resumed):
        assert all((a[k] == b[k]).all() for k in a)
    assert any((x["input_ids"].shape != y["input_ids"].shape) or (x["input_ids"] != y["input_ids"]).any()
               for x, y in zip(whole, source.batches(epoch=1)))  # another epoch, another order


@pytest.mark.parametrize(("mode", "method", "rows", "encoder", "private", "chosen"), [
    ("auto", "full", 60, True, False, True),  # 30 per class: at the threshold
    ("auto", "full", 62, True, False, False),
    ("auto", "lora", 20, True, False, False),
    ("auto", "full", 20, False, False, False),  # not a sentence encoder: SetFit's premise does not hold
    ("auto", "full", 20, True, True, False),  # DP-SGD clips per labelled text
    ("off", "full", 20, True, False, False),
    ("on", "full", 2000, True, False, True),
])
def test_few_shot_is_chosen_below_the_threshold_for_full_fine_tuning(mode, method, rows, encoder, private, chosen):
    from fmkit.finetune.fewshot import few_shot_chosen

    labels = [i % 2 for i in range(rows)]
    assert few_shot_chosen(mode, method, labels, 2, 30, sentence_encoder=encoder, private=private) is chosen


def test_few_shot_on_with_lora_is_refused_with_the_fix():
    from fmkit.errors import BadInputError
    from fmkit.finetune.fewshot import few_shot_chosen

    with pytest.raises(BadInputError, match="use --method full or --few-shot off"):
        few_shot_chosen("on", "lora", [0, 1], 2)


def test_a_few_shot_run_trains_on_pairs_and_writes_a_normal_bundle(tiny_bert_dir, tmp_path):
    """30 training rows: auto picks few-shot; the bundle is the pooled format (+ Normalize) sentence-transformers opens."""
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    encoder = sentence_encoder(tiny_bert_dir, tmp_path / "encoder")
    data = write_csv(tmp_path / "few.csv", synthetic_reviews(40, seed=3))
    train = {**TRAIN, "epochs": 1, "learning_rate": 1e-3}
    manifest = run_finetune(FinetuneConfig(model=str(encoder), data={"source": str(data)}, train=train),
                            tmp_path / "bundle")
    head = manifest.training["head"]
    assert head["few_shot"] and head["pooling"] == "mean" and "SetFit" in head["init"]
    assert head["probe"]["train_accuracy"] == 1.0
    pairs_per_epoch = 20 * 2 * len(json.loads((tmp_path / "bundle" / "split.json").read_text())["indices"]["train"])
    assert manifest.training["steps"] == pytest.approx(pairs_per_epoch / 16, abs=1)
    assert manifest.metrics["test"]["accuracy"] >= 0.75
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((tmp_path / "bundle" / "modules.json").read_text())]
    assert modules == ["Transformer", "Pooling", "Normalize", "Dense"]
    bundle = tmp_path / "bundle"
    assert np.abs(fmkit_probabilities(bundle) - sentence_transformers_probabilities(bundle)).max() < 1e-5
