"""IDX files (the MNIST format): read and write, gzip or raw, with a header that is checked.

Layout: two zero bytes, a dtype code, the number of dimensions, then one big-endian uint32 per
dimension, then the values in C order. https://yann.lecun.com/exdb/mnist/ describes it.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError

# dtype code -> big-endian NumPy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CODES = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    raw = Path(path).read_bytes()
    if raw[:2] == GZIP_MAGIC:  # by content, not by suffix: a renamed file still reads
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise BadInputError(f"{path}: gzip data is damaged ({error}); copy or reinstall the file") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """The array an IDX file holds (native byte order). Raises BadInputError on a bad header."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"IDX file {path} does not exist")
    raw = _read_bytes(path)
    fix = "the file is damaged or not an IDX file; reinstall it (Fashion-MNIST: apt-get install dataset-fashion-mnist)"
    if len(raw) < 4:
        raise BadInputError(f"{path}: {len(raw)} bytes is too short for an IDX header (4 bytes + dimensions); {fix}")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0:
        raise BadInputError(f"{path}: IDX magic number starts with 0x{zero:04x}, expected 0x0000; {fix}")
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise BadInputError(f"{path}: unknown IDX dtype code 0x{code:02x} (known: {known}); {fix}")
    if not 1 <= ndim <= 4:
        raise BadInputError(f"{path}: IDX header says {ndim} dimensions; images have 3 (N, H, W) and labels 1; {fix}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise BadInputError(f"{path}: the header needs {header} bytes for {ndim} dimensions, the file has {len(raw)}; {fix}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise BadInputError(
            f"{path}: header says shape {tuple(shape)} of {dtype.name} ({expected} bytes of data), but the file holds "
            f"{len(raw) - header} bytes after the header; {fix}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as IDX (gzip when the name ends in .gz, or when ``compress``)."""
    path = Path(path)
    array = np.asarray(array)
    code = CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise BadInputError(f"IDX cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64")
    payload = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    path.write_bytes(payload)
    return path
