"""Topics of a text: few-shot from a topics file (examples per topic, scored by the text-retrieval
encoder) or a topic classifier bundle; several topics per text, "other" when none clears the threshold.

A topics file (YAML or JSON) maps each topic to a few example texts::

    rates: ["Bank of England holds interest rates", "Fed cuts rates to near zero"]
    oil: ["Oil price slumps as demand collapses"]

A text's score for a topic is the cosine between its embedding and the mean of the topic's example
embeddings (normalized); every topic at or above the threshold is assigned. Without topics every
text is in the one topic ``all``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError

OTHER = "other"
ALL = "all"
DEFAULT_TOPICS_FILE = Path(__file__).parent / "data" / "finance_topics.yaml"
DEFAULT_ENCODER = "minilm"
# cosine to a topic's centroid; the best of 0.30-0.55 on the gold train rows (docs/monitor_gold.md)
DEFAULT_EXAMPLE_THRESHOLD = 0.40
# the same, for the sentiment bundle's own encoder (topic_encoder "sentiment", shared_encoder.py): its
# fine-tuned embedding space puts every headline close to every centroid; 0.90 was the best of 0.30-0.90 on
# the gold train rows (micro-F1 0.317, 2026-12-03, bench/monitor_models.py; docs/monitor_gold.md)
SHARED_THRESHOLD = 0.90
# the same, for a sentiment student whose embedding was distilled to MiniLM's (distill embedding_teacher, weight 1,
# 3 layers): cosine 0.71 to MiniLM on its validation rows, so MiniLM's 0.40 does not carry over; 0.70 was the best of
# 0.30-0.90 on the gold train rows (test micro-F1 0.399, 2026-12-03, bench/monitor_models.py; docs/monitor_gold.md)
ANCHORED_THRESHOLD = 0.70
DEFAULT_BUNDLE_THRESHOLD = 0.5    # a classifier's probability


def read_topics_file(path: Path) -> dict[str, list[str]]:
    """{topic: [example texts]} from YAML/JSON; every problem (empty topic, non-text example) at once."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"--topics {path}: no such file; pass a YAML/JSON topics file (topic -> example texts), "
                            "a topic classifier bundle, or 'default'")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise BadInputError(f"--topics {path}: cannot be read ({error})") from None
    except Exception as error:  # yaml.YAMLError: a syntax error in the file
        raise BadInputError(f"--topics {path}: not valid YAML ({error})") from None
    if not isinstance(raw, dict) or not raw:
        raise BadInputError(f"--topics {path}: expected a mapping topic -> list of example texts, got "
                            f"{type(raw).__name__}")
    problems, topics = [], {}
    for topic, examples in raw.items():
        name = str(topic).strip()
        if isinstance(examples, str):
            examples = [examples]
        if not name or name in (OTHER, ALL):
            problems.append(f"topic {topic!r}: the names '', {OTHER!r} and {ALL!r} are reserved")
        if not isinstance(examples, list) or not [e for e in examples if isinstance(e, str) and e.strip()]:
            problems.append(f"topic {name!r} has no example texts; give it at least one (a few headlines)")
            continue
        if any(not isinstance(e, str) or not e.strip() for e in examples):
            problems.append(f"topic {name!r}: every example must be a non-empty text")
        topics[name] = [e.strip() for e in examples if isinstance(e, str) and e.strip()]
    if problems:
        raise BadInputError(f"--topics {path}: " + "; ".join(problems))
    return topics


class AllTopics:
    """No topics given: every text is in ``all``."""

    threshold = None

    def assign(self, texts: list[str]) -> list[tuple[str, ...]]:
        return [(ALL,)] * len(texts)

    def describe(self) -> dict:
        return {"kind": "all", "topics": [ALL]}


