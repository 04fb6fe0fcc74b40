"""Every registered task x every fine-tuning method it trains with x every compression method that
applies to it, on tiny models: the bundle loads, predicts and records its test metrics.

The combinations are read from the registries (fmkit.tasks.TASKS, FINETUNE_METHODS through each
task's capabilities, COMPRESS_METHODS through each task's compression hooks), so a new task or
method is tested here without editing this file; a new task only needs its tiny case in ``CASES``.
Tiny means seconds: one epoch of a 2-layer BERT or a small CNN, each fine-tuned once per session,
and the smallest settings each method accepts (``COMPRESS_OPTIONS``); no benchmark runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import corner_picture

TRAIN = {"epochs": 1, "batch_size": 16, "learning_rate": 5e-3, "progress": False, "precision": "fp32",
         "device": "cpu"}
COMPRESS_OPTIONS = {  # the smallest settings each method accepts, so the matrix stays quick
    "distill": {"student_layers": 1, "train": {"epochs": 1, "batch_size": 16, "progress": False, "device": "cpu"}},
    "prune-structured": {"calibration_samples": 16, "recovery": None},
    "quantize-static": {"calibration_samples": 16, "validation_samples": 50, "fallback": False},
}


def text_case(request, folder: Path):
    """The tiny BERT and the synthetic reviews (tests/conftest.py)."""
    return ({"model": str(request.getfixturevalue("tiny_bert_dir")),
             "data": {"source": str(request.getfixturevalue("reviews_csv"))}},
            ["a great and warm film", "a dull and tedious plot"])


def image_case(request, folder: Path):
    """A small CNN on 16x16 gray pictures whose bright corner is the class."""
    from PIL import Image

    root = folder / "corners"
    for index in range(120):
        label = index % 4
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(corner_picture(label, seed=index)).save(root / str(label) / f"{index}.png")
    return ({"model": "cnn", "data": {"source": str(root)}, "augment": False},
            [corner_picture(label, seed=500 + label) for label in range(4)])


def retrieval_case(request, folder: Path):
    """The tiny BERT on questions whose answer shares their key words (a sentiment word and a number)."""
    import csv

    from conftest import FILLER, NEGATIVE, POSITIVE

    words = POSITIVE + NEGATIVE
    with open(folder / "faq.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["q", "a"])
        writer.writerows((f"{FILLER[i % 13]} {words[i % 16]} {i}", f"{FILLER[(i + 5) % 13]} the {words[i % 16]} {i} story")
                         for i in range(60))
    return ({"model": str(request.getfixturevalue("tiny_bert_dir")), "max_length": 32,
             "data": {"source": str(folder / "faq.csv"), "query_column": "q", "document_column": "a"}},
            ["the great 0", "a dull plot 9"])


CASES = {"text-classification": text_case, "image-classification": image_case, "text-retrieval": retrieval_case}


def classify(bundle: Path, inputs, manifest) -> None:
    """A classifier bundle: fmkit.load predicts one of its labels, with probabilities that sum to 1."""
    import fmkit

    predictions = fmkit.load(bundle, device="cpu").predict(inputs)
    assert len(predictions) == len(inputs) and all(p.label in manifest.labels for p in predictions)
    for prediction in predictions:
        assert sum(prediction.probabilities.values()) == pytest.approx(1, abs=1e-4)


def embed(bundle: Path, inputs, manifest) -> None:
    """An encoder bundle: its runtime returns one unit vector per text, and its test ranks the whole index."""
    import numpy as np

    from fmkit.retrieval import load_encoder

    vectors = load_encoder(bundle, device="cpu").encode(inputs)
    assert vectors.shape[0] == len(inputs) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    test = manifest.metrics["test"]
    assert test["index_size"] == len(manifest.labels) and 0 <= test["recall@1"] <= test["mrr@10"] <= 1


RUNS = {"text-retrieval": embed}  # how a bundle of the task is run when it is not a classifier (fmkit.load)


def combinations():
    from fmkit.compress.tasks import methods_for
    from fmkit.tasks import TASKS

    rows = []
    for task in TASKS:
        for finetune in TASKS.get(task).capabilities.finetune_methods:
            for compress in [None, *methods_for(task)]:
                rows.append(pytest.param(task, finetune, compress, id=f"{task}-{finetune}-{compress or 'none'}"))
    return rows


def test_every_task_that_fine_tunes_has_a_tiny_case():
    from fmkit.tasks import TASKS

    missing = [task for task in TASKS if TASKS.get(task).capabilities.finetune_methods and task not in CASES]
    assert not missing, f"add a tiny case for {missing} to CASES in tests/test_task_matrix.py"


_FINETUNED: dict[tuple[str, str], tuple[Path, list]] = {}


def finetuned(request, tmp_path_factory, task: str, method: str) -> tuple[Path, list]:
    """The task's tiny case fine-tuned with ``method`` (once per session), and inputs to predict."""
    from fmkit.finetune.stage import run_finetune
    from fmkit.tasks import TASKS, finetune_config

    if (task, method) not in _FINETUNED:
        folder = tmp_path_factory.mktemp(f"{task}-{method}")
        settings, inputs = CASES[task](request, folder)
        settings = {**settings, "task": task, "train": TRAIN}
        if "method" in TASKS.get(task).get("finetune_config").model_fields:  # a task with one method may not say
            settings["method"] = method
        cfg = finetune_config(settings)
        assert cfg.method_name == method
        run_finetune(cfg, folder / "bundle")
        _FINETUNED[task, method] = folder / "bundle", inputs
    return _FINETUNED[task, method]


@pytest.mark.parametrize(("task", "finetune", "compress"), combinations())
def test_every_task_method_and_compression_loads_predicts_and_records_metrics(
        request, tmp_path_factory, tmp_path, task, finetune, compress):
    from fmkit.bundle import read_manifest

    bundle, inputs = finetuned(request, tmp_path_factory, task, finetune)
    if compress is not None:
        from fmkit.compress.config import CompressConfig
        from fmkit.compress.stage import run_compress

        method = {"name": compress, **COMPRESS_OPTIONS.get(compress, {})}
        run_compress(bundle, CompressConfig(method=method, max_accuracy_drop=100, measure={"enabled": False}),
                     tmp_path / "variant", log=lambda line: None)
        bundle = tmp_path / "variant"
    manifest = read_manifest(bundle)
    assert manifest.task == task
    assert 0 <= manifest.metrics["test"]["accuracy"] <= 1 and manifest.metrics["test"]["count"] > 0
    if compress is not None:
        assert manifest.compression["method"] == compress and manifest.compression["status"] == "ok"
        assert manifest.lineage[-1].stage == compress
    else:
        assert manifest.training["method"] == finetune
    RUNS.get(task, classify)(bundle, inputs, manifest)
