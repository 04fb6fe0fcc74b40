"""``finetune``: base model + labelled texts -> an evaluated task bundle."""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path

from fmkit.bundle import LineageEntry, Manifest, read_manifest, write_bundle
from fmkit.data import TextClassificationData, load_text_classification
from fmkit.finetune.config import FinetuneConfig
from fmkit.finetune.methods import FINETUNE_METHODS
from fmkit.models import ResolvedModel, resolve_model

SPLIT_FILE = "split.json"
TASK = "text-classification"


def checkpoint_dir_for(out: Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".checkpoints")


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


def run_finetune(cfg: FinetuneConfig, out: Path, *, resume: bool = False, overwrite: bool = False,
                 keep_checkpoints: bool = False, data: TextClassificationData | None = None, hooks=None) -> Manifest:
    """Fine-tune ``cfg.model`` on ``cfg.data`` and write the bundle ``out``."""
    from fmkit.data.batching import ClassificationBatches, encode_texts
    from fmkit.errors import BadInputError
    from fmkit.runtime.inference import stream_metrics
    from fmkit.train import train
    from fmkit.train.precision import select_device

    out = Path(out)
    if out.exists() and not overwrite:
        raise BadInputError(f"{out} already exists; choose another --out or pass --overwrite")
    method = FINETUNE_METHODS.get(cfg.method_name)
    if cfg.train.learning_rate is None:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"learning_rate": method.default_learning_rate})})
    started = time.time()
    data = data or load_text_classification(cfg.data)
    base = resolve_model(cfg.model)
    tokenizer, model = load_base_classifier(base, data.label_names, cfg.dropout, cfg.train.seed)
    label2id = {label: index for index, label in enumerate(data.label_names)}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one combined warning below instead of one per split
        encoded = {name: encode_texts(tokenizer, data.split(name)[0], cfg.max_length, warn=False) for name in data.splits}
    truncated = {name: e.truncated for name, e in encoded.items() if e.truncated}
    if truncated:
        warnings.warn(f"texts longer than max_length={cfg.max_length} tokens were truncated: {truncated}; "
                      "raise --max-length to keep them whole", stacklevel=2)
    label_ids = {name: [label2id[l] for l in data.split(name)[1]] for name in data.splits}
    if not label_ids["train"]:
        raise BadInputError(f"{cfg.data.source}: the training split is empty; add rows or lower the held-out fractions")

    batches = ClassificationBatches(encoded["train"], label_ids["train"], cfg.train.batch_size,
                                    tokenizer.pad_token_id, cfg.train.seed)
    device = select_device(cfg.train.device)
    model = method.prepare(model, cfg.method)

    def evaluate_split(name: str):
        return lambda m: stream_metrics(m, encoded[name], label_ids[name], data.label_names,
                                        tokenizer.pad_token_id, 64, device)

    train_cfg, dp_hooks = cfg.train, None
    if cfg.privacy is not None:
        from fmkit.privacy.dp import DPHooks

        if hooks is not None:
            raise BadInputError("DP fine-tuning brings its own training hooks; do not pass others")
        problems = []
        if cfg.train.gradient_accumulation_steps != 1:
            problems.append(f"gradient_accumulation_steps={cfg.train.gradient_accumulation_steps}: with DP the "
                            "logical batch is batch_size (Poisson-sampled); set it to 1")
        if cfg.train.precision in ("fp16", "bf16"):
            problems.append(f"precision={cfg.train.precision}: DP-SGD runs in fp32 here (per-sample clipping in "
                            "low precision is unvalidated); use auto or fp32")
        if cfg.train.max_steps is not None:
            problems.append("max_steps: the DP budget is planned over whole epochs; leave max_steps unset")
        if problems:
            raise BadInputError("--privacy dp: " + "; ".join(problems))
        dp_hooks = DPHooks(cfg.privacy, encoded["train"].input_ids, label_ids["train"], batch_size=cfg.train.batch_size,
                           epochs=cfg.train.epochs, pad_id=tokenizer.pad_token_id, seed=cfg.train.seed,
                           full_finetune=cfg.method_name == "full")
        hooks = dp_hooks
        # per-example clipping replaces global clipping; fp32 (see above)
        train_cfg = cfg.train.model_copy(update={"max_grad_norm": None, "precision": "fp32"})

    has_validation = bool(label_ids["validation"])
    if not has_validation:
        warnings.warn("no validation split: early stopping is off and the last epoch is kept", stacklevel=2)
    checkpoints = checkpoint_dir_for(out)
    result = train(
        model, batches, train_cfg,
        evaluate_fn=(lambda m: headline_metrics(evaluate_split("validation")(m))) if has_validation else None,
        checkpoint_dir=checkpoints, resume=resume, hooks=hooks,
    )
    if dp_hooks is not None:
        dp_hooks.cleanup()
    metrics = {name: evaluate_split(name)(model) for name in ("validation", "test") if label_ids[name]}

    base_record = base_model_record(base)
    manifest = Manifest(
        task=TASK,
        labels=data.label_names,
        max_length=cfg.max_length,
        base_model=base_record,
        lineage=[LineageEntry(stage="finetune", config=cfg.model_dump(mode="json"),
                              parent_digest=base_record["digest"], parent=str(base.name),
                              data_fingerprint=data.fingerprint)],
        metrics=metrics,
        data=data.summary(),
        training={**result.as_dict(), "method": cfg.method_name, "wall_seconds": round(time.time() - started, 1)},
        privacy={"dp": result.hooks} if dp_hooks is not None else {},
    )
    if base.is_bundle:
        manifest.lineage = read_manifest(base.path).lineage + manifest.lineage

    def write_files(directory: Path) -> None:
        manifest.training.update(method.save(model, directory, cfg.method))
        tokenizer.save_pretrained(str(directory))
        write_split_and_confusion(directory, data, cfg.data.seed, metrics, out.name)

    manifest = write_bundle(out, manifest, write_files, overwrite=overwrite)
    if not keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return manifest


def write_split_and_confusion(directory: Path, data, split_seed: int, metrics: dict, title: str) -> None:
    """The bundle's ``split.json`` (indices + data fingerprint) and a confusion-matrix PNG per evaluated split."""
    from fmkit.bundle.store import REPORTS_DIR
    from fmkit.evaluate.plots import plot_confusion_matrix
    from fmkit.fileio import write_json_atomic

    write_json_atomic(directory / SPLIT_FILE, {"fingerprint": data.fingerprint, "seed": split_seed,
                                               "indices": data.splits})
    for name, split_metrics in metrics.items():
        plot_confusion_matrix(split_metrics["confusion_matrix"], directory / REPORTS_DIR / f"confusion_{name}.png",
                              f"{title}: {name}")


def headline_metrics(metrics: dict) -> dict:
    """Accuracy, macro-F1 and log-loss: what the training loop logs and early-stops on after each evaluation."""
    return {k: metrics[k] for k in ("accuracy", "macro_f1", "log_loss")}
