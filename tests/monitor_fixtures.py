"""Fixtures for the monitor's engine and store tests: synthetic dated headlines and a tiny 3-class sentiment bundle.

The tiny BERT of conftest.py (2 layers, hidden 32) is fine-tuned through fmkit's finetune stage on
headlines whose tone is set by one word (a NEGATIVE word, a POSITIVE word, or none = neutral), so the
monitor's real scorer runs on a real bundle in milliseconds.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import FILLER, NEGATIVE, POSITIVE, write_csv

LABELS = ("negative", "neutral", "positive")
FINANCE_NEGATIVE = ["losses", "decline", "bankruptcy", "weak"]  # Loughran-McDonald negative words
FINANCE_POSITIVE = ["gain", "improve", "strong", "profitable"]


def headline(tone: str, rng: random.Random, index: int) -> str:
    words = rng.sample(FILLER, 4)
    if tone != "neutral":  # a review word the tiny bundle learns and a finance word the LM lexicon knows
        words.append(rng.choice(NEGATIVE if tone == "negative" else POSITIVE))
        words.append(rng.choice(FINANCE_NEGATIVE if tone == "negative" else FINANCE_POSITIVE))
    rng.shuffle(words)
    return " ".join(words) + f" {index}"


def make_events(count: int, *, seed: int = 0, start: str = "2020-01-01", days: int = 30, negative: float = 0.2,
                prefix: str = "e") -> list[dict]:
    """``count`` events spread over ``days`` days, about ``negative`` of them negative, ids ``prefix0..``."""
    rng = random.Random(seed)
    first = datetime.fromisoformat(start).replace(tzinfo=timezone.utc)
    events = []
    for index in range(count):
        draw = rng.random()
        tone = "negative" if draw < negative else ("positive" if draw < negative + 0.3 else "neutral")
        moment = first + timedelta(seconds=int(index * days * 86_400 / count))
        events.append({"id": f"{prefix}{index}", "time": moment.isoformat().replace("+00:00", "Z"),
                       "text": headline(tone, rng, index), "tone": tone})
    return events


def write_jsonl(path: Path, records: list, *, mode: str = "w") -> Path:
    with open(path, mode, encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


@pytest.fixture(scope="session")
def sentiment_bundle(tiny_bert_dir, tmp_path_factory) -> Path:
    """The tiny BERT fine-tuned on 3-class synthetic headlines (labels negative/neutral/positive)."""
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    rng = random.Random(1)
    rows = [(headline(tone, rng, index), tone) for index in range(450) for tone in (LABELS[index % 3],)]
    data = write_csv(tmp_path_factory.mktemp("monitor-data") / "headlines.csv", rows)
    out = tmp_path_factory.mktemp("monitor-bundle") / "sentiment"
    run_finetune(FinetuneConfig(model=str(tiny_bert_dir), data={"source": str(data)},
                                train={"epochs": 3, "batch_size": 16, "learning_rate": 5e-3, "progress": False,
                                       "precision": "fp32"}), out, echo=lambda *_: None)
    return out
