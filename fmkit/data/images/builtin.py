"""Built-in image datasets, read from files a system package installs (never a download)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fmkit.registry import Registry


@dataclass(frozen=True)
class BuiltinImageDataset:
    description: str
    read: Callable[[], "object"]  # -> RawImages
    label_names: tuple[str, ...]


IMAGE_DATASETS: Registry[BuiltinImageDataset] = Registry("built-in image dataset")

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")


def _fashion_mnist():
    from fmkit.data.images.readers import read_idx_source
    from fmkit.errors import BadInputError

    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        raise BadInputError(f"fashion-mnist: {FASHION_MNIST_DIR} is missing; install it with `apt-get install "
                            "dataset-fashion-mnist` (as root; `make test` does), or pass the IDX folder as --data")
    raw = read_idx_source(FASHION_MNIST_DIR)
    raw.labels = [FASHION_MNIST_CLASSES[int(label)] for label in raw.labels]
    raw.label_names = list(FASHION_MNIST_CLASSES)
    raw.origin = "built-in dataset 'fashion-mnist'"
    return raw


IMAGE_DATASETS.register("fashion-mnist")(BuiltinImageDataset(
    "Fashion-MNIST: 28x28 grayscale clothing, 10 classes, 60,000 train + 10,000 official test (Debian "
    "dataset-fashion-mnist)", _fashion_mnist, FASHION_MNIST_CLASSES))
