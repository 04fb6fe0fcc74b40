"""Robustness: does the prediction survive noise a real user adds (typos, casing, punctuation, spacing)?

Each perturbation is a seeded function registered by name; the audit reports per perturbation the
stability rate (share of predictions unchanged), accuracy on the perturbed texts next to the clean
accuracy, and the mean absolute change of the predicted label's probability.
"""

from __future__ import annotations

import random
import re
import string
from typing import Callable

import numpy as np

from fmkit.registry import Registry

PERTURBATIONS: Registry[Callable[[str, random.Random], str]] = Registry("perturbation")


@PERTURBATIONS.register("typos")
def typos(text: str, rng: random.Random, rate: float = 0.15) -> str:
    """Swap two inner letters of ~15% of the words longer than three letters (keyboard slips)."""
    words = text.split(" ")
    for index, word in enumerate(words):
        if len(word) > 3 and word.isalpha() and rng.random() < rate:
            position = rng.randrange(1, len(word) - 2)
            words[index] = word[:position] + word[position + 1] + word[position] + word[position + 2:]
    return " ".join(words)


@PERTURBATIONS.register("lowercase")
def lowercase(text: str, rng: random.Random) -> str:
    return text.lower()


@PERTURBATIONS.register("uppercase")
def uppercase(text: str, rng: random.Random) -> str:
    return text.upper()


@PERTURBATIONS.register("no-punctuation")
def no_punctuation(text: str, rng: random.Random) -> str:
    stripped = text.translate(str.maketrans("", "", string.punctuation))
    return re.sub(r"\s+", " ", stripped).strip() or text


@PERTURBATIONS.register("extra-whitespace")
def extra_whitespace(text: str, rng: random.Random) -> str:
    return "  " + "".join(c + (" " * rng.randint(1, 2) if c == " " else "") for c in text) + " \t"


def robustness_audit(predict_proba, labels: list[str], texts: list[str], gold: list[str] | None = None,
                     perturbations: list[str] | None = None, seed: int = 0) -> dict:
    """Stability of ``predict_proba`` (texts -> (n, classes)) under each perturbation."""
    names = perturbations or PERTURBATIONS.names()
    clean = predict_proba(texts)
    clean_pred = clean.argmax(axis=1)
    gold_index = None if gold is None else np.array([labels.index(g) for g in gold])
    report: dict = {"texts": len(texts), "seed": seed, "perturbations": {}}
    if gold_index is not None:
        report["clean_accuracy"] = float((clean_pred == gold_index).mean())
    stabilities = []
    for name in names:
        function = PERTURBATIONS.get(name)
        rng = random.Random(f"{seed}:{name}")
        noisy = predict_proba([function(text, rng) for text in texts])
        noisy_pred = noisy.argmax(axis=1)
        rows = np.arange(len(texts))
        entry = {"stability_rate": float((noisy_pred == clean_pred).mean()),
                 "mean_absolute_shift": float(np.abs(noisy[rows, clean_pred] - clean[rows, clean_pred]).mean())}
        if gold_index is not None:
            entry["accuracy"] = float((noisy_pred == gold_index).mean())
        report["perturbations"][name] = entry
        stabilities.append(entry["stability_rate"])
    report["min_stability_rate"] = float(min(stabilities))
    return report
