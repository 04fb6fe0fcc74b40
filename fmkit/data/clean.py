"""Text cleaning: Unicode NFKC, collapsed whitespace, empty and duplicate texts dropped and counted."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from decimal import Decimal

_WHITESPACE = re.compile(r"\s+")
# a plain decimal number; the exponent is capped so that writing it out in full stays short
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,2})?")


def normalize_text(text: str) -> str:
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


@dataclass
class CleaningReport:
    rows_read: int = 0
    empty_dropped: int = 0
    duplicates_dropped: int = 0  # same text, same label: keep the first
    conflicting_dropped: int = 0  # same text with different labels: all copies dropped
    missing_label_dropped: int = 0
    rows_kept: int = 0
    # labels that are one number written several ways: canonical class -> {spelling as read: rows}
    merged_labels: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def plain_number(spelling: str) -> str:
    """``"1.0"``, ``"01"``, ``"+1"``, ``"1e0"`` -> ``"1"``; ``"0.50"`` -> ``"0.5"``."""
    number = Decimal(spelling)
    return "0" if number == 0 else format(number.normalize(), "f")


def merge_numeric_spellings(labels: list[str]) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Labels that are the same number written differently become one class, spelled :func:`plain_number`.

    ``1`` and ``1.0`` in one label column are one class typed two ways (a spreadsheet export, a
    float column with a missing value), never two classes. A number written only one way keeps
    its spelling. Returns the labels and, per merged class, how many rows had each spelling.
    """
    spellings: dict[str, set[str]] = {}
    for label in set(labels):
        if _NUMBER.fullmatch(label):
            spellings.setdefault(plain_number(label), set()).add(label)
    rename = {s: canonical for canonical, group in spellings.items() if len(group) > 1 for s in group}
    if not rename:
        return labels, {}
    merged: dict[str, dict[str, int]] = {}
    for label in labels:
        if label in rename:
            counts = merged.setdefault(rename[label], {})
            counts[label] = counts.get(label, 0) + 1
    return [rename.get(label, label) for label in labels], merged


def clean_records(texts: list[str], labels: list[str]) -> tuple[list[str], list[str], CleaningReport]:
    _, kept_texts, kept_labels, report = clean_rows(texts, labels)
    return kept_texts, kept_labels, report


def clean_rows(
    texts: list[str], labels: list[str], drop_duplicates: bool = True
) -> tuple[list[int], list[str], list[str], CleaningReport]:
    """Like :func:`clean_records`, plus the original row index of every kept row (to carry side columns).

    ``drop_duplicates=False`` keeps repeated texts, also with different labels: right for tabular records
    written as text, where two identical rows are two different people.
    """
    report = CleaningReport(rows_read=len(texts))
    rows: list[tuple[int, str, str]] = []
    for index, (raw_text, raw_label) in enumerate(zip(texts, labels)):
        text, label = normalize_text(raw_text), normalize_text(raw_label)
        if not text:
            report.empty_dropped += 1
        elif not label:
            report.missing_label_dropped += 1
        else:
            rows.append((index, text, label))
    # before the duplicate check: "good film" labelled 1 and 1.0 is one label, not a conflict
    merged_labels, report.merged_labels = merge_numeric_spellings([label for _, _, label in rows])
    rows = [(index, text, label) for (index, text, _), label in zip(rows, merged_labels)]
    labels_of: dict[str, set[str]] = {}
    for _, text, label in rows:
        labels_of.setdefault(text, set()).add(label)
    seen: set[str] = set()
    kept: list[tuple[int, str, str]] = []
    for index, text, label in rows:
        if not drop_duplicates:
            kept.append((index, text, label))
        elif len(labels_of[text]) > 1:
            report.conflicting_dropped += 1  # the same text labelled two ways teaches nothing
        elif text in seen:
            report.duplicates_dropped += 1
        else:
            seen.add(text)
            kept.append((index, text, label))
    report.rows_kept = len(kept)
    return [i for i, _, _ in kept], [t for _, t, _ in kept], [l for _, _, l in kept], report
