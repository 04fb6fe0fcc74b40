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
