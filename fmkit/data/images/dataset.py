"""Read, standardize, sample and split labelled images into :class:`ImageClassificationData`.

The shape mirrors :class:`fmkit.data.TextClassificationData`: rows, labels, label names, the
split indices, a fingerprint and a summary for the manifest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmkit.data.images.builtin import IMAGE_DATASETS
from fmkit.data.images.config import ImageDataConfig
from fmkit.data.images.readers import IMAGE_READERS, RawImages, detect_format, standardize
from fmkit.data.split import SPLITS, stratified_sample, stratified_split
from fmkit.errors import BadInputError
from fmkit.registry import did_you_mean


@dataclass
class ImageClassificationData:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: list[str]
    label_names: list[str]
    splits: dict[str, list[int]]
    fingerprint: str
    config: ImageDataConfig

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def split(self, name: str) -> tuple[np.ndarray, list[str]]:
        if name == "all":
            return self.images, list(self.labels)
        if name not in self.splits:
            raise BadInputError(f"unknown split {name!r}; use one of {', '.join(SPLITS)} or all")
        indices = self.splits[name]
        return self.images[indices], [self.labels[i] for i in indices]

    def summary(self) -> dict:
        return {
            "source": self.config.source,
            "fingerprint": self.fingerprint,
            "split_seed": self.config.seed,
            "split_sizes": {name: len(indices) for name, indices in self.splits.items()},
            "images": len(self.labels),
            "channels": self.channels,
            "image_size": list(self.image_size),
            "class_counts": {name: self.labels.count(name) for name in self.label_names},
            "config": self.config.model_dump(mode="json"),
        }


def image_fingerprint(images: np.ndarray, labels: list[str]) -> str:
    """A digest of the standardized pixels and labels in order: same data, same fingerprint."""
    digest = hashlib.sha256()
    digest.update(repr(images.shape).encode())
    digest.update(np.ascontiguousarray(images).data)
    digest.update("\n".join(labels).encode("utf-8"))
    return f"sha256:{digest.hexdigest()}"


def read_images(config: ImageDataConfig) -> RawImages:
    if config.source in IMAGE_DATASETS:
        return IMAGE_DATASETS.get(config.source).read()
    path = Path(config.source).expanduser()
    if not path.exists():
        raise BadInputError(
            f"image data {config.source!r} is neither a path nor a built-in dataset "
            f"({', '.join(IMAGE_DATASETS.names())}).{did_you_mean(config.source, IMAGE_DATASETS.names())}")
    return IMAGE_READERS.get(detect_format(path, config.format)).read(path)


def _sort_labels(values: set[str]) -> list[str]:
    try:
        return sorted(values, key=float)  # class indices in numeric order
    except ValueError:
        return sorted(values)


def load_image_classification(config: ImageDataConfig) -> ImageClassificationData:
    raw = read_images(config)
    images = standardize(raw, config.channels, config.image_size)
    labels = list(raw.labels)
    if len(images) != len(labels):
        raise BadInputError(f"{raw.origin}: {len(images)} images but {len(labels)} labels")
    if not labels:
        raise BadInputError(f"{raw.origin}: no images")
    official_test = raw.official_test
    if config.max_rows is not None:
        keep = stratified_sample(labels, config.max_rows, config.seed)
        images, labels = images[keep], [labels[i] for i in keep]
        official_test = official_test[keep] if official_test is not None else None
    present = set(labels)
    if len(present) < 2:
        raise BadInputError(f"{raw.origin}: only one class ({labels[0]!r}); classification needs at least two")
    label_names = [n for n in raw.label_names if n in present] if raw.label_names else _sort_labels(present)
    if official_test is None:
        splits = stratified_split(labels, config.validation_fraction, config.test_fraction, config.seed)
    else:  # keep the source's own test split; validation comes out of its training part
        pool = np.flatnonzero(~official_test)
        inner = stratified_split([labels[i] for i in pool], config.validation_fraction, 0.0, config.seed)
        splits = {"train": pool[inner["train"]].tolist(), "validation": pool[inner["validation"]].tolist(),
                  "test": np.flatnonzero(official_test).tolist()}
    return ImageClassificationData(images, labels, label_names, splits, image_fingerprint(images, labels), config)
