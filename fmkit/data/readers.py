"""Read a table from disk with errors that name the file, the line and the fix."""

from __future__ import annotations

import json
from pathlib import Path

from fmkit.data.field_counts import check_field_counts
from fmkit.errors import BadInputError

SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                  ".parquet": "parquet", ".pq": "parquet"}


def detect_format(path: Path, format: str) -> str:
    if format != "auto":
        return format
    suffixes = [s for s in path.suffixes if s not in (".gz", ".bz2", ".xz", ".zip")]
    fmt = SUFFIX_FORMATS.get(suffixes[-1].lower() if suffixes else "")
    if fmt is None:
        raise BadInputError(
            f"{path}: cannot tell the format from the suffix {''.join(path.suffixes) or '(none)'}; "
            "use .csv, .tsv, .jsonl or .parquet, or pass --format"
        )
    return fmt


def decode_utf8(raw: bytes, name: str | Path) -> str:
    """``raw`` as text; the first non-UTF-8 byte is reported with its line, column and byte offset."""
    try:
        return raw.decode("utf-8")[1 if raw.startswith(b"\xef\xbb\xbf") else 0:]  # drop a byte-order mark
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        shown = Path(str(name)) if str(name) != "stdin" else Path("in.txt")
        converted = shown.with_name(f"{shown.stem}.utf8{shown.suffix}")
        raise BadInputError(
            f"{name}, line {line}, column {column}: byte 0x{raw[error.start]:02x} is not valid UTF-8 (byte offset "
            f"{error.start}). Re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 {shown} > {converted}`)"
        ) from None


def check_utf8(path: Path) -> None:
    """Find the first non-UTF-8 byte and report its line and column."""
    decode_utf8(path.read_bytes(), path)


def read_table(path: Path, format: str = "auto", columns: tuple[str, ...] | list[str] = ()):
    """A table of strings (CSV/TSV) or plain values (JSONL/Parquet); ``columns``: JSONL rows must have them."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise BadInputError(f"data file {path} does not exist; check the path (relative to {Path.cwd()})")
    if path.is_dir():
        raise BadInputError(f"data path {path} is a directory; pass a CSV, TSV, JSONL or Parquet file")
    fmt = detect_format(path, format)
    if path.stat().st_size == 0:
        raise BadInputError(f"data file {path} is empty; it needs a header row and labelled rows")
    if fmt == "parquet":
        try:
            # integer columns with nulls stay integers (1, not 1.0), so labels keep their spelling
            return pd.read_parquet(path, to_pandas_kwargs={"integer_object_nulls": True})
        except Exception as error:  # pyarrow raises several types for a bad file
            raise BadInputError(f"{path}: not a readable Parquet file ({error})") from None
    if fmt == "jsonl":
        return _read_jsonl(path, columns)  # decodes the bytes itself, naming a bad one
    if path.suffix not in (".gz", ".bz2", ".xz", ".zip"):
        check_utf8(path)
    check_field_counts(path, "\t" if fmt == "tsv" else ",")
    try:
        return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise BadInputError(f"data file {path} has no rows or header; it needs a header row") from None
    except pd.errors.ParserError as error:
        raise BadInputError(f"{path}: malformed {fmt.upper()} ({error}); fix the quoting on that line") from None
    except UnicodeDecodeError as error:
        raise BadInputError(f"{path}: not valid UTF-8 ({error}); re-save the file as UTF-8") from None


def iter_jsonl(path: Path):
    """(line number, value) for every non-blank line; a bad line is named with its column."""
    text = decode_utf8(Path(path).read_bytes(), path)  # not valid UTF-8: the byte is named, not a traceback
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: JSON may hold U+2028
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise BadInputError(
                f"{path}, line {number}, column {error.colno}: invalid JSON ({error.msg}); "
                "each line must be one JSON value"
            ) from None


def _read_jsonl(path: Path, columns: tuple[str, ...] | list[str] = ()):
    import pandas as pd

    records, numbers = [], []
    for number, record in iter_jsonl(path):
        if not isinstance(record, dict):
            raise BadInputError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__} "
                                f"({json.dumps(record)[:60]}); each line must be one object like "
                                '{"text": ..., "label": ...}')
        records.append(record)
        numbers.append(number)
    if not records:
        raise BadInputError(f"data file {path} has no records; each line must be one JSON object")
    _check_jsonl_columns(path, records, numbers, columns)
    # object dtype: a column of ints with a missing value would otherwise become floats (1 -> "1.0")
    return pd.DataFrame(records, dtype=object)


def _check_jsonl_columns(path: Path, records: list[dict], numbers: list[int], columns) -> None:
    """A column some objects have and others lack is a malformed row (one no object has: the caller's error)."""
    present = {key for record in records for key in record}
    for column in (c for c in columns if c in present):
        lacking = [number for number, record in zip(numbers, records) if column not in record]
        if lacking:
            shown = ", ".join(map(str, lacking[:5])) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
            raise BadInputError(f"{path}, line {shown}: no field {column!r} (other lines have it); every object "
                                f"needs it (use null for a missing value, and the row is dropped)")


def column_as_text(frame, column: str, origin: str) -> list[str]:
    """One string per row: missing values become "", numbers their plain spelling; lists are refused."""
    import numpy as np
    import pandas as pd

    texts = []
    for row, value in enumerate(frame[column].tolist()):
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, (list, tuple, set, dict, np.ndarray, bytes, bytearray)):
            kind = {dict: "objects (dicts)", bytes: "bytes", bytearray: "bytes"}.get(type(value), "lists")
            shown = value.tolist() if isinstance(value, np.ndarray) else value
            raise BadInputError(
                f"{origin}: column {column!r} holds {kind} (row {row + 1}: {shown!r:.80}), not one value per row; "
                "a text or label column needs a string or number in each row. Flatten it first (one label per "
                "row, or join the list into one string)" + (", or decode the bytes as UTF-8" if kind == "bytes" else "")
            )
        elif value is None or pd.isna(value):
            texts.append("")
        else:
            texts.append(str(value))
    return texts
