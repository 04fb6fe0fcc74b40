"""Text classification: a label per text, on MiniLM and other BERT-family encoders (the default task).

Data is a table (fmkit.data), the model a Hugging Face sequence classifier built from a base
(fmkit/finetune/text_model.py) and wrapped by the finetune method (full, LoRA), batches are
token ids padded per batch, DP-SGD applies, and bundles serve, explain and audit texts.
"""

from __future__ import annotations

from fmkit.tasks.base import Capabilities, TaskAdapter, TrainingSetup, register_task

NAME = "text-classification"
EVALUATION_BATCH = 64  # texts per batch when the finetune stage scores a split


def load_data(config):
    from fmkit.data import load_text_classification

    return load_text_classification(config)


def prepare(cfg, data) -> TrainingSetup:
    """The base classifier with a head for ``data``'s labels, wrapped by the method, and every split tokenized.

    The head reads the base's own sentence pooling when it declares one (fmkit/finetune/text_model.py);
    with few rows per class the run is few-shot (fmkit/finetune/fewshot.py), and the head may start from
    a logistic-regression probe (LP-FT, fmkit/finetune/probe.py).
    """
    import warnings

    from fmkit.bundle import read_manifest
    from fmkit.data.batching import encode_texts
    from fmkit.finetune import fewshot
    from fmkit.finetune.methods import FINETUNE_METHODS
    from fmkit.finetune.text_model import (TextSetup, base_model_record, classifier_pooling, head_init_of,
                                           load_base_classifier, model_type_of)
    from fmkit.models import resolve_model
    from fmkit.models.pooling import read_pooling_mode

    method = FINETUNE_METHODS.get(cfg.method_name)
    base = resolve_model(cfg.model)
    label2id = {label: index for index, label in enumerate(data.label_names)}
    train_label_ids = [label2id[data.labels[i]] for i in data.splits["train"]]
    few_shot = fewshot.few_shot_chosen(cfg.few_shot, cfg.method_name, train_label_ids, len(data.label_names),
                                       cfg.few_shot_max_per_class, sentence_encoder=read_pooling_mode(base.path)
                                       is not None, private=cfg.privacy is not None)
    pooling = classifier_pooling(base, cfg.pooling, model_type_of(base))
    if few_shot and pooling == "pooler":
        pooling = fewshot.POOLING  # pairs train a sentence embedding: BERT's [CLS] pooler is not one
    tokenizer, model = load_base_classifier(base, data.label_names, cfg.dropout, cfg.train.seed, pooling=pooling,
                                            normalize=few_shot, max_length=cfg.max_length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one combined warning below instead of one per split
        encoded = {name: encode_texts(tokenizer, data.split(name)[0], cfg.max_length, warn=False) for name in data.splits}
    truncated = {name: e.truncated for name, e in encoded.items() if e.truncated}
    if truncated:
        warnings.warn(f"texts longer than max_length={cfg.max_length} tokens were truncated: {truncated}; "
                      "raise --max-length to keep them whole", stacklevel=3)
    head = {"pooling": pooling, "few_shot": few_shot}
    plan = None
    if few_shot:
        plan = fewshot.FewShotPlan(encoded["train"], train_label_ids, len(data.label_names), tokenizer.pad_token_id,
                                   cfg.train.seed)
        head["init"] = "probe (SetFit: contrastive pairs, then logistic regression)"
    else:
        head["init"] = head_init_of(cfg.head_init)
        if head["init"] == "probe":
            from fmkit.finetune.probe import probe_head_
            from fmkit.train.precision import select_device

            head["probe"] = probe_head_(model, encoded["train"], train_label_ids, len(data.label_names),
                                        tokenizer.pad_token_id, select_device(cfg.train.device), cfg.train.seed)
            model.to("cpu")
    return TextSetup(
        model=method.prepare(model, cfg.method), inputs=encoded, base=base_model_record(base), parent=str(base.name),
        parent_lineage=read_manifest(base.path).lineage if base.is_bundle else [],
        default_learning_rate=fewshot.LEARNING_RATE if few_shot else method.learning_rate_for(model), tools=tokenizer,
        manifest_fields={"max_length": cfg.max_length}, facts={"head": head}, few_shot=plan)


def batches(setup: TrainingSetup, cfg, inputs, label_ids):
    from fmkit.data.batching import ClassificationBatches

    if getattr(setup, "few_shot", None) is not None:  # SetFit: the loop trains the encoder on pairs of texts
        from fmkit.finetune.fewshot import PairBatches

        return PairBatches(inputs, label_ids, setup.tools.pad_token_id, cfg.train.seed)
    return ClassificationBatches(inputs, label_ids, cfg.train.batch_size, setup.tools.pad_token_id, cfg.train.seed)


def loss(model, batch, criterion=None):
    """The training loss; ``criterion(logits, labels)`` replaces the plain cross-entropy (class weights, focal)."""
    if "pair_labels" in batch:  # few-shot pairs (fmkit/finetune/fewshot.py): cosine loss; class weights do not apply
        from fmkit.finetune.fewshot import pair_loss

        return pair_loss(model, batch)
    if criterion is not None:
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        return criterion(model(**inputs).logits, batch["labels"])
    return model(**batch).loss  # the sequence classifier's own cross-entropy


def split_metrics(setup: TrainingSetup, model, inputs, label_ids, label_names, device) -> dict:
    from fmkit.runtime.inference import stream_metrics

    if getattr(setup, "few_shot", None) is not None:  # SetFit's head: logistic regression on the tuned encoder
        setup.facts["head"]["probe"] = setup.few_shot.refit_head_(model, device)
    return stream_metrics(model, inputs, label_ids, label_names, setup.tools.pad_token_id, EVALUATION_BATCH, device)


def save(setup: TrainingSetup, model, cfg, directory) -> dict:
    """The method's weights (merged LoRA too) and the tokenizer; returns the method's facts."""
    from fmkit.finetune.methods import FINETUNE_METHODS

    facts = FINETUNE_METHODS.get(cfg.method_name).save(model, directory, cfg.method)
    setup.tools.save_pretrained(str(directory))
    return facts


def dp_hooks(setup: TrainingSetup, cfg, inputs, label_ids):
    from fmkit.privacy.dp import DPHooks

    return DPHooks(cfg.privacy, inputs.input_ids, label_ids, batch_size=cfg.train.batch_size, epochs=cfg.train.epochs,
                   pad_id=setup.tools.pad_token_id, seed=cfg.train.seed, full_finetune=cfg.method_name == "full")


def data_config(bundle_data: dict, cfg):
    """The bundle's own data settings (columns, split seed, fractions), with the user's overrides."""
    from fmkit.data.config import DataConfig
    from fmkit.errors import BadInputError

    stored = bundle_data.get("config")
    if not stored and cfg.data is None:
        raise BadInputError("this bundle does not record its training data; pass --data FILE")
    settings = dict(stored or {})
    if cfg.data is not None and cfg.data != settings.get("source"):
        settings.pop("max_rows", None)  # a training-time subsample applies to the training source only
    overrides = {"source": cfg.data, "text_column": cfg.text_column, "label_column": cfg.label_column}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return DataConfig.model_validate(settings)


def evaluation_inputs(runtime, data, rows) -> tuple:
    encoded = runtime.encode([data.texts[i] for i in rows])
    return encoded, {"truncated_texts": encoded.truncated}


def frozen_features(cfg, data, rows: dict) -> tuple[str, dict]:
    """The frozen base encoder's pooled embeddings of each split's rows: what the baseline probe is fitted on.

    Pooled the way the base was trained (its sentence-transformers ``1_Pooling``; mean when it declares none),
    so the baseline is the one a user would write with that encoder; nothing is trained here.
    """
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from fmkit.bundle import loading_weights
    from fmkit.data.batching import encode_texts, pad_batch, sorted_batches
    from fmkit.models import resolve_model
    from fmkit.models.pooling import pool, read_pooling_mode
    from fmkit.offline import enforce_offline
    from fmkit.train.precision import autocast, resolve_precision, select_device

    enforce_offline()
    base = resolve_model(cfg.model)
    mode = read_pooling_mode(base.path) or "mean"
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # a classifier checkpoint's unused head weights are expected here
    hf_logging.disable_progress_bar()
    try:
        with loading_weights(base.path):
            tokenizer = AutoTokenizer.from_pretrained(str(base.path))
            encoder = AutoModel.from_pretrained(str(base.path), use_safetensors=True)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    device = select_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    encoder.to(device).eval()
    features = {}
    for split, indices in rows.items():
        encoded = encode_texts(tokenizer, [data.texts[i] for i in indices], cfg.max_length, warn=False)
        pooled = np.zeros((len(indices), encoder.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for batch_rows in sorted_batches(encoded.lengths, EVALUATION_BATCH):
                batch = {k: v.to(device) for k, v in pad_batch([encoded.input_ids[i] for i in batch_rows],
                                                               tokenizer.pad_token_id).items()}
                with autocast(precision, device):
                    hidden = encoder(**batch).last_hidden_state
                pooled[batch_rows] = pool(hidden.float(), batch["attention_mask"], mode).cpu().numpy()
        features[split] = pooled
    return f"{base.name} ({mode} pooling, frozen)", features


ADAPTER = register_task(TaskAdapter(
    NAME, "a label per text (MiniLM and other BERT-family encoders)",
    Capabilities(finetune_methods=("full", "lora"), dp=True, serves="texts", explanations=True),
    examples="texts", finetune_config="fmkit.finetune.config:FinetuneConfig",
    load_data=load_data, prepare=prepare, batches=batches, loss=loss, split_metrics=split_metrics, save=save,
    dp_hooks=dp_hooks, data_config=data_config, evaluation_inputs=evaluation_inputs, frozen_features=frozen_features,
    compress="fmkit.compress.tasks:TEXT_HOOKS", runtime_inputs="fmkit.runtime.text:TextInputs"))
