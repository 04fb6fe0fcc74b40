"""Image data: IDX, class folders, NumPy arrays and built-in sets -> uint8 (N, C, H, W) + labels + splits.

Importing this package is cheap; NumPy and Pillow load with the readers.
"""

from fmkit.data.images.config import ImageDataConfig

__all__ = ["ImageDataConfig", "load_image_classification"]


def load_image_classification(config: ImageDataConfig):
    from fmkit.data.images.dataset import load_image_classification as load

    return load(config)
