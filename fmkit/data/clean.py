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
    report = CleaningReport(rows_read=len(texts))
    rows: list[tuple[str, str]] = []
    for raw_text, raw_label in zip(texts, labels):
        text, label = normalize_text(raw_text), normalize_text(raw_label)
        if not text:
            report.empty_dropped += 1
        elif not label:
            report.missing_label_dropped += 1
        else:
            rows.append((text, label))
    labels_of: dict[str, set[str]] = {}
    for text, label in rows:
        labels_of.setdefault(text, set()).add(label)
    seen: set[str] = set()
    kept: list[tuple[str, str]] = []
    for text, label in rows:
        if len(labels_of[text]) > 1:
            report.conflicting_dropped += 1  # the same text labelled two ways teaches nothing
        elif text in seen:
            report.duplicates_dropped += 1
        else:
            seen.add(text)
            kept.append((text, label))
    report.rows_kept = len(kept)
    return [t for t, _ in kept], [l for _, l in kept], report
