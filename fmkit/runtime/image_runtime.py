"""Run an image-classification bundle: PyTorch (model.safetensors) or ONNX Runtime (model.onnx).

``predict`` takes image file paths, PIL images, one NumPy batch (N, H, W), (N, H, W, C) or
(N, C, H, W), or a list of single images; each is brought to the bundle's channels and size the
way its training data was (Pillow bilinear resize, ITU-R 601 grayscale), then fed as 0..255 floats.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from fmkit.errors import BadInputError
from fmkit.runtime import RUNTIMES
from fmkit.runtime.base import Prediction, require_finite, softmax


class ImageClassifierRuntime:
    backend = "base-image"
    takes_images = True

    def __init__(self, path, *, batch_size: int = 64, verify: bool = True):
        from fmkit.bundle import loading_weights, open_bundle
        from fmkit.bundle.store import refuse_pickles
        from fmkit.models.images import CONFIG_FILE
        from fmkit.tasks import IMAGE

        self.path = Path(path)
        self.manifest = open_bundle(self.path, verify=verify)  # changed files or an edited manifest: refused
        if self.manifest.task != IMAGE:
            raise BadInputError(f"{self.path} is a {self.manifest.task} bundle; the {self.backend} runtime runs "
                                f"image-classification bundles. Open it with fmkit.load({str(self.path)!r}), which "
                                "picks the bundle's own runtime")
        refuse_pickles(self.path)
        with loading_weights(self.path):
            self.config = json.loads((self.path / CONFIG_FILE).read_text())
        self.labels = list(self.manifest.labels)
        self.batch_size = batch_size
        self.channels = int(self.config["channels"])
        self.image_size = tuple(self.config["image_size"])

    # -- implemented by each backend -------------------------------------------------------
    def forward(self, pixels: np.ndarray) -> np.ndarray:  # float32 (N, C, H, W), 0..255 -> fp32 logits
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------
    def _fit(self, image: np.ndarray) -> np.ndarray:
        from fmkit.data.images.readers import convert_channels

        image = convert_channels(image, self.channels)
        if image.shape[1:] != self.image_size:
            from PIL import Image

            height, width = self.image_size
            image = np.stack([np.asarray(Image.fromarray(p).resize((width, height), Image.Resampling.BILINEAR))
                              for p in image])
        return image

    def prepare(self, inputs) -> np.ndarray:
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

    def encode(self, inputs, warn: bool = True) -> np.ndarray:
        """Same role as the text runtimes' ``encode``: inputs -> what ``iter_logits`` batches."""
        return self.prepare(inputs)

    def iter_logits(self, images: np.ndarray, batch_size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(row indices, logits) per batch of uint8 (N, C, H, W) images already at the bundle's shape."""
        size = batch_size or self.batch_size
        for start in range(0, len(images), size):
            chunk = np.ascontiguousarray(images[start:start + size], dtype=np.float32)
            yield np.arange(start, start + len(chunk)), require_finite(self.forward(chunk), self.path)

    def logits(self, inputs) -> np.ndarray:
        images = self.prepare(inputs)
        output = np.empty((len(images), len(self.labels)), dtype=np.float32)
        for indices, logits in self.iter_logits(images):
            output[indices] = logits
        return output

    def predict_proba(self, inputs) -> np.ndarray:
        return softmax(self.logits(inputs))

    def predict(self, inputs: Sequence | np.ndarray) -> list[Prediction]:
        """``fmkit.load("models/fashion-cnn").predict(["shirt.png"])`` -> [Prediction(label, probabilities)]."""
        return [Prediction(self.labels[int(row.argmax())], {l: float(p) for l, p in zip(self.labels, row)})
                for row in self.predict_proba(inputs)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path}, labels={self.labels})"


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


@RUNTIMES.register("torch-image")
class TorchImageRuntime(ImageClassifierRuntime):
    backend = "torch-image"

    def __init__(self, path, *, device: str = "auto", precision: str = "fp32", batch_size: int = 64,
                 threads: int | None = None, verify: bool = True):
        super().__init__(path, batch_size=batch_size, verify=verify)
        import torch

        from fmkit.train.precision import resolve_precision, select_device

        if threads:
            torch.set_num_threads(threads)
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = load_image_model(self.path).to(self.device)

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        from fmkit.train.precision import autocast

        with torch.inference_mode(), autocast(self.precision, self.device):
            return self.model(torch.from_numpy(pixels).to(self.device)).float().cpu().numpy()


@RUNTIMES.register("onnx-image")
class OnnxImageRuntime(ImageClassifierRuntime):
    backend = "onnx-image"

    def __init__(self, path, *, device: str = "auto", batch_size: int = 64, threads: int | None = None,
                 verify: bool = True):
        super().__init__(path, batch_size=batch_size, verify=verify)
        import onnxruntime as ort

        from fmkit.bundle import loading_weights
        from fmkit.export.onnx import ONNX_FILE
        from fmkit.runtime.onnx_runtime import session_options

        model_file = self.path / ONNX_FILE
        if not model_file.is_file():
            raise BadInputError(f"{self.path} has no {ONNX_FILE}; make one with `fmkit compress {self.path} "
                                "--method quantize-dynamic` (or quantize-static)")
        if device.startswith("cuda"):
            raise BadInputError("the ONNX image runtime runs on the CPU here; use device=cpu or the torch runtime")
        self.device = "cpu"
        with loading_weights(self.path):
            self.session = ort.InferenceSession(str(model_file), session_options(threads),
                                                providers=["CPUExecutionProvider"])

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        (logits,) = self.session.run(None, {"pixel_values": pixels})
        return logits.astype(np.float32, copy=False)
