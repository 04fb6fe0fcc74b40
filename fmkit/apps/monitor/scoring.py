"""The monitor's scorer: texts -> sentiment (with a value in [-1, 1]) and topics, in micro-batches.

    scorer = load_scorer(None, "default", workspace=Path("workspace"))
    scorer.score(["Oil price crashes as demand collapses"])
    # [Score(sentiment='negative', value=-0.93, probs={...}, topics=('oil/energy',))]

``sentiment``: None -> the default financial sentiment bundle (built on first use, cached in the
workspace), "lexicon" -> the Loughran-McDonald baseline, else a sentiment bundle (its fastest
runtime: ONNX when it has one). ``topics``: None -> every text in "all", "default" -> the shipped
finance topics, a YAML/JSON topics file, or a topic classifier bundle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from fmkit.apps.monitor.lexicon import LABELS

DEFAULT_BATCH = 256  # texts per micro-batch: long enough to amortize a runtime call, short enough to flush often


@dataclass(frozen=True)
class Score:
    sentiment: str                 # "negative" | "neutral" | "positive"
    value: float                   # p(positive) - p(negative), in [-1, 1]
    probs: dict = field(default_factory=dict)  # label -> probability
    topics: tuple[str, ...] = ()


class Scorer:
    """Sentiment model + topic model; ``score`` runs both on each micro-batch."""

    def __init__(self, sentiment, topics, *, batch_size: int = DEFAULT_BATCH):
        self.sentiment, self.topics, self.batch_size = sentiment, topics, batch_size

    def score(self, texts: list[str]) -> list[Score]:
        texts = [str(text) for text in texts]
        scores: list[Score] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            probabilities = self.sentiment.probabilities(batch)
            topics = self.topics.assign(batch)
            for row, topic in zip(probabilities, topics):
                probs = {label: float(p) for label, p in zip(LABELS, row)}
                value = min(1.0, max(-1.0, probs["positive"] - probs["negative"]))
                scores.append(Score(LABELS[int(row.argmax())], value, probs, tuple(topic)))
        return scores

    def describe(self) -> dict:
        return {"sentiment": self.sentiment.describe(), "topics": self.topics.describe(),
                "batch_size": self.batch_size}


def load_scorer(sentiment: str | None, topics: str | None, *, workspace: Path, threshold: float | None = None,
                log=print, batch_size: int = DEFAULT_BATCH, threads: int | None = None,
                topic_precision: str = "fp32") -> Scorer:
    """The scorer for a monitor config (see the module docstring for what each value means).

    ``threshold``: the topic threshold (cosine for a topics file, probability for a bundle; None: the
    default of that kind). ``topic_precision``: the topic encoder's (fp32, bf16, auto).
    """
    from fmkit.apps.monitor.topics import load_topics

    started = time.perf_counter()
    if sentiment is None or str(sentiment) == "default":
        from fmkit.apps.monitor.sentiment import BundleSentiment, default_sentiment_bundle

        model = BundleSentiment(default_sentiment_bundle(Path(workspace), log=log), threads=threads)
    elif str(sentiment) == "lexicon":
        from fmkit.apps.monitor.lexicon import LexiconSentiment

        model = LexiconSentiment()
    else:
        from fmkit.apps.monitor.sentiment import BundleSentiment

        model = BundleSentiment(Path(str(sentiment)).expanduser(), threads=threads)
    topic_model = load_topics(topics, threshold=threshold, threads=threads, precision=topic_precision)
    scorer = Scorer(model, topic_model, batch_size=batch_size)
    described = scorer.describe()
    log(f"scorer: sentiment {described['sentiment'].get('bundle') or described['sentiment'].get('name')} "
        f"({described['sentiment']['runtime']}), topics {described['topics']['kind']} "
        f"({len(described['topics']['topics'])}), ready in {time.perf_counter() - started:.1f} s")
    return scorer
