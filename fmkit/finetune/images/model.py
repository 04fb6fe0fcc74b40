"""The image network a fine-tune trains: a registered architecture, or an image bundle to continue.

Used by the image-classification adapter (fmkit/tasks/image_classification.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from fmkit.finetune.images.config import ImageFinetuneConfig


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

    cfg, _ = cfg.resolved_for(data)  # model auto (run_finetune resolved and logged it already; direct calls too)
    torch.manual_seed(cfg.train.seed)  # the new head's initialisation
    if cfg.model in IMAGE_MODELS:
        config = network_config(cfg, cfg.model, data)
        module = IMAGE_MODELS.get(cfg.model).load()
        model = module.build(config)
        return model, config, module.load_pretrained(model)
    found = bundle_task(cfg.model)
    if found != cfg.task:  # a bundle of another task (or none) cannot continue as this one
        what = f"a {found} bundle" if found else "neither a registered image model nor a bundle"
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
