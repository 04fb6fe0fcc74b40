"""Text cleaning: Unicode NFKC, collapsed whitespace, empty and duplicate texts dropped and counted."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass

_WHITESPACE = re.compile(r"\s+")


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

    def as_dict(self) -> dict:
        return asdict(self)


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
