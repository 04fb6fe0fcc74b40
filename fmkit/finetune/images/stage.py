"""``finetune`` for images: image model + labelled images -> an evaluated image-classification bundle.

Same loop (``fmkit.train.train``), same TrainConfig, same metrics, same bundle writer as text;
what differs is the data, the network and its files (``model.safetensors`` + ``image_config.json``).
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

from fmkit.bundle import LineageEntry, Manifest, read_manifest, write_bundle
from fmkit.finetune.images.config import ImageFinetuneConfig
from fmkit.tasks import IMAGE

SPLIT_FILE = "split.json"


def network_config(cfg: ImageFinetuneConfig, architecture: str, data) -> dict:
    """What the bundle's image_config.json records: enough to rebuild the network and feed it."""
    from fmkit.models.images import IMAGE_MODELS

    spec = IMAGE_MODELS.get(architecture)
    mean, std = spec.normalisation
    return {"architecture": architecture, "num_classes": len(data.label_names), "labels": data.label_names,
            "channels": data.channels, "image_size": list(data.image_size),
            "input_size": cfg.input_size or spec.default_input_size or max(data.image_size),
            "normalisation": {"mean": mean, "std": std, "input": "float pixels 0..255, (N, C, H, W)"},
            "dropout": cfg.dropout}


def build_model(cfg: ImageFinetuneConfig, data):
    """(model, its config, base-model record): a registered architecture, or an image bundle to continue."""
    import torch
    from safetensors.torch import load_model

    from fmkit.bundle.store import refuse_pickles
    from fmkit.errors import BadInputError
    from fmkit.models.images import CONFIG_FILE, IMAGE_MODELS, WEIGHTS_FILE
    from fmkit.tasks import bundle_task

    torch.manual_seed(cfg.train.seed)  # the new head's initialisation
    if cfg.model in IMAGE_MODELS:
        config = network_config(cfg, cfg.model, data)
        module = IMAGE_MODELS.get(cfg.model).load()
        model = module.build(config)
        return model, config, module.load_pretrained(model)
    task = bundle_task(cfg.model)
    if task != IMAGE:
        what = f"a {task} bundle" if task else "neither a registered image model nor a bundle"
        raise BadInputError(f"--model {cfg.model!r} is {what}; image fine-tuning starts from "
                            f"{', '.join(IMAGE_MODELS.names())} or an image-classification bundle")
    from fmkit.bundle import loading_weights, open_bundle

    parent = Path(cfg.model)
    manifest = open_bundle(parent)  # changed weights or an edited manifest are refused, not trained on
    refuse_pickles(parent)
    with loading_weights(parent):
        stored = json.loads((parent / CONFIG_FILE).read_text())
    if stored["channels"] != data.channels:
        raise BadInputError(f"{parent} takes {stored['channels']}-channel images, the data has {data.channels}; "
                            f"pass --channels {stored['channels']}")
    module = IMAGE_MODELS.get(stored["architecture"]).load()
    model = module.build(stored)
    with loading_weights(parent):
        load_model(model, str(parent / WEIGHTS_FILE))
    if stored["labels"] != data.label_names:  # other classes: a fresh head of the right size
        module.replace_head(model, len(data.label_names))
    config = {**stored, "num_classes": len(data.label_names), "labels": data.label_names,
              "image_size": list(data.image_size)}
    return model, config, {"name": str(parent), "path": str(parent.resolve()), "digest": manifest.content_digest,
                           "base_model": manifest.base_model.get("name")}


def run_image_finetune(cfg: ImageFinetuneConfig, out: Path, *, resume: bool = False, overwrite: bool = False,
                       keep_checkpoints: bool = False, data=None, hooks=None) -> Manifest:
    """Fine-tune ``cfg.model`` on ``cfg.data`` and write the image bundle ``out``."""
    from safetensors.torch import save_model

    from fmkit.data.images import load_image_classification
    from fmkit.errors import BadInputError
    from fmkit.fileio import write_json_atomic
    from fmkit.finetune.images.batches import ImageBatches, image_loss, image_metrics
    from fmkit.finetune.stage import checkpoint_dir_for, headline_metrics, write_split_and_confusion
    from fmkit.models.images import CONFIG_FILE, IMAGE_MODELS, WEIGHTS_FILE
    from fmkit.train import train
    from fmkit.train.precision import select_device

    out = Path(out)
    if out.exists() and not overwrite:
        raise BadInputError(f"{out} already exists; choose another --out or pass --overwrite")
    started = time.time()
    data = data or load_image_classification(cfg.data)
    model, config, base_record = build_model(cfg, data)
    if cfg.train.learning_rate is None:
        rate = IMAGE_MODELS.get(config["architecture"]).default_learning_rate
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"learning_rate": rate})})
    label2id = {label: index for index, label in enumerate(data.label_names)}
    images = {name: data.split(name)[0] for name in data.splits}
    label_ids = {name: [label2id[label] for label in data.split(name)[1]] for name in data.splits}
    if not label_ids["train"]:
        raise BadInputError(f"{cfg.data.source}: the training split is empty; add images or lower the held-out fractions")
    batches = ImageBatches(images["train"], label_ids["train"], cfg.train.batch_size, cfg.train.seed, cfg.augment)
    device = select_device(cfg.train.device)

    def evaluate_split(name: str):
        return lambda m: image_metrics(m, images[name], label_ids[name], data.label_names, device)

    has_validation = bool(label_ids["validation"])
    if not has_validation:
        warnings.warn("no validation split: early stopping is off and the last epoch is kept", stacklevel=2)
    checkpoints = checkpoint_dir_for(out)
    result = train(model, batches, cfg.train, loss_fn=image_loss,
                   evaluate_fn=(lambda m: headline_metrics(evaluate_split("validation")(m))) if has_validation else None,
                   checkpoint_dir=checkpoints, resume=resume, hooks=hooks)
    metrics = {name: evaluate_split(name)(model) for name in ("validation", "test") if label_ids[name]}
    model.cpu().eval()

    manifest = Manifest(
        task=IMAGE, labels=data.label_names, base_model=base_record,
        lineage=[LineageEntry(stage="finetune", config=cfg.model_dump(mode="json"), parent_digest=base_record["digest"],
                              parent=cfg.model, data_fingerprint=data.fingerprint)],
        metrics=metrics, data=data.summary(),
        training={**result.as_dict(), "method": "full", "architecture": config["architecture"],
                  "input_size": config["input_size"], "augment": cfg.augment,
                  "trainable_parameters": sum(p.numel() for p in model.parameters()),
                  "wall_seconds": round(time.time() - started, 1)},
    )
    if base_record.get("digest") and Path(cfg.model).is_dir():
        manifest.lineage = read_manifest(cfg.model).lineage + manifest.lineage

    def write_files(directory: Path) -> None:
        save_model(model, str(directory / WEIGHTS_FILE))
        write_json_atomic(directory / CONFIG_FILE, config)
        write_split_and_confusion(directory, data, cfg.data.seed, metrics, out.name)

    manifest = write_bundle(out, manifest, write_files, overwrite=overwrite)
    if not keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return manifest

