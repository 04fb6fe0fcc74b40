"""Sentiment models for the monitor: a fine-tuned fmkit bundle (fastest runtime it has) and the
default financial sentiment bundle, built on first use and cached in the workspace.

No labelled financial sentiment set ships in any package, so the default bundle is trained on what
does: the Guardian headlines that are NOT in the gold set, weakly labelled by the Loughran-McDonald
lexicon (and, where it finds nothing, a short list of news verbs it lacks), plus the gold set's
``train`` rows (hand labels). The gold ``test`` half never trains it.
It is a normal bundle made by fmkit's finetune stage, then INT8-quantized by the compress stage (ONNX
Runtime); the scorer runs the INT8 variant. With ``student_layers`` (opt-in) it is first distilled into a
smaller student whose sentence embedding is kept close to the base MiniLM's (``distill`` with
``embedding_teacher: base``), so the few-shot topics read their embedding from the sentiment forward: one
small forward per headline for both, faster but with worse topics (measured in docs/monitor_gold.md).
The cache key is a digest of the data files and the settings, so a change to either builds a new bundle.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fmkit.errors import BadInputError

LABELS = ("negative", "neutral", "positive")
CACHE_FOLDER = "monitor-sentiment"
FULL, STUDENT, COMPRESSED = "full", "student", "int8"


class DefaultSentimentSettings(BaseModel):
    """How the default sentiment bundle is trained (part of its cache key)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("minilm", description="base model to fine-tune")
    max_length: int = Field(48, ge=8, description="tokens per headline (Guardian headlines are under 40)")
    epochs: int = Field(4, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    gold_train_repeats: int = Field(3, ge=0, description="times each hand-labelled gold train row is repeated "
                                                         "(hand labels outweigh the weak ones)")
    weak_rows: int | None = Field(None, ge=10, description="weakly labelled headlines used (None: all)")
    weak_neutral_rows: int | None = Field(
        400, ge=0, description="of the weak rows the lexicon calls neutral (no hits), keep this many (None: all): "
        "on the gold train half under half of them are neutral, so all 2,000 would teach 'no lexicon word = neutral'")
    news_cues: bool = Field(True, description="also weak-label by the project's short list of news verbs "
                                                "(NEWS_CUES) the finance lexicon lacks ('plunge', 'soar', ...)")
    compress: bool = Field(True, description="also build the compressed variant the scorer runs (student, INT8)")
    student_layers: int | None = Field(
        None, ge=1, description="distil the fine-tuned model into a student of this many layers before INT8, its "
        "sentence embedding kept close to the base model's so the topics share its forward (3: 949 vs 350 "
        "headlines/s in the scorer, but topic micro-F1 0.40 vs 0.51 on the gold test rows, docs/monitor_gold.md; "
        "None, the default: INT8 of the full model, and the topics run their own MiniLM forward)")
    embedding_weight: float = Field(1.0, gt=0, description="weight of the student's embedding term (1 - cosine "
                                                           "to the base model)")
    student_epochs: int = Field(4, ge=1, description="epochs of the student's distillation")
    max_accuracy_drop: float = Field(1.0, ge=0, description="accuracy points the compressed variants may lose, in "
                                                              "total vs the full model")
    seed: int = Field(0)


class BundleSentiment:
    """A text-classification bundle whose labels are negative / neutral / positive (or a subset).

    ``share_encoder``: open it so that one forward also returns its sentence embedding (an ONNX bundle only,
    fmkit/apps/monitor/shared_encoder.py); ``topic_encoder()`` is then an encoder for the few-shot topics and
    ``probabilities_and_embeddings`` the scorer's one call per micro-batch.
    """

    def __init__(self, path: Path, *, batch_size: int | None = None, threads: int | None = None,
                 share_encoder: bool = False):
        import fmkit

        self.path = Path(path)
        options = {key: value for key, value in (("batch_size", batch_size), ("threads", threads)) if value}
        try:
            if share_encoder:
                from fmkit.apps.monitor.shared_encoder import EmbeddingOnnxRuntime

                self.model = EmbeddingOnnxRuntime(self.path, **options)
            else:
                self.model = fmkit.load(self.path, **options)
        except BadInputError as error:
            raise BadInputError(f"--sentiment {self.path}: {error}") from None
        labels = [str(label).lower() for label in self.model.labels]
        unknown = sorted(set(labels) - set(LABELS))
        if unknown:
            raise BadInputError(f"--sentiment {self.path} predicts {unknown}, not sentiment; the monitor needs a "
                                "bundle with labels negative/neutral/positive (fine-tune one with a label column "
                                "holding those)")
        self.columns = [LABELS.index(label) for label in labels]

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(texts, 3) probabilities in LABELS order (a label the bundle lacks gets 0)."""
        probabilities = np.asarray(self.model.predict_proba(list(texts)), dtype=np.float32)
        return self._in_label_order(probabilities)

    def _in_label_order(self, probabilities: np.ndarray) -> np.ndarray:
        out = np.zeros((len(probabilities), len(LABELS)), dtype=np.float32)
        out[:, self.columns] = probabilities
        return out

    @property
    def shares_encoder(self) -> bool:
        return hasattr(self.model, "logits_and_embeddings")

    def probabilities_and_embeddings(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(texts, 3) probabilities in LABELS order and (texts, hidden) unit sentence embeddings, one forward."""
        from fmkit.runtime.base import softmax

        logits, vectors = self.model.logits_and_embeddings(list(texts))
        return self._in_label_order(softmax(logits)), vectors

    def topic_encoder(self) -> "SharedTopicEncoder":
        if not self.shares_encoder:
            raise BadInputError(f"--sentiment {self.path} was not opened to share its encoder with the topics")
        return SharedTopicEncoder(self)

    def describe(self) -> dict:
        manifest = self.model.manifest
        return {"kind": "bundle", "bundle": str(self.path), "digest": manifest.content_digest,
                "runtime": manifest.runtime, "labels": list(manifest.labels),
                "test_accuracy": manifest.metrics.get("test", {}).get("accuracy"),
                "shares_encoder_with_topics": self.shares_encoder}


class SharedTopicEncoder:
    """The few-shot topics' view of a sentiment bundle opened with ``share_encoder``: texts -> its unit sentence
    embeddings (what its head reads). The scorer does not call it per text: it takes the embeddings from the
    sentiment forward; the topics call it once, for their example centroids."""

    def __init__(self, sentiment: BundleSentiment):
        self.sentiment = sentiment
        self.name, self.digest = str(sentiment.path), sentiment.model.manifest.content_digest
        self.runtime, self.precision = sentiment.model.runtime, None

    def encode(self, texts) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return np.zeros((0, self.sentiment.model.dimension), dtype=np.float32)
        return self.sentiment.probabilities_and_embeddings(texts)[1]


# Words of business-news headlines that the Loughran-McDonald lists (written for 10-K filings) lack;
# written by the project for the weak labels only (the lexicon baseline does not use them).
NEWS_CUES = {
    "negative": {"plunge", "plunges", "plunged", "slump", "slumps", "slumped", "slash", "slashes", "tumble",
                 "tumbles", "crash", "crashes", "sink", "sinks", "slide", "slides", "fall", "falls", "fell", "shrink",
                 "shrinks", "shrank", "crisis", "bust", "administration", "redundant", "redundancies", "fears",
                 "fear", "warns", "warn", "fined", "sue", "sues", "recession", "jobless", "unemployment", "layoffs",
                 "closures", "close", "closes", "shut", "lockdown", "struggle", "struggles", "hit", "hits", "blow"},
    "positive": {"soar", "soars", "soared", "surge", "surges", "boost", "boosts", "boosted", "rally", "rallies",
                 "rebound", "rebounds", "reopen", "reopens", "reopening", "recovery", "recovers", "rise", "rises",
                 "jump", "jumps", "growth", "record", "hope", "optimism", "boom", "booms", "thrive", "prospered"},
}


def cue_label(text: str, lexicon_label: str) -> str:
    """The lexicon's label, or the news cues' where the lexicon found nothing (neutral)."""
    if lexicon_label != "neutral":
        return lexicon_label
    words = set(re.findall(r"[a-z]+", text.lower()))
    negative, positive = len(words & NEWS_CUES["negative"]), len(words & NEWS_CUES["positive"])
    return "negative" if negative > positive else "positive" if positive > negative else "neutral"


def training_rows(settings: DefaultSentimentSettings) -> list[dict]:
    """Weak-labelled non-gold headlines + the gold train rows (repeated), as {text, label}."""
    import random

    from fmkit.apps.monitor.gold import guardian_headlines, read_gold
    from fmkit.apps.monitor.lexicon import lexicon_labels

    gold = read_gold()
    gold_texts = {row["text"] for row in gold}
    weak = [row["text"] for row in guardian_headlines() if row["text"] not in gold_texts]
    if settings.weak_rows is not None:
        weak = random.Random(settings.seed).sample(weak, min(settings.weak_rows, len(weak)))
    rows = [{"text": text, "label": cue_label(text, label) if settings.news_cues else label}
            for text, label in zip(weak, lexicon_labels(weak))]
    if settings.weak_neutral_rows is not None:
        neutral = [row for row in rows if row["label"] == "neutral"]
        keep = random.Random(settings.seed).sample(neutral, min(settings.weak_neutral_rows, len(neutral)))
        rows = [row for row in rows if row["label"] != "neutral"] + keep
    for row in gold:
        if row["split"] == "train":
            rows += [{"text": row["text"], "label": row["sentiment"]}] * settings.gold_train_repeats
    return rows


def cache_key(settings: DefaultSentimentSettings) -> str:
    """Digest of the data files and the settings: what the default bundle is a function of."""
    from fmkit.apps.monitor.gold import GOLD_FILE, file_digest, guardian_file
    from fmkit.apps.monitor.lexicon import lexicon_file

    payload = {"settings": settings.model_dump(mode="json"), "gold": file_digest(GOLD_FILE),
               "guardian": file_digest(guardian_file()), "lexicon": file_digest(lexicon_file())}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def build_default_bundle(directory: Path, settings: DefaultSentimentSettings, log=print) -> None:
    """Fine-tune (and compress) into ``directory``/full and ``directory``/int8."""
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune
    from fmkit.fileio import write_json_atomic

    rows = training_rows(settings)
    directory.mkdir(parents=True, exist_ok=True)
    data_file = directory / "train.jsonl"
    data_file.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    counts = {label: sum(row["label"] == label for row in rows) for label in LABELS}
    log(f"default sentiment: fine-tuning {settings.model} on {len(rows)} headlines ({counts}; weak lexicon labels "
        "on the Guardian headlines outside the gold set + the gold train rows)")
    cfg = FinetuneConfig(model=settings.model, max_length=settings.max_length,
                         data={"source": str(data_file), "seed": settings.seed, "drop_duplicates": False},
                         train={"epochs": settings.epochs, "batch_size": settings.batch_size,
                                "learning_rate": settings.learning_rate, "progress": False, "seed": settings.seed})
    run_finetune(cfg, directory / FULL, echo=log)
    if settings.compress:
        compress_default_bundle(directory, settings, log)
    write_json_atomic(directory / "settings.json", settings.model_dump(mode="json"))


def compress_default_bundle(directory: Path, settings: DefaultSentimentSettings, log=print) -> None:
    """``directory``/full -> [``directory``/student ->] ``directory``/int8, each step within the accuracy budget
    (in total vs the full model). A student over budget is dropped (INT8 of the full model instead); an INT8
    variant over budget too (the monitor then runs its parent)."""
    from fmkit.compress.config import CompressConfig
    from fmkit.compress.stage import run_compress
    from fmkit.errors import CheckFailedError

    def compress(parent: str, method, out: str) -> bool:
        try:
            run_compress(directory / parent, CompressConfig(method=method, measure={"enabled": False},
                                                            max_accuracy_drop=settings.max_accuracy_drop),
                         directory / out, log=log)
            return True
        except CheckFailedError as error:  # over the accuracy budget
            log(f"default sentiment: the {out} variant is not used ({error})")
            shutil.rmtree(directory / out, ignore_errors=True)
            return False

    parent = FULL
    if settings.student_layers is not None:
        log(f"default sentiment: distilling a {settings.student_layers}-layer student (its sentence embedding kept "
            f"close to {settings.model}'s, so the topics can share its forward)")
        method = {"name": "distill", "student_layers": settings.student_layers, "embedding_teacher": "base",
                  "embedding_weight": settings.embedding_weight,
                  "train": {"epochs": settings.student_epochs, "batch_size": settings.batch_size,
                            "learning_rate": 1e-4, "progress": False, "seed": settings.seed}}
        if compress(FULL, method, STUDENT):
            parent = STUDENT
    if not compress(parent, "quantize-dynamic", COMPRESSED):
        log(f"default sentiment: scoring runs the {parent} bundle")


def default_sentiment_bundle(workspace: Path, *, settings: DefaultSentimentSettings | None = None,
                             variant: str = "auto", log=print) -> Path:
    """The default bundle's path (``variant`` auto: INT8 when built, else the student, else full), building it on
    first use."""
    settings = settings or DefaultSentimentSettings()
    root = Path(workspace).expanduser() / CACHE_FOLDER
    directory = root / cache_key(settings)
    root.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(root / ".lock", "w") as lock:  # two processes on one workspace: the second waits, then reuses
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (directory / "settings.json").is_file():  # settings.json is written last: it marks a finished build
            log(f"default sentiment bundle not in the workspace yet: building it once into {directory} "
                "(minutes on 2 cores; cached after that)")
            shutil.rmtree(directory, ignore_errors=True)  # what a killed build left
            build_default_bundle(directory, settings, log=log)
        else:
            log(f"default sentiment bundle: cached in {directory}")
    built = [name for name in (COMPRESSED, STUDENT, FULL) if (directory / name).is_dir()]
    chosen = variant if variant != "auto" else built[0] if built else FULL
    if not (directory / chosen).is_dir():
        raise BadInputError(f"{directory} has no {chosen!r} variant (settings compress={settings.compress})")
    return directory / chosen
