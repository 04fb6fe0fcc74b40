"""Image readers: each registers itself with how to recognise its input and how to read it.

A reader returns :class:`RawImages`: uint8 arrays (C, H, W) that may still differ in size or
channels, their labels, and, where the source has one, its official test split.
:func:`standardize` then brings them to one shape or says which flag does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from fmkit.errors import BadInputError
from fmkit.registry import Registry

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class RawImages:
    images: list[np.ndarray] | np.ndarray  # each uint8 (C, H, W); one array (N, C, H, W) when uniform
    labels: list[str]
    origin: str  # printable name of where they came from
    label_names: list[str] | None = None  # the source's own class order (IDX/NumPy class indices)
    official_test: np.ndarray | None = None  # bool per image: the source's own test split
    names: list[str] | None = None  # per image, for error messages (file names)


@dataclass(frozen=True)
class ImageReader:
    detect: Callable[[Path], bool]
    read: Callable[[Path], RawImages]
    description: str


IMAGE_READERS: Registry[ImageReader] = Registry("image format")


def detect_format(path: Path, format: str) -> str:
    if format != "auto":
        return format
    for name in IMAGE_READERS:
        if IMAGE_READERS.get(name).detect(path):
            return name
    raise BadInputError(
        f"{path}: not a folder of class subfolders, an IDX file (*-ubyte[.gz]) or a .npz; pass one of those "
        "(or --format idx|folder|npz)")


# -- IDX ---------------------------------------------------------------------------------------

def _idx_pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    """prefix -> (images file, labels file), e.g. train and t10k of the MNIST layout."""
    pairs = {}
    for images in sorted(folder.glob("*images-idx3-ubyte*")):
        labels = _labels_beside(images)
        if labels is not None:
            pairs[images.name.split("images-idx3")[0].rstrip("-_.")] = (images, labels)
    return pairs


def _labels_beside(images: Path) -> Path | None:
    """The *-labels-idx1-ubyte file of the same name, gzipped or not."""
    name = images.name.replace("images-idx3", "labels-idx1").removesuffix(".gz")
    return next((p for p in (images.with_name(name), images.with_name(name + ".gz")) if p.is_file() and p != images),
                None)


def _is_idx(path: Path) -> bool:
    if path.is_dir():
        return bool(_idx_pairs(path))
    return "-ubyte" in path.name or path.suffix == ".idx"


def read_idx_source(path: Path) -> RawImages:
    """A folder holding *-images-idx3-ubyte + *-labels-idx1-ubyte pairs (t10k/test = the official test),
    or one images file whose labels file sits beside it."""
    from fmkit.data.images.idx import read_idx

    if path.is_dir():
        pairs = _idx_pairs(path)
        if not pairs:
            raise BadInputError(f"{path}: no *images-idx3-ubyte file with a matching *labels-idx1-ubyte beside it")
    else:
        labels_file = _labels_beside(path)
        if labels_file is None:
            raise BadInputError(f"{path}: no labels file beside it; IDX images need the *-labels-idx1-ubyte[.gz] "
                                "file of the same name")
        pairs = {"all": (path, labels_file)}
    images, labels, test = [], [], []
    for prefix, (images_file, labels_file) in pairs.items():
        pixels, classes = read_idx(images_file), read_idx(labels_file)
        if pixels.ndim != 3 or classes.ndim != 1:
            raise BadInputError(f"{images_file}: expected images (N, H, W) and labels (N,), got {pixels.shape} and "
                                f"{classes.shape}")
        if len(pixels) != len(classes):
            raise BadInputError(f"{images_file} holds {len(pixels)} images but {labels_file.name} {len(classes)} "
                                "labels; the files must come from the same set")
        images.append(pixels.astype(np.uint8, copy=False)[:, None])
        labels.append(classes)
        test.append(np.full(len(classes), prefix in ("t10k", "test")))
    stacked = np.concatenate(images) if len({i.shape[1:] for i in images}) == 1 else [x for i in images for x in i]
    classes = np.concatenate(labels)
    official = np.concatenate(test)
    return RawImages(stacked, [str(int(c)) for c in classes], str(path),
                     official_test=official if official.any() and not official.all() else None)


IMAGE_READERS.register("idx")(ImageReader(_is_idx, read_idx_source, "IDX (MNIST format), gzip or raw"))


# -- folder of class subfolders -----------------------------------------------------------------

def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_image_file(path: Path) -> np.ndarray:
    """One image file -> uint8 (C, H, W): grayscale stays 1 channel, anything else becomes RGB."""
    import struct

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            mode = "L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
            array = np.asarray(image.convert(mode), dtype=np.uint8)
    except Image.DecompressionBombError as error:
        raise BadInputError(f"{path}: too many pixels to decode safely ({error}); resize it (e.g. to at most "
                            "4096x4096) or replace it") from None
    # Pillow reports a corrupt file with any of these, depending on the format and where it breaks
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error) as error:
        raise BadInputError(f"{path}: not a readable image ({error}); remove or replace it") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def read_folder(path: Path) -> RawImages:
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    per_class = {c.name: _image_files(c) for c in classes}
    empty = [name for name, files in per_class.items() if not files]
    per_class = {name: files for name, files in per_class.items() if files}
    layout = f"put each class in its own subfolder: {path}/<class>/<image>.png"
    if not per_class:
        found = f" ({len(loose)} images lie directly in it)" if loose else ""
        raise BadInputError(f"{path}: no images in class subfolders{found}; {layout}")
    if len(per_class) < 2:
        (only,) = per_class
        raise BadInputError(f"{path}: only one class ({only!r}) has images; classification needs at least two "
                            f"class subfolders{' (empty: ' + ', '.join(empty) + ')' if empty else ''}. {layout}")
    images, labels, names = [], [], []
    for label, files in per_class.items():
        for file in files:
            images.append(load_image_file(file))
            labels.append(label)
            names.append(str(file.relative_to(path)))
    return RawImages(images, labels, str(path), names=names)


IMAGE_READERS.register("folder")(ImageReader(
    lambda p: p.is_dir() and not _is_idx(p), read_folder, "a folder with one subfolder of images per class (read with Pillow)"))


# -- NumPy ------------------------------------------------------------------------------------

def as_uint8_nchw(array: np.ndarray, origin: str) -> np.ndarray:
    """(N, H, W), (N, H, W, C) or (N, C, H, W); uint8, or floats in [0, 1] or [0, 255] -> uint8 (N, C, H, W)."""
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3, 4):
        array = array.transpose(0, 3, 1, 2)
    elif array.ndim != 4:
        raise BadInputError(f"{origin}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W); got shape {array.shape}")
    if array.shape[1] not in (1, 3, 4):
        raise BadInputError(f"{origin}: images have {array.shape[1]} channels (shape {array.shape}); use 1, 3 or 4")
    if array.shape[1] == 4:
        array = array[:, :3]  # RGBA: the alpha channel is not part of the picture
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype.kind not in "fiu":
        raise BadInputError(f"{origin}: images of dtype {array.dtype}; use uint8 or floats")
    finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array
    if array.dtype.kind == "f" and finite.size != array.size:
        raise BadInputError(f"{origin}: images contain NaN or infinite values")
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if low < 0 or high > 255:
        raise BadInputError(f"{origin}: pixel values span [{low:g}, {high:g}]; use uint8, floats in [0, 1] or [0, 255]")
    scale = 255.0 if array.dtype.kind == "f" and high <= 1.0 else 1.0
    return np.ascontiguousarray(np.clip(np.rint(array * scale), 0, 255).astype(np.uint8))


def read_npz(path: Path) -> RawImages:
    """Keys: images (or x), labels (or y); optional label_names (class index -> name)."""
    with np.load(path, allow_pickle=False) as archive:  # never unpickle object arrays
        keys = set(archive.files)
        image_key = next((k for k in ("images", "x", "X") if k in keys), None)
        label_key = next((k for k in ("labels", "y") if k in keys), None)
        if image_key is None or label_key is None:
            raise BadInputError(f"{path}: needs arrays 'images' and 'labels' (or 'x' and 'y'); it has {sorted(keys)}")
        images, labels = archive[image_key], archive[label_key]
        names = [str(n) for n in archive["label_names"]] if "label_names" in keys else None
    if len(images) != len(labels):
        raise BadInputError(f"{path}: {len(images)} images but {len(labels)} labels; each image needs one label")
    labels = np.asarray(labels).reshape(-1)
    if names is not None:
        if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= len(names):
            raise BadInputError(f"{path}: with label_names, labels must be class indices 0..{len(names) - 1}")
        labels = [names[int(i)] for i in labels]
    else:
        labels = [str(v) for v in labels.tolist()]
    return RawImages(as_uint8_nchw(images, str(path)), labels, str(path), label_names=names)


IMAGE_READERS.register("npz")(ImageReader(lambda p: p.suffix == ".npz", read_npz,
                                          "NumPy .npz with images (N,H,W[,C]) or (N,C,H,W) and labels"))


# -- one shape ---------------------------------------------------------------------------------

def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """(C, H, W) uint8 -> ``channels`` channels: gray repeats, RGB -> luminance (ITU-R 601, as Pillow's L)."""
    if image.shape[-3] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-3)
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(3, 1, 1)
    return np.rint((image.astype(np.float32) * weights).sum(axis=-3, keepdims=True)).astype(np.uint8)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """(C, H, W) uint8 -> (C, size, size), bilinear (Pillow); the aspect ratio is not kept."""
    from PIL import Image

    if image.shape[1:] == (size, size):
        return image
    planes = [np.asarray(Image.fromarray(plane).resize((size, size), Image.Resampling.BILINEAR)) for plane in image]
    return np.stack(planes)


