"""Image classification: a label per image, on a small CNN from scratch or EfficientNet-Lite0 transfer.

Data is IDX files, class folders, .npz arrays or a built-in set (fmkit.data.images), the model a
registered architecture or an image bundle to continue (fmkit/finetune/images/model.py), batches
are 0..255 float pixels with crop/flip augmentation, and the bundle holds ``model.safetensors`` +
``image_config.json``. Full fine-tuning only; no DP, explanations or text audits yet.
"""

from __future__ import annotations

from pathlib import Path

from fmkit.tasks.base import Capabilities, TaskAdapter, TrainingSetup, bundle_task, register_task

NAME = "image-classification"


def claims(settings: dict) -> bool:
    """True when finetune settings name an image model, image data or an image bundle."""
    from fmkit.data.images.builtin import IMAGE_DATASETS
    from fmkit.models.images import IMAGE_MODELS

    model = settings.get("model")
    data = settings.get("data") if isinstance(settings.get("data"), dict) else {}
    source = data.get("source")
    if isinstance(model, str) and (model in IMAGE_MODELS or bundle_task(model) == NAME):
        return True
    if not isinstance(source, str):
        return False
    if source in IMAGE_DATASETS or bundle_task(source) == NAME:
        return True
    path = Path(source)
    return path.suffix == ".npz" or "-ubyte" in path.name or (path.is_dir() and bundle_task(path) is None)


def load_data(config):
    from fmkit.data.images import load_image_classification

    return load_image_classification(config)


def prepare(cfg, data) -> TrainingSetup:
    from fmkit.bundle import read_manifest
    from fmkit.finetune.images.model import build_model
    from fmkit.models.images import IMAGE_MODELS

    model, config, base = build_model(cfg, data)
    continued = bool(base.get("digest")) and Path(cfg.model).is_dir()
    return TrainingSetup(
        model=model, inputs={name: data.split(name)[0] for name in data.splits}, base=base, parent=cfg.model,
        parent_lineage=read_manifest(cfg.model).lineage if continued else [],
        default_learning_rate=IMAGE_MODELS.get(config["architecture"]).default_learning_rate, tools=config,
        facts={"architecture": config["architecture"], "input_size": config["input_size"], "augment": cfg.augment})


def batches(setup: TrainingSetup, cfg, inputs, label_ids):
    from fmkit.finetune.images.batches import ImageBatches

    return ImageBatches(inputs, label_ids, cfg.train.batch_size, cfg.train.seed, cfg.augment)


def loss(model, batch, criterion=None):
    from fmkit.finetune.images.batches import image_loss

    return image_loss(model, batch, criterion)


def split_metrics(setup: TrainingSetup, model, inputs, label_ids, label_names, device) -> dict:
    from fmkit.finetune.images.batches import image_metrics

    return image_metrics(model, inputs, label_ids, label_names, device)


def save(setup: TrainingSetup, model, cfg, directory) -> dict:
    """``model.safetensors`` + ``image_config.json`` (enough to rebuild the network and feed it)."""
    from safetensors.torch import save_model

    from fmkit.fileio import write_json_atomic
    from fmkit.models.images import CONFIG_FILE, WEIGHTS_FILE

    model.cpu().eval()
    save_model(model, str(directory / WEIGHTS_FILE))
    write_json_atomic(directory / CONFIG_FILE, setup.tools)
    return {"trainable_parameters": sum(p.numel() for p in model.parameters())}


def image_data_config(bundle_data: dict, source: str | None):
    """The bundle's own image settings (size, channels, split seed, fractions), with another source if given."""
    from fmkit.data.images import ImageDataConfig
    from fmkit.errors import BadInputError

    stored = bundle_data.get("config")
    if not stored and source is None:
        raise BadInputError("this bundle does not record its training data; pass --data PATH")
    settings = dict(stored or {})
    if source is not None and source != settings.get("source"):
        settings.pop("max_rows", None)  # a training-time subsample applies to the training source only
        settings["source"] = source
    return ImageDataConfig.model_validate(settings)


def data_config(bundle_data: dict, cfg):
    from fmkit.errors import BadInputError

    if cfg.text_column or cfg.label_column:
        raise BadInputError("--text-column/--label-column are for text tables; image labels come from class "
                            "folders, IDX label files or the .npz 'labels' array")
    return image_data_config(bundle_data, cfg.data)


def evaluation_inputs(runtime, data, rows) -> tuple:
    return runtime.prepare(data.images[rows]), {}  # to the bundle's channels and size, as at training time


def frozen_features(cfg, data, rows: dict) -> tuple[str, dict]:
    """The base network's penultimate features (what its last linear layer reads) of each split's images, frozen.

    The network is the one ``prepare`` starts from (ImageNet EfficientNet-Lite0, a bundle to continue, or the
    CNN's random init), so the baseline is a linear probe on exactly what fine-tuning begins with.
    """
    import numpy as np
    import torch
    from torch import nn

    from fmkit.finetune.images.batches import iter_image_logits
    from fmkit.finetune.images.model import build_model
    from fmkit.train.precision import resolve_precision, select_device

    model, config, base = build_model(cfg, data)
    head = [module for module in model.modules() if isinstance(module, nn.Linear)][-1]  # the classifier layer
    captured = []
    hook = head.register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].float().cpu().numpy()))
    device = select_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    features = {}
    try:
        model.to(device)
        for split, indices in rows.items():
            captured.clear()
            for _ in iter_image_logits(model, data.images[np.asarray(indices, dtype=np.int64)], 256, device, precision):
                pass
            features[split] = (np.concatenate(captured) if captured else np.zeros((0, head.in_features), np.float32))
    finally:
        hook.remove()
    weights = base.get("weights") or f"continued from {Path(base['name']).name}"  # a bundle records no "weights"
    return f"{config['architecture']} ({weights}, frozen)", features


def resolve_config(cfg, data):
    """``model: auto`` -> EfficientNet-Lite0 (pretrained, 64 px) below ``pretrained_below_rows`` training images, else
    the CNN from scratch: (resolved config, the record of why; {} for an explicit model)."""
    return cfg.resolved_for(data)


ADAPTER = register_task(TaskAdapter(
    NAME, "a label per image (a small CNN from scratch, EfficientNet-Lite0 transfer)",
    Capabilities(finetune_methods=("full",), serves="images"),
    examples="images", finetune_config="fmkit.finetune.images.config:ImageFinetuneConfig", claims=claims,
    load_data=load_data, resolve_config=resolve_config, prepare=prepare, batches=batches, loss=loss,
    split_metrics=split_metrics, save=save,
    data_config=data_config, evaluation_inputs=evaluation_inputs, frozen_features=frozen_features,
    compress="fmkit.compress.images:IMAGE_HOOKS", runtime_inputs="fmkit.runtime.images:ImageInputs"))