class ExampleTopics:
    """Few-shot topics: cosine of a text to each topic's example centroid, multi-label above ``threshold``."""

    def __init__(self, path: Path, *, threshold: float | None = None, encoder=DEFAULT_ENCODER, threads=None,
                 precision: str = "fp32", default_threshold: float = DEFAULT_EXAMPLE_THRESHOLD):
        """``encoder``: a name or folder for fmkit.runtime.embeddings.load_encoder, or an opened encoder (anything
        with ``encode(texts) -> unit vectors``, ``name``, ``digest``, ``runtime``: the INT8 topic encoder of
        topic_encoder.py, or the sentiment bundle's own of shared_encoder.py)."""
        self.path = Path(path)
        self.examples = read_topics_file(self.path)
        self.names = list(self.examples)
        self.threshold = float(default_threshold) if threshold is None else float(threshold)
        if isinstance(encoder, (str, Path)):
            from fmkit.runtime.embeddings import load_encoder

            encoder = load_encoder(str(encoder), threads=threads, precision=precision)  # bf16: AVX-512 BF16 CPUs
        self.encoder = encoder
        centroids = []
        for name in self.names:
            vectors = self.encoder.encode(self.examples[name])
            centroid = vectors.mean(axis=0)
            centroids.append(centroid / max(float(np.linalg.norm(centroid)), 1e-12))
        self.centroids = np.stack(centroids).astype(np.float32)

    def similarities(self, texts: list[str]) -> np.ndarray:
        """(texts, topics) cosine similarities."""
        return self.vector_similarities(self.encoder.encode(list(texts)))

    def vector_similarities(self, vectors: np.ndarray) -> np.ndarray:
        """(texts, topics) cosines of embeddings the caller already has (the shared sentiment forward's)."""
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors @ self.centroids.T

    def assign(self, texts: list[str], similarities: np.ndarray | None = None) -> list[tuple[str, ...]]:
        scores = self.similarities(texts) if similarities is None else similarities
        names, above = self.names, scores >= self.threshold
        return [tuple(names[j] for j in np.flatnonzero(row)) or (OTHER,) for row in above]

    def assign_vectors(self, vectors: np.ndarray) -> list[tuple[str, ...]]:
        return self.assign([], self.vector_similarities(vectors))

    def describe(self) -> dict:
        return {"kind": "examples", "file": str(self.path), "topics": self.names, "threshold": self.threshold,
                "encoder": self.encoder.name, "encoder_digest": self.encoder.digest, "runtime": self.encoder.runtime,
                "precision": getattr(self.encoder, "precision", None)}


class BundleTopics:
    """A topic classifier bundle (``fmkit finetune`` on labelled topics): every label whose probability
    is at least ``threshold``; "other" when none is (or when the bundle's own label is "other")."""

    def __init__(self, path: Path, *, threshold: float | None = None, threads=None):
        import fmkit

        self.path = Path(path)
        self.model = fmkit.load(self.path, **({"threads": threads} if threads else {}))
        self.names = list(self.model.labels)
        self.threshold = DEFAULT_BUNDLE_THRESHOLD if threshold is None else float(threshold)

    def assign(self, texts: list[str]) -> list[tuple[str, ...]]:
        probabilities = np.asarray(self.model.predict_proba(list(texts)))
        out = []
        for row in probabilities:
            chosen = tuple(self.names[j] for j in np.flatnonzero(row >= self.threshold) if self.names[j] != OTHER)
            out.append(chosen or (OTHER,))
        return out

    def describe(self) -> dict:
        manifest = self.model.manifest
        return {"kind": "bundle", "bundle": str(self.path), "digest": manifest.content_digest, "topics": self.names,
                "threshold": self.threshold, "runtime": manifest.runtime}


def load_topics(topics: str | None, *, threshold: float | None = None, threads=None, precision: str = "fp32",
                encoder=DEFAULT_ENCODER, default_threshold: float = DEFAULT_EXAMPLE_THRESHOLD):
    """None -> ``all``; "default" -> the shipped finance topics; a YAML/JSON file; or a classifier bundle.

    ``encoder``: the few-shot topics' encoder, a name/folder (load_encoder) or an opened encoder (the scorer
    passes the INT8 topic encoder or the sentiment bundle's shared one); ``default_threshold``: that
    encoder's cosine threshold when ``threshold`` is None.
    """
    if topics is None or str(topics).strip() == "":
        return AllTopics()
    options = {"threshold": threshold, "threads": threads, "precision": precision, "encoder": encoder,
               "default_threshold": default_threshold}
    if str(topics) == "default":
        return ExampleTopics(DEFAULT_TOPICS_FILE, **options)
    path = Path(str(topics)).expanduser()
    if path.is_dir():
        from fmkit.bundle import is_bundle

        if not is_bundle(path):
            raise BadInputError(f"--topics {path} is a folder but not an fmkit bundle; pass a topic classifier "
                                "bundle (fmkit finetune) or a YAML/JSON topics file")
        return BundleTopics(path, threshold=threshold, threads=threads)
    return ExampleTopics(path, **options)
