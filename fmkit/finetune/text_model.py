"""The text model a fine-tune starts from: a Hugging Face encoder or a bundle, with a head for the labels.

Used by the text-classification adapter (fmkit/tasks/text_classification.py); ``base_model_record``
also names the starting point of ``fmkit pretrain``.
"""

from __future__ import annotations

from fmkit.bundle import read_manifest
from fmkit.models import ResolvedModel


def base_model_record(base: ResolvedModel) -> dict:
    """Name, path and digest of the starting point (a bundle's digest, or its weights' hash)."""
    from fmkit.bundle.store import content_digest, file_digests

    if base.is_bundle:
        manifest = read_manifest(base.path)
        return {"name": base.name, "path": str(base.path), "digest": manifest.content_digest,
                "base_model": manifest.base_model.get("name")}
    weights = {k: v for k, v in file_digests(base.path).items() if k.endswith((".safetensors", ".json", ".txt"))}
    return {"name": base.name, "path": str(base.path), "digest": content_digest(weights)}


def load_base_classifier(base: ResolvedModel, label_names: list[str], dropout: float | None, seed: int):
    from fmkit.offline import enforce_offline

    enforce_offline()
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from fmkit.bundle import loading_weights

    with loading_weights(base.path):
        config = AutoConfig.from_pretrained(str(base.path))
    config.num_labels = len(label_names)
    config.id2label = dict(enumerate(label_names))
    config.label2id = {label: index for index, label in enumerate(label_names)}
    config.problem_type = "single_label_classification"
    if dropout is not None:
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = dropout
    torch.manual_seed(seed)  # the new classifier head's initialisation
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected, not news
    try:
        with loading_weights(base.path):
            model = AutoModelForSequenceClassification.from_pretrained(
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
