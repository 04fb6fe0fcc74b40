"""The text model a fine-tune starts from: a Hugging Face encoder or a bundle, with a head for the labels.

Used by the text-classification adapter (fmkit/tasks/text_classification.py); ``base_model_record``
also names the starting point of ``fmkit pretrain``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fmkit.bundle import read_manifest
from fmkit.models import ResolvedModel
from fmkit.tasks.base import TrainingSetup


def base_model_record(base: ResolvedModel) -> dict:
    """Name, path and digest of the starting point (a bundle's digest, or its weights' hash)."""
    from fmkit.bundle.store import content_digest, file_digests

    if base.is_bundle:
        manifest = read_manifest(base.path)
        return {"name": base.name, "path": str(base.path), "digest": manifest.content_digest,
                "base_model": manifest.base_model.get("name")}
    weights = {k: v for k, v in file_digests(base.path).items() if k.endswith((".safetensors", ".json", ".txt"))}
    return {"name": base.name, "path": str(base.path), "digest": content_digest(weights)}


@dataclass
class TextSetup(TrainingSetup):
    """The text adapter's TrainingSetup: plus the few-shot plan when the run trains SetFit-style (else None)."""

    few_shot: Any = None  # fmkit.finetune.fewshot.FewShotPlan


# What --head-init auto picks. LP-FT (a probe head) scored below a fresh head on every small set measured
# (bench/pooling_heads.py, 2026-12-02: FAQ 0.655 vs 0.676, RT-200 0.733 vs 0.770, RT-1000 0.771 vs 0.779): the
# probe fits the training rows perfectly, so its confident head leaves the encoder little gradient to adapt with.
AUTO_HEAD_INIT = "random"


def head_init_of(requested: str) -> str:
    """The head's start: ``requested``, or for "auto" the measured default (a fresh head)."""
    return AUTO_HEAD_INIT if requested == "auto" else requested


def model_type_of(base: ResolvedModel) -> str:
    """The base's transformers ``model_type`` ("bert" for MiniLM), from its config.json."""
    import json

    try:
        return json.loads((base.path / "config.json").read_text(encoding="utf-8")).get("model_type", "?")
    except (OSError, ValueError):
        return "?"


POOLINGS = ("auto", "pooler", "mean", "cls", "max")  # "pooler": [CLS] through BERT's pooler (transformers' default)


def classifier_pooling(base: ResolvedModel, requested: str, model_type: str) -> str:
    """The pooling the new head reads: ``requested``, or for "auto" the base's own sentence pooling when it declares
    one (all-MiniLM-L6-v2: mean, in ``1_Pooling``) on a BERT encoder, else "pooler" (transformers' [CLS] pooler)."""
    from fmkit.errors import BadInputError
    from fmkit.models.pooling import read_pooling_mode

    if requested == "auto":
        declared = read_pooling_mode(base.path)
        return declared if declared is not None and model_type == "bert" else "pooler"
    if requested != "pooler" and model_type != "bert":
        raise BadInputError(f"--pooling {requested}: sentence pooling heads are built for BERT encoders, and "
                            f"{base.name} is {model_type!r}; use --pooling pooler (or auto)")
    return requested


def load_base_classifier(base: ResolvedModel, label_names: list[str], dropout: float | None, seed: int,
                         pooling: str = "pooler", normalize: bool = False, max_length: int | None = None):
    """(tokenizer, classifier) for ``label_names`` on ``base``; ``pooling`` as :func:`classifier_pooling` resolved it.

    A sentence pooling ("mean", "cls", "max") builds a :class:`PooledBertForSequenceClassification`
    (fmkit/models/text_classifier.py); ``normalize`` L2-normalises its embedding (few-shot: the
    encoder is trained on cosine similarity).
    """
    from fmkit.offline import enforce_offline

    enforce_offline()
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from fmkit.bundle import loading_weights
    from fmkit.models.text_classifier import (MAX_LENGTH_KEY, NORMALIZE_KEY, POOLING_KEY,
                                              PooledBertForSequenceClassification)

    with loading_weights(base.path):
        config = AutoConfig.from_pretrained(str(base.path))
    config.num_labels = len(label_names)
    config.id2label = dict(enumerate(label_names))
    config.label2id = {label: index for index, label in enumerate(label_names)}
    config.problem_type = "single_label_classification"
    pooled = pooling != "pooler"
    setattr(config, POOLING_KEY, pooling if pooled else None)  # a pooled parent's setting must not leak into [CLS]
    setattr(config, NORMALIZE_KEY, bool(normalize and pooled))
    setattr(config, MAX_LENGTH_KEY, max_length)
    config.architectures = None  # save_pretrained records the class it really is
    if dropout is not None:
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = dropout
    torch.manual_seed(seed)  # the new classifier head's initialisation
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected, not news
    model_class = PooledBertForSequenceClassification if pooled else AutoModelForSequenceClassification
    try:
        with loading_weights(base.path):
            model = model_class.from_pretrained(
                str(base.path), config=config, use_safetensors=True, ignore_mismatched_sizes=True
            )
    finally:
        hf_logging.set_verbosity(verbosity)
    if base.is_bundle and read_manifest(base.path).labels != label_names:
        # Same number of classes but other labels: the parent's head would map them wrongly.
        torch.manual_seed(seed)
        for module in model.classifier.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    with loading_weights(base.path):
        tokenizer = AutoTokenizer.from_pretrained(str(base.path))
    return tokenizer, model
