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
from fmkit.errors import BadInputError

DEFAULT_BATCH = 256  # texts per micro-batch: long enough to amortize a runtime call, short enough to flush often


@dataclass(frozen=True)
class Score:
    sentiment: str                 # "negative" | "neutral" | "positive"
    value: float                   # p(positive) - p(negative), in [-1, 1]
    probs: dict = field(default_factory=dict)  # label -> probability
    topics: tuple[str, ...] = ()


class Scorer:
    """Sentiment model + topic model; ``score`` runs both on each micro-batch.

    When the topics' encoder is the sentiment bundle's own (``shared``: SharedTopicEncoder), each micro-batch
    is one forward: the sentiment probabilities and the embeddings the topics compare to their centroids.
    """

    def __init__(self, sentiment, topics, *, batch_size: int = DEFAULT_BATCH):
        self.sentiment, self.topics, self.batch_size = sentiment, topics, batch_size
        encoder = getattr(topics, "encoder", None)
        self.shared = encoder is not None and getattr(encoder, "sentiment", None) is sentiment

    def score(self, texts: list[str]) -> list[Score]:
        texts = [str(text) for text in texts]
        scores: list[Score] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            if self.shared:
                probabilities, vectors = self.sentiment.probabilities_and_embeddings(batch)
                topics = self.topics.assign_vectors(vectors)
            else:
                probabilities = self.sentiment.probabilities(batch)
                topics = self.topics.assign(batch)
            labels = probabilities.argmax(axis=1)
            for row, label, topic in zip(probabilities.tolist(), labels.tolist(), topics):
                probs = dict(zip(LABELS, row))
                value = min(1.0, max(-1.0, probs["positive"] - probs["negative"]))
                scores.append(Score(LABELS[label], value, probs, tuple(topic)))
        return scores

    def describe(self) -> dict:
        return {"sentiment": self.sentiment.describe(), "topics": self.topics.describe(),
                "batch_size": self.batch_size, "one_forward": self.shared}


def load_scorer(sentiment: str | None, topics: str | None, *, workspace: Path, threshold: float | None = None,
                log=print, batch_size: int = DEFAULT_BATCH, threads: int | None = None,
                topic_precision: str = "fp32", topic_encoder: str = "auto") -> Scorer:
    """The scorer for a monitor config (see the module docstring for what each value means).

    ``threshold``: the topic threshold (cosine for a topics file, probability for a bundle; None: the
    default of that kind and encoder). ``topic_encoder`` (few-shot topics only): "sentiment" -> the sentiment
    bundle's own encoder, one forward per text for both (an ONNX bundle); a base model name/folder (MiniLM:
    "minilm") -> that zero-shot encoder on ONNX Runtime INT8 (built once, cached in the workspace); a
    text-retrieval bundle -> its own runtime; "auto" -> the sentiment bundle's own when its embedding was
    distilled to MiniLM's (a default bundle built with ``student_layers``: ``embedding_anchor``), else "minilm".
    Sharing the encoder of a plain fine-tuned bundle is faster (632 vs 289 headlines/s in the scorer) but its
    fine-tuned space separates topics badly: topic micro-F1 0.31 against the INT8 MiniLM's 0.51 on the gold test
    rows; an anchored 3-layer student's 0.40 (docs/monitor_gold.md).
    ``topic_precision`` is the PyTorch encoder's (fp32, bf16, auto), for a bundle on PyTorch.
    """
    from fmkit.apps.monitor.topics import DEFAULT_ENCODER, load_topics

    started = time.perf_counter()
    few_shot = topics is not None and str(topics).strip() != "" and not Path(str(topics)).expanduser().is_dir()
    if sentiment is None or str(sentiment) == "default":
        from fmkit.apps.monitor.sentiment import default_sentiment_bundle

        path = default_sentiment_bundle(Path(workspace), log=log)
    elif str(sentiment) == "lexicon":
        path = None
    else:
        path = Path(str(sentiment)).expanduser()
    anchor = embedding_anchor(path) if path is not None and few_shot else None
    share = few_shot and (topic_encoder == SHARED or (topic_encoder == "auto" and anchor == DEFAULT_ENCODER))  # a
    # bundle that is not ONNX is refused by EmbeddingOnnxRuntime
    if share and anchor is not None:
        log(f"scorer: {path}'s sentence embedding was distilled to {anchor}'s: the topics share its forward")
    if path is None:
        from fmkit.apps.monitor.lexicon import LexiconSentiment

        if topic_encoder == SHARED:
            raise BadInputError("topic_encoder=sentiment needs a sentiment bundle; the lexicon has no encoder")
        model = LexiconSentiment()
    else:
        from fmkit.apps.monitor.sentiment import BundleSentiment

        model = BundleSentiment(path, threads=threads, share_encoder=share)
    encoder, default_threshold = None, None
    if share:
        from fmkit.apps.monitor.topics import ANCHORED_THRESHOLD, SHARED_THRESHOLD

        # an embedding distilled to MiniLM's and a plain fine-tuned one spread their similarities differently
        encoder = model.topic_encoder()
        default_threshold = ANCHORED_THRESHOLD if anchor is not None else SHARED_THRESHOLD
    elif few_shot:
        encoder = DEFAULT_ENCODER if topic_encoder == "auto" else topic_encoder
        if not Path(str(encoder)).expanduser().is_dir() or not _is_bundle(Path(str(encoder)).expanduser()):
            from fmkit.apps.monitor.topic_encoder import int8_topic_encoder

            encoder = int8_topic_encoder(str(encoder), Path(workspace), threads=threads, log=log)
    options = {"encoder": encoder} if encoder is not None else {}
    if default_threshold is not None:
        options["default_threshold"] = default_threshold
    topic_model = load_topics(topics, threshold=threshold, threads=threads, precision=topic_precision, **options)
    scorer = Scorer(model, topic_model, batch_size=batch_size)
    described = scorer.describe()
    log(f"scorer: sentiment {described['sentiment'].get('bundle') or described['sentiment'].get('name')} "
        f"({described['sentiment']['runtime']}), topics {described['topics']['kind']} "
        f"({len(described['topics']['topics'])}{', sharing the sentiment encoder: one forward' if scorer.shared else ''})"
        f", ready in {time.perf_counter() - started:.1f} s")
    return scorer


SHARED = "sentiment"  # topic_encoder: the sentiment bundle's own encoder


def embedding_anchor(path: Path) -> str | None:
    """The encoder whose embedding space the ONNX bundle ``path``'s sentence embedding was distilled to (distill's
    ``embedding_teacher``): what it can stand in for. None for any other bundle, or a path that is not one."""
    from fmkit.bundle import read_manifest
    from fmkit.compress.methods.distill import embedding_anchor_of

    if not _is_bundle(path):
        return None
    manifest = read_manifest(path)
    return embedding_anchor_of(manifest) if manifest.runtime == "onnx" else None


def _is_bundle(path: Path) -> bool:
    from fmkit.bundle import is_bundle

    return is_bundle(path)
