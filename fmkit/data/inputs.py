"""What ``fmkit predict`` classifies: texts or image paths from the arguments, a file or stdin.

``--input`` is JSONL (one ``{"text": ...}`` object or JSON string per line), or, for a ``.txt``
file and for ``-`` (stdin), one text per line. Image bundles take one image path per line. Every
file is decoded as UTF-8 with an error that names the byte; nothing here raises a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fmkit.data.readers import decode_utf8, iter_jsonl
from fmkit.errors import BadInputError

PLAIN_LINE_SUFFIXES = (".txt", ".text", ".lst", ".list")


def _input_file(source: str) -> Path:
    path = Path(source)
    if path.is_dir():
        raise BadInputError(f"--input {path} is a directory; pass a file (JSONL, or .txt with one input per line)")
    if not path.is_file():
        raise BadInputError(f"--input {path} does not exist; check the path (relative to {Path.cwd()})")
    return path


def _plain_lines(source: str) -> list[str]:
    """Non-blank lines of a file or of stdin ('-'), decoded as UTF-8."""
    if source == "-":
        text = decode_utf8(sys.stdin.buffer.read(), "stdin")
    else:
        text = decode_utf8(_input_file(source).read_bytes(), source)
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def read_texts(arguments: list[str], source: str | None, text_field: str = "text") -> list[str]:
    """The texts to predict: the arguments, then ``source`` (JSONL, a .txt file, or '-' for stdin lines)."""
    texts = list(arguments)
    if source == "-" or (source and Path(source).suffix.lower() in PLAIN_LINE_SUFFIXES):
        texts += _plain_lines(source)
    elif source:
        path = _input_file(source)
        for number, item in iter_jsonl(path):
            if isinstance(item, dict):
                if text_field not in item:
                    raise BadInputError(f"{path}, line {number}: no field {text_field!r}; "
                                        f"fields are {sorted(item)}. Set --text-field.")
                item = item[text_field]
            if not isinstance(item, str):
                raise BadInputError(f"{path}, line {number}: the text must be a string, got "
                                    f"{type(item).__name__}; write one JSON string or object per line "
                                    "(or pass a .txt file with one text per line)")
            texts.append(item)
    if not texts:
        raise BadInputError("no texts: pass them as arguments or with --input FILE.jsonl (or FILE.txt)")
    return texts


def read_image_paths(arguments: list[str], source: str | None, bundle: str) -> list[str]:
    """Image files from the arguments and ``source`` (one path per line; '-' for stdin), each checked to exist."""
    paths = list(arguments) + (_plain_lines(source) if source else [])
    paths = [path.strip() for path in paths]
    if not paths:
        raise BadInputError(f"no images: pass image files after {bundle} (or --input FILE with one path per line)")
    for path in map(Path, paths):
        if path.is_dir():
            raise BadInputError(f"image {path} is a directory; pass image files (PNG, JPEG, ...), one per argument")
        if not path.is_file():
            raise BadInputError(f"image {path} does not exist; check the path (relative to {Path.cwd()})")
    return paths
