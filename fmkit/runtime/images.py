"""An image-classification bundle's runtime inputs: any image form -> uint8 (N, C, H, W) at the
bundle's channels and size, fed as 0..255 float32 ``pixel_values``; and its network.

``encode``/``prepare`` take image file paths, PIL images, one NumPy batch (N, H, W), (N, H, W, C)
or (N, C, H, W), or a list of single images; each is brought to the bundle's channels and size
the way its training data was (Pillow bilinear resize, ITU-R 601 grayscale). The task adapter
(fmkit/tasks) names :class:`ImageInputs`; the runtime backends stay task-free.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from fmkit.errors import BadInputError

INPUT_NAME = "pixel_values"  # the exported graph's input (fmkit/compress/images.py)


class ImageInputs:
    batch_size = 64

    def __init__(self, path: Path, manifest):
        from fmkit.bundle import loading_weights
        from fmkit.models.images import CONFIG_FILE

        with loading_weights(path):
            config = json.loads((Path(path) / CONFIG_FILE).read_text())
        self.channels = int(config["channels"])
        self.image_size = tuple(config["image_size"])

    def _fit(self, image: np.ndarray) -> np.ndarray:
        from fmkit.data.images.readers import convert_channels

        image = convert_channels(image, self.channels)
        if image.shape[1:] != self.image_size:
            from PIL import Image

            height, width = self.image_size
            image = np.stack([np.asarray(Image.fromarray(p).resize((width, height), Image.Resampling.BILINEAR))
                              for p in image])
        return image

    def encode(self, inputs, warn: bool = True) -> np.ndarray:
        """Anything ``predict`` accepts -> uint8 (N, C, H, W) at the bundle's channels and size."""
        from fmkit.data.images.readers import as_uint8_nchw, load_image_file

        if isinstance(inputs, np.ndarray):
            batch = as_uint8_nchw(inputs, "input array")
            return np.stack([self._fit(image) for image in batch]) if len(batch) else batch
        if isinstance(inputs, (str, Path)) or hasattr(inputs, "convert"):
            inputs = [inputs]
        images = []
        for item in inputs:
            if isinstance(item, (str, Path)):
                path = Path(item)
                if not path.is_file():
                    raise BadInputError(f"image {path} does not exist")
                image = load_image_file(path)
            elif hasattr(item, "convert"):  # a PIL image
                mode = "L" if item.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
                array = np.asarray(item.convert(mode), dtype=np.uint8)
                image = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            else:
                array = np.asarray(item)
                if array.ndim not in (2, 3):
                    raise BadInputError(f"one image is (H, W), (H, W, C) or (C, H, W); got shape {array.shape}. "
                                        "Pass a batch as one (N, ...) array")
                image = as_uint8_nchw(array[None], "input image")[0]
            images.append(self._fit(image))
        return np.stack(images) if images else np.zeros((0, self.channels, *self.image_size), np.uint8)

    @staticmethod
    def count(images: np.ndarray) -> int:
        return len(images)

    @staticmethod
    def batches(images: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """(row indices, feed) per batch of uint8 (N, C, H, W) images already at the bundle's shape."""
        for start in range(0, len(images), batch_size):
            chunk = np.ascontiguousarray(images[start:start + batch_size], dtype=np.float32)
            yield np.arange(start, start + len(chunk)), {INPUT_NAME: chunk}

    @staticmethod
    def load_torch_model(path: Path):
        return load_image_model(path)

    @staticmethod
    def torch_logits(model, tensors: dict):
        return model(tensors[INPUT_NAME])


def load_image_model(path: Path):
    """The bundle's network with its weights (safetensors only), in eval mode.

    Callers verify a bundle first (fmkit.bundle.open_bundle); a damaged file still gets a clear error.
    """
    from safetensors.torch import load_model

    from fmkit.bundle import loading_weights
    from fmkit.models.images import CONFIG_FILE, IMAGE_MODELS, WEIGHTS_FILE

    with loading_weights(path):
        config = json.loads((Path(path) / CONFIG_FILE).read_text())
        model = IMAGE_MODELS.get(config["architecture"]).load().build(config)
        load_model(model, str(Path(path) / WEIGHTS_FILE))
    return model.eval()
