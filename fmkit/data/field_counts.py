"""Every row of a CSV/TSV file must have as many fields as its header.

pandas does not check this where it matters most: extra fields on the first data row silently
become an index (the values shift one column: texts become labels), and short rows are padded
with empty strings. One pass of the C-implemented ``csv`` module counts the fields of every
record (quoted commas and newlines included) at roughly 100 MB/s; locating the bad lines is a
second pass that only runs when a count is wrong.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import io
import lzma
import sys
import zipfile
from collections import Counter
from pathlib import Path

from fmkit.errors import BadInputError

SHOWN_BAD_ROWS = 3  # the first few bad lines are named; the rest are counted


@contextlib.contextmanager
def _open_text(path: Path):
    """The decompressed text of ``path`` (the compressions pandas infers from the suffix)."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        handle = gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    elif suffix == ".bz2":
        handle = bz2.open(path, "rt", encoding="utf-8-sig", newline="")
    elif suffix == ".xz":
        handle = lzma.open(path, "rt", encoding="utf-8-sig", newline="")
    elif suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [name for name in archive.namelist() if not name.endswith("/")]
            if len(members) != 1:
                raise BadInputError(f"{path}: a .zip data file must hold exactly one file; it holds {len(members)}")
            with archive.open(members[0]) as raw:
                yield io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        return
    else:
        handle = open(path, encoding="utf-8-sig", newline="")  # -sig: pandas skips a byte-order mark too
    with handle:
        yield handle


@contextlib.contextmanager
def _unlimited_fields():
    """csv refuses fields over 128 KiB by default; pandas does not, so neither may the check."""
    previous = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _is_blank(row: list[str]) -> bool:
    # pandas skips empty and whitespace-only lines (skip_blank_lines); count them as no row
    return not row or (len(row) == 1 and not row[0].strip())


def check_field_counts(path: Path, delimiter: str) -> None:
    """Raise :class:`BadInputError` naming the first rows whose field count differs from the header's."""
    path = Path(path)
    with _unlimited_fields(), _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next((row for row in reader if not _is_blank(row)), None)
            if header is None:
                return  # no header at all: pandas' own error says so
            counts = Counter(map(len, reader))
        except csv.Error as error:
            raise BadInputError(f"{path}, line {reader.line_num}: unreadable ({error}); fix the quoting there"
                                ) from None
        except UnicodeDecodeError as error:
            raise BadInputError(f"{path}: not valid UTF-8 ({error}); re-save the file as UTF-8") from None
    expected = len(header)
    allowed = {expected, 0} if expected != 1 else {1, 0}
    if set(counts) <= allowed and (expected == 1 or 1 not in counts):
        return
    _raise_for_bad_rows(path, delimiter, header)


def _raise_for_bad_rows(path: Path, delimiter: str, header: list[str]) -> None:
    expected = len(header)
    bad: list[tuple[int, int, int]] = []  # (first line of the record, its last line, fields)
    total = 0
    with _unlimited_fields(), _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header_seen = False
        previous_line = 0
        for row in reader:
            first_line, previous_line = previous_line + 1, reader.line_num
            if _is_blank(row):
                continue
            if not header_seen:
                header_seen, header_line = True, first_line
                continue
            if len(row) != expected:
                total += 1
                if len(bad) < SHOWN_BAD_ROWS:
                    bad.append((first_line, reader.line_num, len(row)))
    if not bad:
        return
    name = "TSV" if delimiter == "\t" else "CSV"
    columns = ", ".join(repr(c) for c in header[:8]) + (", ..." if expected > 8 else "")
    shown = ", ".join(f"line {first} has {fields} field{'s' if fields != 1 else ''}"
                      + (f" (its quoted value runs on to line {last}: an unclosed quote?)" if last > first else "")
                      for first, last, fields in bad)
    more = f" ({total - len(bad)} more row(s) like these)" if total > len(bad) else ""
    separator = "a tab" if delimiter == "\t" else "a comma"
    raise BadInputError(
        f"{path}: {shown}{more}, but the header (line {header_line}) has {expected} ({columns}). Every row "
        f"needs exactly one value per column: quote values that contain {separator} (\"like, this\"), or fix the "
        f"header. Nothing was read from this malformed {name}"
    )
