"""Gradient checkpointing (fmkit/train/checkpointing.py): same loss and gradients, fewer saved activations.

Tiny in-code BERTs (2 layers, hidden 32), dropout ON: the non-reentrant checkpoint restores the RNG
when it recomputes a layer, so the dropout masks, the loss and the weights after AdamW steps are
the same as without checkpointing. The memory side is measured on the autograd graph itself: the
bytes of tensors saved for backward during the forward pass.
"""

from __future__ import annotations

import pytest
import torch

from fmkit.errors import BadInputError
from fmkit.train.checkpointing import checkpointed_layers, enable_gradient_checkpointing


def tiny_config(**overrides):
    from transformers import BertConfig

    values = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=64, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    return BertConfig(**{**values, **overrides})


def tiny_classifier(pooled: bool = False):
    from transformers import BertForSequenceClassification

    from fmkit.models.text_classifier import PooledBertForSequenceClassification

    torch.manual_seed(0)
    config = tiny_config(num_labels=2)
    if pooled:
        config.classifier_pooling = "mean"
        return PooledBertForSequenceClassification(config)
    return BertForSequenceClassification(config)


def batch(rows: int = 8, length: int = 24, seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.ones(rows, length, dtype=torch.long)
    mask[: rows // 2, length // 2:] = 0  # padded rows too
    return {"input_ids": torch.randint(5, 120, (rows, length), generator=generator), "attention_mask": mask,
            "labels": torch.randint(0, 2, (rows,), generator=generator)}


def train_losses(model, loss_fn, steps: int = 3) -> list[float]:
    """AdamW steps with dropout on, each from the same seed; the losses."""
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for step in range(steps):
        torch.manual_seed(100 + step)
        loss = loss_fn(model, batch(seed=step))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def classifier_loss(model, inputs):
    return model(**inputs).loss


def saved_activation_bytes(model, loss_fn) -> int:
    """Bytes of the tensors autograd keeps for backward during one training forward (what checkpointing cuts)."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = loss_fn(model, batch(rows=16, length=64))
    loss.backward()
    return total


def assert_same_training(make_model, loss_fn, prepare=lambda model: model):
    plain, checkpointed = prepare(make_model()), prepare(make_model())
    summary = enable_gradient_checkpointing(checkpointed)
    assert "2 BertLayer layers" in summary
    assert train_losses(plain, loss_fn) == pytest.approx(train_losses(checkpointed, loss_fn), rel=1e-6, abs=1e-7)
    for (name, a), (_, b) in zip(plain.state_dict().items(), checkpointed.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    return plain, checkpointed


def test_same_loss_and_weights_with_dropout_and_fewer_saved_activations():
    plain, checkpointed = assert_same_training(tiny_classifier, classifier_loss)
    assert checkpointed_layers(checkpointed) == ["bert.encoder.layer.0", "bert.encoder.layer.1"]
    assert checkpointed_layers(plain) == []
    without, with_ = saved_activation_bytes(plain, classifier_loss), saved_activation_bytes(checkpointed,
                                                                                            classifier_loss)
    assert with_ < 0.5 * without, (with_, without)


def test_pooled_classifier_and_evaluation_unchanged():
    _, model = assert_same_training(lambda: tiny_classifier(pooled=True), classifier_loss)
    model.eval()
    inputs = {k: v for k, v in batch().items() if k != "labels"}
    with torch.no_grad():  # evaluation runs the layers normally (checkpointing acts in training mode only)
        logits = model(**inputs).logits
    assert torch.isfinite(logits).all()


def test_lora_wrapped_model_trains_only_the_adapters():
    from peft import LoraConfig, TaskType, get_peft_model

    def lora(model):
        return get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8,
                                                target_modules=["query", "value"], lora_dropout=0.0))

    plain, checkpointed = assert_same_training(tiny_classifier, classifier_loss, prepare=lora)
    loss = classifier_loss(checkpointed, batch())
    loss.backward()
    grads = {name: p.grad for name, p in checkpointed.named_parameters() if p.requires_grad}
    assert any("lora_A" in name for name in grads) and all(g is not None and torch.isfinite(g).all()
                                                           for g in grads.values())
    assert len(checkpointed_layers(checkpointed)) == 2


def test_retrieval_bi_encoder():
    from transformers import BertModel

    from fmkit.retrieval.encoder_model import BiEncoder

    def make():
        torch.manual_seed(0)
        return BiEncoder(BertModel(tiny_config(), add_pooling_layer=False))

    def contrastive(model, inputs):
        embeddings = model(inputs["input_ids"], inputs["attention_mask"])
        scores = embeddings[:4] @ embeddings[4:].T / 0.05
        return torch.nn.functional.cross_entropy(scores, torch.arange(4))

    _, model = assert_same_training(make, contrastive)
    assert "at encoder" in enable_gradient_checkpointing(model)  # idempotent, names where it acted


def test_masked_lm_model_with_tied_decoder():
    from transformers import BertForMaskedLM

    from fmkit.pretrain.model import mlm_loss

    def make():
        torch.manual_seed(0)
        return BertForMaskedLM(tiny_config(tie_word_embeddings=True))

    def loss(model, inputs):
        labels = torch.full_like(inputs["input_ids"], -100)
        labels[:, ::5] = inputs["input_ids"][:, ::5]
        return mlm_loss(model, {**inputs, "labels": labels})

    assert_same_training(make, loss)


def test_model_without_transformer_layers_is_a_clear_error():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    with pytest.raises(BadInputError, match="Sequential holds no transformers model.*without --gradient-checkpointing"):
        enable_gradient_checkpointing(model)


def test_every_other_layer():
    plain, model = tiny_classifier(), tiny_classifier()
    assert "1 BertLayer layers" in enable_gradient_checkpointing(model, every_n_layers=2)
    assert checkpointed_layers(model) == ["bert.encoder.layer.0"]
    assert train_losses(plain, classifier_loss) == pytest.approx(train_losses(model, classifier_loss), rel=1e-6)
    with pytest.raises(BadInputError, match="every_n_layers=0: use a whole number >= 1"):
        enable_gradient_checkpointing(tiny_classifier(), every_n_layers=0)


class FixedBatches:
    """Two deterministic batches per epoch (a BatchSource for the training loop)."""

    num_examples = 16

    def __len__(self):
        return 2

    def batches(self, epoch, start=0):
        for index in range(start, 2):
            yield batch(seed=10 * epoch + index)


def test_the_loop_checkpoints_every_nth_layer_from_the_config():
    from fmkit.train import train
    from fmkit.train.config import TrainConfig

    cfg = TrainConfig(epochs=1, batch_size=8, learning_rate=1e-3, precision="fp32", device="cpu", progress=False,
                      early_stopping_patience=None, gradient_checkpointing=True, gradient_checkpointing_every=2)
    model = tiny_classifier()
    result = train(model, FixedBatches(), cfg)
    assert checkpointed_layers(model) == ["bert.encoder.layer.0"]  # layer 0 of 2: every 2nd
    assert "1 BertLayer layers" in result.parallel["gradient_checkpointing"] and result.steps == 2


def test_the_interval_is_validated_and_reaches_the_config_from_the_cli():
    from pydantic import ValidationError

    from fmkit.cli.commands import finetune
    from fmkit.cli.main import build_parser
    from fmkit.train.config import TrainConfig

    with pytest.raises(ValidationError, match="gradient_checkpointing_every=0: must be >= 1"):
        TrainConfig(gradient_checkpointing=True, gradient_checkpointing_every=0)
    with pytest.raises(ValidationError, match="gradient_checkpointing_every=3 without gradient_checkpointing: add "
                       "--gradient-checkpointing"):
        TrainConfig(gradient_checkpointing_every=3)
    args = build_parser().parse_args(["finetune", "--data", "d.csv", "--out", "x", "--gradient-checkpointing",
                                      "--gradient-checkpointing-every", "2"])
    train_cfg = finetune.build_config(args).train
    assert (train_cfg.gradient_checkpointing, train_cfg.gradient_checkpointing_every) == (True, 2)
