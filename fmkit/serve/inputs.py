"""What a served model takes, and each request's inputs checked and encoded before they join a batch.

A text model takes ``texts`` (strings that must encode as UTF-8); an image model takes ``images``
(base64 of the file's bytes, PNG/JPEG/GIF/BMP/WebP). Images are decoded here, in memory, to
NumPy arrays at the bundle's channels and size: a request string never names a server file.
Every problem is an ``ApiError`` naming the index of the input that caused it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fmkit.serve.batcher import join_lists
from fmkit.serve.errors import ApiError

# Formats Pillow decodes in-process; never EPS/PS (Ghostscript), never the rarely used parsers.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
DATA_URL = re.compile(r"data:[\w/+.-]*;base64,")


@dataclass(frozen=True)
class InputKind:
    field: str  # the request field: "texts" or "images"
    noun: str
    join: Callable  # several requests' encoded inputs -> one model input


TEXTS = InputKind("texts", "text", join_lists)
IMAGES = InputKind("images", "image", np.concatenate)
KINDS = {kind.field: kind for kind in (TEXTS, IMAGES)}


def input_kind(runtime) -> InputKind:
    """What a loaded model takes: its task adapter's ``capabilities.serves`` ("texts" or "images")."""
    return KINDS[runtime.adapter.capabilities.serves]


def check_count(count: int, limit: int, noun: str, setting: str) -> None:
    if count > limit:
        raise ApiError(413, f"too_many_{noun}s", f"{count} {noun}s; the limit is {limit} per request", setting)


def check_texts(texts: list[str], config, limit: int, setting: str) -> list[str]:
    """Texts within the limits and encodable as UTF-8 (JSON can carry lone surrogates such as \\ud800)."""
    check_count(len(texts), limit, "text", setting)
    long = [i for i, t in enumerate(texts) if len(t) > config.max_chars]
    if long:
        raise ApiError(422, "text_too_long", f"texts {long[:5]} exceed {config.max_chars} characters", "max_chars")
    for index, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ApiError(422, "invalid_text", f"texts[{index}] is not valid Unicode: {error.reason} at character "
                           f"{error.start}; send UTF-8 text (a lone surrogate like \\ud800 is not a character)") from None
    return texts


def decode_images(images: list[str], config, runtime) -> np.ndarray:
    """Base64 image files -> uint8 (N, C, H, W) at the bundle's channels and size (CPU work: call it
    off the event loop)."""
    check_count(len(images), config.max_images, "image", "max_images")
    return np.concatenate([_fit(runtime, _decode(index, text, config), index) for index, text in enumerate(images)])


def image_digests(images: list[str]) -> list[str]:
    """What the audit log keeps of images under --log-inputs: their digests, never their pixels."""
    return [f"image sha256:{hashlib.sha256(text.encode('ascii', 'replace')).hexdigest()}" for text in images]


def _decode(index: int, text: str, config) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    name = f"images[{index}]"
    prefix = DATA_URL.match(text)
    text = text[prefix.end():] if prefix else text
    if len(text) > 4 * (config.max_image_bytes // 3 + 1):  # refuse before decoding the base64
        raise ApiError(413, "image_too_large", f"{name} is over {config.max_image_bytes} bytes", "max_image_bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_image", f"{name} is not base64: send the image file's bytes base64-encoded "
                       "(standard alphabet, with padding)") from None
    if len(data) > config.max_image_bytes:
        raise ApiError(413, "image_too_large", f"{name} is {len(data)} bytes; the limit is {config.max_image_bytes}",
                       "max_image_bytes")
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)  # reads the header only
    except Image.DecompressionBombError:
        raise ApiError(413, "image_too_large", f"{name} has too many pixels to decode safely",
                       "max_image_pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ApiError(422, "invalid_image", f"{name} is not an image this server reads; send a "
                       f"{', '.join(IMAGE_FORMATS)} file") from None
    width, height = image.size
    if width * height > config.max_image_pixels:  # checked on the header, before any pixel is decoded
        raise ApiError(413, "image_too_large", f"{name} is {width}x{height} = {width * height} pixels; the limit "
                       f"is {config.max_image_pixels}", "max_image_pixels")
    try:
        image.load()
        mode = "L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
        array = np.asarray(image.convert(mode), dtype=np.uint8)
    except Exception as error:  # Pillow raises OSError, ValueError, SyntaxError... for damaged files
        raise ApiError(422, "invalid_image", f"{name} could not be decoded ({type(error).__name__}: the file is "
                       "truncated or corrupt)") from None
    if array.ndim != 2 and array.ndim != 3 or 0 in array.shape:
        raise ApiError(422, "invalid_image", f"{name} decodes to no pixels (shape {array.shape})")
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)  # (C, H, W): unambiguous for the runtime


def _fit(runtime, image: np.ndarray, index: int) -> np.ndarray:
    from fmkit.errors import BadInputError

    try:
        return runtime.prepare(image[None])  # a (1, C, H, W) batch -> the bundle's channels and size
    except BadInputError as error:
        raise ApiError(422, "invalid_image", f"images[{index}]: {error}") from None
