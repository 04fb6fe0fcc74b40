"""Deterministic stratified train/validation/test split and the data fingerprint."""

from __future__ import annotations

import hashlib
import json

import numpy as np

SPLITS = ("train", "validation", "test")


def fingerprint(texts: list[str], labels: list[str]) -> str:
    """A digest of the cleaned (text, label) rows in order: same data, same fingerprint."""
    digest = hashlib.sha256()
    for text, label in zip(texts, labels):
        digest.update(json.dumps([text, label], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return f"sha256:{digest.hexdigest()}"


def stratified_split(
    labels: list[str], validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Per class: shuffle with ``seed``, then take test, validation, and the rest for training.

    Classes too small to give every split a member stay entirely in training.
    """
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    splits: dict[str, list[int]] = {name: [] for name in SPLITS}
    for label in sorted(by_class):
        members = np.array(by_class[label])
        rng.shuffle(members)
        n_test = int(round(len(members) * test_fraction))
        n_validation = int(round(len(members) * validation_fraction))
        if len(members) - n_test - n_validation < 1:
            n_test = n_validation = 0
        splits["test"].extend(members[:n_test].tolist())
        splits["validation"].extend(members[n_test : n_test + n_validation].tolist())
        splits["train"].extend(members[n_test + n_validation :].tolist())
    return {name: sorted(indices) for name, indices in splits.items()}


def stratified_sample(labels: list[str], size: int, seed: int) -> list[int]:
    """Indices of a class-proportional sample of ``size`` rows (kept in original order)."""
    if size >= len(labels):
        return list(range(len(labels)))
    rng = np.random.default_rng(seed + 7919)  # a different stream from the split's
    fraction = size / len(labels)
    chosen: list[int] = []
    by_class: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    for label in sorted(by_class):
        members = np.array(by_class[label])
        rng.shuffle(members)
        chosen.extend(members[: max(1, int(round(len(members) * fraction)))].tolist())
    return sorted(chosen)


def rows_needed_per_class(validation_fraction: float, test_fraction: float) -> int:
    """The smallest class :func:`stratified_split` gives a member in every held-out split (and training)."""
    for size in range(1, 10_000):
        test, validation = int(round(size * test_fraction)), int(round(size * validation_fraction))
        if (test >= 1 or test_fraction == 0) and (validation >= 1 or validation_fraction == 0) \
                and size - test - validation >= 1:
            return size
    return 10_000


def check_held_out(labels: list[str], splits: dict[str, list[int]], validation_fraction: float,
                   test_fraction: float, origin: str) -> None:
    """A held-out split asked for but left empty (every class too small) is an error that says what is needed."""
    from collections import Counter

    from fmkit.errors import BadInputError

    wanted = {"validation": validation_fraction, "test": test_fraction}
    empty = [name for name, fraction in wanted.items() if fraction > 0 and not splits[name]]
    if not empty:
        return
    sizes = Counter(labels)
    needed = rows_needed_per_class(validation_fraction, test_fraction)
    smallest = sorted(sizes.items(), key=lambda item: (item[1], item[0]))[:3]
    examples = ", ".join(f"{label!r}: {count}" for label, count in smallest)
    raise BadInputError(
        f"{origin}: too few rows per class for the stratified split: {len(sizes)} classes with "
        f"{min(sizes.values())}-{max(sizes.values())} rows each (e.g. {examples}), but with "
        f"validation_fraction={validation_fraction:g} and test_fraction={test_fraction:g} a class needs at least "
        f"{needed} rows to reach every held-out split, so the {' and '.join(empty)} "
        f"split{'s' if len(empty) > 1 else ''} would be empty. Add rows (at least {needed} per class), merge rare "
        "classes into broader labels, or raise --validation-fraction/--test-fraction"
    )