def _examples(groups: dict, names: list[str] | None) -> str:
    parts = []
    for key, members in list(groups.items())[:4]:
        shown = ", ".join(names[i] if names else f"#{i}" for i in members[:2])
        parts.append(f"{key}: {len(members)} (e.g. {shown})")
    return "; ".join(parts)


def standardize(raw: RawImages, channels: int | None, image_size: int | None) -> np.ndarray:
    """One uint8 (N, C, H, W) array, converted/resized as asked; mixed shapes without a flag are an error."""
    uniform = isinstance(raw.images, np.ndarray)
    if uniform and (channels is None or raw.images.shape[1] == channels) and (
            image_size is None or raw.images.shape[2:] == (image_size, image_size)):
        return raw.images
    images = list(raw.images)
    if channels is None:
        by_channels: dict[str, list[int]] = {}
        for index, image in enumerate(images):
            by_channels.setdefault("grayscale" if image.shape[0] == 1 else "RGB", []).append(index)
        if len(by_channels) > 1:
            raise BadInputError(f"{raw.origin}: images mix grayscale and RGB ({_examples(by_channels, raw.names)}); "
                                "pass --channels 1 or --channels 3 to convert them all")
    if image_size is None:
        by_size: dict[str, list[int]] = {}
        for index, image in enumerate(images):
            by_size.setdefault(f"{image.shape[2]}x{image.shape[1]}", []).append(index)
        if len(by_size) > 1:
            raise BadInputError(f"{raw.origin}: images have {len(by_size)} different sizes (width x height: "
                                f"{_examples(by_size, raw.names)}); pass --image-size N to resize them all to NxN")
    out = []
    for image in images:
        if channels is not None:
            image = convert_channels(image, channels)
        if image_size is not None:
            image = resize(image, image_size)
        out.append(image)
    return np.stack(out)
