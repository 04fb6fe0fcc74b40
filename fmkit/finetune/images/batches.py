"""Training batches of images with augmentation in plain torch, deterministic per (seed, epoch, batch).

Resume depends on determinism: batch k of epoch e is the same images with the same crops and
flips whether or not the run was interrupted before it.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F


def random_crop_flip(pixels: torch.Tensor, generator: torch.Generator, padding: int, flip: bool = True) -> torch.Tensor:
    """Pad each image by ``padding`` (zeros), crop back at a random offset, mirror half of them."""
    count, _, height, width = pixels.shape
    if padding:
        padded = F.pad(pixels, [padding] * 4)
        offsets = torch.randint(0, 2 * padding + 1, (count, 2), generator=generator)
        rows = (offsets[:, 0, None] + torch.arange(height))[:, None, :, None]  # (N, 1, H, 1)
        columns = (offsets[:, 1, None] + torch.arange(width))[:, None, None, :]  # (N, 1, 1, W)
        batch = torch.arange(count)[:, None, None, None]
        channel = torch.arange(pixels.shape[1])[None, :, None, None]
        pixels = padded[batch, channel, rows, columns]
    if flip:
        mirror = torch.rand(count, generator=generator) < 0.5
        pixels = torch.where(mirror[:, None, None, None], pixels.flip(-1), pixels)
    return pixels


class ImageBatches:
    """A :class:`fmkit.train.loop.BatchSource` of ``{"pixel_values": float 0..255, "labels": long}``."""

    def __init__(self, images: np.ndarray, label_ids, batch_size: int, seed: int, augment: bool = True):
        self.images = torch.from_numpy(np.ascontiguousarray(images))  # uint8, converted per batch
        self.labels = torch.as_tensor(np.asarray(label_ids), dtype=torch.long)
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment
        self.padding = max(1, images.shape[-1] // 8)  # 3 pixels at 28x28, 4 at 32x32
        self.num_examples = len(self.labels)

    def __len__(self) -> int:
        return math.ceil(self.num_examples / self.batch_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        order = torch.randperm(self.num_examples, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
        for index in range(start, len(self)):
            rows = order[index * self.batch_size:(index + 1) * self.batch_size]
            pixels = self.images[rows].float()
            if self.augment:
                generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch * 10_007 + index) % 2**62)
                pixels = random_crop_flip(pixels, generator, self.padding)
            yield {"pixel_values": pixels, "labels": self.labels[rows]}


def image_loss(model, batch: dict, criterion=None) -> torch.Tensor:
    """Cross-entropy, or ``criterion(logits, labels)`` (class-weighted, focal: fmkit/train/losses.py)."""
    logits = model(batch["pixel_values"]).float()
    return criterion(logits, batch["labels"]) if criterion is not None else F.cross_entropy(logits, batch["labels"])


@torch.inference_mode()
def iter_image_logits(model, images: np.ndarray, batch_size: int, device: torch.device, precision: str = "fp32"):
    """(row indices, fp32 logits) per batch of a model being trained; the model's mode is restored."""
    from fmkit.train.precision import autocast

    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            pixels = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).float().to(device)
            with autocast(precision, device):
                logits = model(pixels)
            yield np.arange(start, start + len(pixels)), logits.float().cpu().numpy()
    finally:
        model.train(was_training)


def image_metrics(model, images: np.ndarray, label_ids, label_names, device, batch_size: int = 256,
                  precision: str = "fp32") -> dict:
    from fmkit.evaluate.metrics import metrics_from_logits

    return metrics_from_logits(iter_image_logits(model, images, batch_size, device, precision), label_ids, label_names)
