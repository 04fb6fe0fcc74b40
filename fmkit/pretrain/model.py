"""The masked-LM model: a new BERT of a named size, or an existing model with an MLM head.

The loss runs the vocabulary projection only at the ~15% predicted positions (the rest of
the logits are never needed): on MiniLM's 30k vocabulary that projection is about as costly
as the whole encoder, so this is most of fmkit's speed-up over computing every position.
"""

from __future__ import annotations

import math

import torch

from fmkit.errors import BadInputError
from fmkit.pretrain.masking import IGNORE


def new_mlm_model(size_name: str, tokenizer, max_positions: int, seed: int):
    from transformers import BertForMaskedLM

    from fmkit.pretrain.sizes import MODEL_SIZES

    config = MODEL_SIZES.get(size_name).bert_config(len(tokenizer), max_positions, tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return BertForMaskedLM(config)


def load_mlm_model(path, seed: int):
    """An existing model as ``BertForMaskedLM``; returns (model, names of newly created head weights).

    MiniLM (a sentence-embedding model) ships no MLM head: a new one is created whose decoder
    is tied to the input word embeddings, as BERT's is.
    """
    from transformers import AutoConfig, BertForMaskedLM
    from transformers.utils import logging as hf_logging

    config = AutoConfig.from_pretrained(str(path))
    if config.model_type != "bert":
        raise BadInputError(f"--from {path}: masked-LM pretraining supports BERT-family models; this one is "
                            f"{config.model_type!r}")
    config.tie_word_embeddings = True
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized cls.predictions" is the point, not news
    from fmkit.bundle import loading_weights

    try:
        with loading_weights(path):
            model, info = BertForMaskedLM.from_pretrained(str(path), config=config, use_safetensors=True,
                                                          output_loading_info=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    created = sorted(k for k in info["missing_keys"] if k.startswith("cls."))
    missing_encoder = sorted(k for k in info["missing_keys"] if not k.startswith("cls."))
    if missing_encoder:
        raise BadInputError(f"--from {path}: encoder weights are missing from the checkpoint: {missing_encoder[:5]}")
    if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        raise RuntimeError("the MLM decoder is not tied to the word embeddings")
    return model, created


def mlm_loss(model, batch) -> torch.Tensor:
    """Cross-entropy over the predicted positions only (BERT models); other models use their own loss."""
    encoder, head = getattr(model, "bert", None), getattr(model, "cls", None)
    if encoder is None or head is None:
        return model(**batch).loss
    hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    labels = batch["labels"]
    selected = labels != IGNORE
    logits = head(hidden[selected])
    return torch.nn.functional.cross_entropy(logits.float(), labels[selected])


@torch.no_grad()
def evaluate_mlm(model, batches: list[dict], device, precision: str = "fp32") -> dict:
    """Masked-token accuracy and perplexity on fixed, pre-masked held-out batches."""
    from fmkit.train.precision import autocast

    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(precision, device):
            hidden = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            selected = batch["labels"] != IGNORE
            logits = model.cls(hidden[selected]).float()
        targets = batch["labels"][selected]
        total_loss += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
        correct += int((logits.argmax(dim=-1) == targets).sum())
        count += int(targets.numel())
    model.train(was_training)
    if count == 0:
        return {"masked_accuracy": 0.0, "loss": float("nan"), "perplexity": float("nan"), "masked_tokens": 0}
    loss = total_loss / count
    return {"masked_accuracy": round(correct / count, 6), "loss": round(loss, 6),
            "perplexity": round(math.exp(min(loss, 50.0)), 4), "masked_tokens": count}
