"""A text classifier that pools tokens the way its base model was trained to, and opens in sentence-transformers.

all-MiniLM-L6-v2 was trained as a sentence encoder on the *mean* of its token states
(``1_Pooling/config.json``); transformers' ``BertForSequenceClassification`` classifies from the
[CLS] token through a BERT pooler that training never shaped. :class:`PooledBertForSequenceClassification`
is that same BERT classifier (``.bert``, ``.dropout``, ``.classifier``: distillation, pruning,
LoRA, ONNX export and captum see the usual modules) whose head reads the sentence embedding
(fmkit/models/pooling.py) instead. Its ``config.json`` records the pooling
(``classifier_pooling``), and ``save_pretrained`` also writes the sentence-transformers files
(``modules.json``, ``1_Pooling``, an Identity-activation ``Dense`` holding the head), so
``SentenceTransformer(bundle).encode(texts)`` returns the same logits fmkit computes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import BertForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput

from fmkit.models.pooling import POOLING_DIR, pool, pooling_config

POOLING_KEY = "classifier_pooling"  # config.json: the sentence pooling the head reads ("mean", "cls", "max")
NORMALIZE_KEY = "classifier_normalize"  # config.json: L2-normalise the embedding first (few-shot, cosine-trained)
MAX_LENGTH_KEY = "classifier_max_length"  # config.json: tokens per text, for sentence-transformers' max_seq_length
IDENTITY = "torch.nn.modules.linear.Identity"  # sentence-transformers resolves the activation by this path


class PooledBertForSequenceClassification(BertForSequenceClassification):
    """BERT encoder -> sentence pooling (mean by default) -> [L2 norm] -> dropout -> linear head."""

    # The checkpoint it starts from (a sentence-transformers model) has a BERT pooler this head never uses.
    _keys_to_ignore_on_load_unexpected = [r"bert\.pooler\."]

    def __init__(self, config):
        super().__init__(config)
        self.bert.pooler = None  # the sentence pooling replaces the [CLS] pooler: no unused weights in the bundle

    @property
    def pooling(self) -> str:
        return getattr(self.config, POOLING_KEY, None) or "mean"

    def sentence_embedding(self, input_ids=None, attention_mask=None, **inputs):
        """What the head reads: the pooled (and, for a cosine-trained encoder, L2-normalised) token states."""
        hidden = self.bert(input_ids, attention_mask=attention_mask, return_dict=True, **inputs).last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        embedding = pool(hidden, attention_mask, self.pooling)
        if getattr(self.config, NORMALIZE_KEY, False):
            embedding = torch.nn.functional.normalize(embedding, p=2, dim=-1)
        return embedding

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, **kwargs):
        kwargs.pop("return_dict", None)  # always a SequenceClassifierOutput, like the class it replaces
        embedding = self.sentence_embedding(input_ids, attention_mask, token_type_ids=token_type_ids,
                                            position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs)
        logits = self.classifier(self.dropout(embedding))
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)
        write_sentence_transformers_files(self, Path(save_directory))


def is_pooled(config) -> bool:
    """Does this transformers config describe a :class:`PooledBertForSequenceClassification`?"""
    return bool(getattr(config, POOLING_KEY, None))


def write_sentence_transformers_files(model, directory: Path) -> None:
    """modules.json, sentence_bert_config.json, 1_Pooling, [2_Normalize], a Dense head: sentence-transformers' layout.

    The Dense module carries a copy of the classifier (in -> classes, Identity activation), so
    sentence-transformers' ``encode`` returns the logits; written on every save, so a pruned or
    distilled variant's copy matches its own head.
    """
    from safetensors.torch import save_file

    config = model.config
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": POOLING_DIR, "type": "sentence_transformers.models.Pooling"}]
    if getattr(config, NORMALIZE_KEY, False):
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    dense_dir = f"{len(modules)}_Dense"
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": dense_dir,
                    "type": "sentence_transformers.models.Dense"})
    _write_json(directory / "modules.json", modules)
    _write_json(directory / "sentence_bert_config.json",
                {"max_seq_length": getattr(config, MAX_LENGTH_KEY, None) or config.max_position_embeddings,
                 "do_lower_case": False,
                 "model_args": {"add_pooling_layer": False}})  # the bundle has no BERT pooler: none to load
    _write_json(directory / POOLING_DIR / "config.json", pooling_config(model.pooling, config.hidden_size))
    head = model.classifier
    _write_json(directory / dense_dir / "config.json",
                {"in_features": head.in_features, "out_features": head.out_features, "bias": head.bias is not None,
                 "activation_function": IDENTITY})
    tensors = {"linear.weight": head.weight.detach().cpu().contiguous().clone()}
    if head.bias is not None:
        tensors["linear.bias"] = head.bias.detach().cpu().contiguous().clone()
    save_file(tensors, str(directory / dense_dir / "model.safetensors"))


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_text_classifier(path: Path):
    """The transformers classifier a bundle or HF directory holds: pooled when its config says so (safetensors only)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(str(path))
    if is_pooled(config):
        return PooledBertForSequenceClassification.from_pretrained(str(path), use_safetensors=True)
    return AutoModelForSequenceClassification.from_pretrained(str(path), use_safetensors=True)


def head_features(model, batch: dict):
    """The vector the classification head reads for ``batch`` (pooled embedding, or BERT's pooler output)."""
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    if hasattr(model, "sentence_embedding"):
        return model.sentence_embedding(**inputs)
    return model.base_model(**inputs, return_dict=True).pooler_output


def set_head_(model, weight, bias) -> None:
    """Overwrite the classification head (a ``Linear`` named ``classifier``) with ``weight``/``bias``."""
    head = model.classifier
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))
