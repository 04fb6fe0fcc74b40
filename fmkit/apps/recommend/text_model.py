"""The text interest model: a two-tower encoder that reads a user's recent history and finds the next item.

The query is the user's most recent items as text (newest first), the document the item the user
picked next; both towers are one bi-encoder fine-tuned through fmkit's finetune stage with the
text-retrieval task (in-batch negatives plus popularity-sampled ones:
``negative_sampling="popularity"``), so the encoder is a normal bundle (compressible, ONNX). Pairs
come from the TRAIN split only. Item embeddings are computed once and kept as ``.npy``; scoring a
user is one query encoding (ONNX when exported) and a dot product with every item — which is also
how it ranks items no one has interacted with yet (cold items) and items added after training.

    model = TextInterestModel(TextModelConfig()).fit(data, workspace=Path("work/text"))
    scores = model.score([42], [[318, 296, 593]])      # (1, n_items) in data.item_index order
    model.save(Path("recommender/text"));  TextInterestModel.load(Path("recommender/text"))
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fmkit.errors import BadInputError

ENCODER_DIR = "encoder"  # the fine-tuned text-retrieval bundle (PyTorch)
ONNX_DIR = "encoder-onnx"  # its export-onnx variant: what scores queries at serve time
INT8_DIR = "encoder-int8"  # its INT8 variant (quantize-dynamic), when int8=True: queries and items both use it
EMBEDDINGS_FILE = "item_embeddings.npy"
META_FILE = "text_model.json"
PAIRS_FILE = "pairs.parquet"
HISTORY_SEPARATOR = " ; "
HELD_OUT_PAIRS = 0.03  # of the train split's pairs: the encoder's own early-stopping/test slice (not the recommender's)


class TextModelConfig(BaseModel):
    """The text interest model's settings. Defaults fit the issue's budget (training <= 15 min on 2 cores)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("minilm", description="base encoder: built-in name (minilm), HF folder or a text-retrieval "
                                             "bundle")
    method: Any = Field("full", description="full or lora (or a mapping {name: lora, r: 16})")
    history_items: int = Field(6, ge=1, le=50, description="most recent items a user's query text holds")
    item_words: int = Field(10, ge=2, le=200, description="words of each item's text inside a history query "
                                                          "(the title and genres come first)")
    max_pairs: int = Field(3000, ge=10, description="training pairs sampled from the train split")
    pairs_per_user: int = Field(40, ge=1, description="at most this many pairs per user, so heavy users do not "
                                                      "make up the sample")
    max_length: int = Field(64, ge=8, le=512, description="tokens per query or item text")
    epochs: int = Field(1, ge=1, le=20)
    batch_size: int = Field(32, ge=2, le=512)
    learning_rate: float | None = Field(None, gt=0, description="default: the finetune method's")
    negatives: int = Field(1, ge=0, le=16, description="popularity-sampled negatives per pair, beside in-batch ones")
    negative_sampling: Literal["popularity", "mined"] = "popularity"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    onnx: bool = Field(True, description="export the encoder to ONNX and encode queries with it (serve latency)")
    int8: bool = Field(False, description="also quantize the ONNX encoder to INT8 (ONNX Runtime dynamic) and encode "
                                          "items and queries with it: faster queries; its ranking quality is what "
                                          "the recommender's evaluation measures")
    threads: int | None = Field(None, ge=1, description="torch/ONNX threads for training and embedding the items "
                                                        "(default: all cores)")
    query_threads: int = Field(1, ge=1, description="ONNX threads that encode one request's history query: a "
                                                   "64-token query gains nothing from more, and they contend")
    progress: bool = Field(False, description="show the fine-tuning progress bar")
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "TextModelConfig":
        if self.int8 and not self.onnx:
            raise ValueError("int8=True quantizes the ONNX encoder: set onnx=True too (or int8=False)")
        return self


def history_query(texts: Sequence[str], item_words: int) -> str:
    """A history (oldest -> newest item texts) as one query: newest first, each item cut to its first words."""
    parts = [" ".join(str(text).split()[:item_words]) for text in reversed(list(texts))]
    return HISTORY_SEPARATOR.join(part for part in parts if part)


def recent_texts(history: Sequence, texts: dict, count: int) -> list[str]:
    """The texts of the ``count`` most recent items of ``history`` (oldest first) that have text."""
    recent: list[str] = []
    for item in reversed(history):
        if len(recent) == count:
            break
        if texts[item]:
            recent.append(texts[item])
    return recent[::-1]


def item_texts(data) -> list[str]:
    """Each item's text in score-column order (``data.item_index``): the data layer's ``text`` column."""
    items = data.items
    column = "item" if "item" in items.columns else items.columns[0]
    if "text" not in items.columns:
        raise BadInputError(f"the items table has no 'text' column (columns: {', '.join(map(str, items.columns))}); "
                            "name the item text columns with --text-columns")
    text_of = dict(zip(items[column].tolist(), items["text"].fillna("").astype(str).tolist()))
    return [text_of.get(item, "") for item in item_order(data)]


def item_order(data) -> list:
    """Item ids in score-column order."""
    index = data.item_index
    if isinstance(index, dict):
        return [item for item, _ in sorted(index.items(), key=lambda kv: kv[1])]
    return list(index)  # a pandas Index or a list: position = column


def training_pairs(train, texts_by_item: dict, cfg: TextModelConfig) -> tuple[list[str], list[str], dict]:
    """(history query, next item's text) pairs from the TRAIN interactions only, sampled.

    For each user in time order, every position t >= 1 is a pair: the ``history_items`` items before t -> item t.
    At most ``pairs_per_user`` per user (seeded), then at most ``max_pairs`` over all users.
    """
    import numpy as np

    rng = np.random.default_rng(cfg.seed)
    frame = train.sort_values(["user", "time"], kind="stable")
    candidates: list[tuple[list, Any]] = []
    users = 0
    for _, items in frame.groupby("user", sort=False)["item"]:
        sequence = [i for i in items.tolist() if texts_by_item.get(i)]
        if len(sequence) < 2:
            continue
        users += 1
        positions = np.arange(1, len(sequence))
        if len(positions) > cfg.pairs_per_user:
            positions = np.sort(rng.choice(positions, cfg.pairs_per_user, replace=False))
        candidates += [(sequence[max(0, t - cfg.history_items):t], sequence[t]) for t in positions]
    if len(candidates) > cfg.max_pairs:
        keep = np.sort(rng.choice(len(candidates), cfg.max_pairs, replace=False))
        candidates = [candidates[i] for i in keep]
    queries = [history_query([texts_by_item[i] for i in history], cfg.item_words) for history, _ in candidates]
    documents = [texts_by_item[item] for _, item in candidates]
    return queries, documents, {"pairs": len(queries), "users": users, "from": "train split"}


class TextInterestModel:
    """The scorer (R1's protocol): ``fit(data)`` then ``score(users, histories) -> (n_users, n_items)``."""

    name = "text"

    def __init__(self, cfg: TextModelConfig | None = None):
        self.cfg = cfg or TextModelConfig()
        self.encoder_ = None
        self.item_embeddings_: np.ndarray | None = None
        self.items_: list = []
        self.texts_: dict = {}
        self.facts_: dict = {}
        self.directory_: Path | None = None
        self.user_queries_ = None  # UserQueries: known users' queries encoded at training (cache_user_queries)

    # -- training ---------------------------------------------------------------------------------------------
    def fit(self, data, workspace: Path | None = None, *, log=print) -> "TextInterestModel":
        """Fine-tune the encoder on the train split's (history, next item) pairs and embed every item.

        ``workspace`` keeps the pairs and the bundles (a temporary folder when None: then ``save`` before it goes).
        """
        import tempfile

        import pandas as pd

        from fmkit.finetune.stage import run_finetune
        from fmkit.tasks import finetune_config

        started = time.perf_counter()
        if workspace is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fmkit-text-model-")
            workspace = Path(self._tmp.name)
        workspace = Path(workspace)
        workspace.mkdir(parents=True, exist_ok=True)
        self.items_ = item_order(data)
        texts = item_texts(data)
        self.texts_ = dict(zip(self.items_, texts))
        queries, documents, pair_facts = training_pairs(data.train, self.texts_, self.cfg)
        if len(queries) < 10:
            raise BadInputError(f"only {len(queries)} (history, next item) pairs in the train split; the text model "
                                "needs users with at least two interactions whose items have text")
        pd.DataFrame({"query": queries, "document": documents}).to_parquet(workspace / PAIRS_FILE, index=False)
        train = {"epochs": self.cfg.epochs, "batch_size": self.cfg.batch_size, "precision": self.cfg.precision,
                 "progress": self.cfg.progress, "seed": self.cfg.seed, "early_stopping_patience": None,
                 **({"learning_rate": self.cfg.learning_rate} if self.cfg.learning_rate else {}),
                 **({"num_threads": self.cfg.threads} if self.cfg.threads else {})}
        settings = {"task": "text-retrieval", "model": self.cfg.model, "method": self.cfg.method,
                    "data": {"source": str(workspace / PAIRS_FILE), "query_column": "query",
                             "document_column": "document", "validation_fraction": HELD_OUT_PAIRS, "test_fraction": HELD_OUT_PAIRS,
                             "seed": self.cfg.seed},
                    "train": train, "max_length": self.cfg.max_length, "hard_negatives": self.cfg.negatives,
                    "negative_sampling": self.cfg.negative_sampling}
        log(f"text model: {pair_facts['pairs']} (history, next item) pairs from {pair_facts['users']} users of the "
            f"train split; fine-tuning {self.cfg.model} ({self.cfg.method if isinstance(self.cfg.method, str) else 'lora'})")
        with warnings.catch_warnings(record=True) as caught:  # the pairs' notes (repeats, truncation) go to the log
            warnings.simplefilter("always")
            manifest = run_finetune(finetune_config(settings), workspace / ENCODER_DIR, overwrite=True, echo=log)
            if self.cfg.onnx:
                self._export_onnx(workspace, log)
        for message in dict.fromkeys(str(w.message) for w in caught):
            log(f"note: {message}")
        self.facts_ = {"pairs": pair_facts, "encoder_metrics": manifest.metrics,
                       "zero_shot": manifest.training.get("zero_shot"), "train_seconds": None}
        self.directory_ = workspace
        self._open_encoder(workspace, self.cfg.threads)
        self.item_embeddings_ = self.encode_items(texts)
        self._open_encoder(workspace, self.cfg.query_threads)
        self.facts_["train_seconds"] = round(time.perf_counter() - started, 1)
        log(f"text model ready in {self.facts_['train_seconds']} s ({len(self.items_)} items embedded, "
            f"queries on {self.encoder_.runtime})")
        return self

    def _export_onnx(self, workspace: Path, log) -> None:
        from fmkit.compress.config import CompressConfig
        from fmkit.compress.stage import run_compress

        cfg = CompressConfig(method="export-onnx", measure={"enabled": False})
        run_compress(workspace / ENCODER_DIR, cfg, workspace / ONNX_DIR, overwrite=True, log=log)
        if self.cfg.int8:  # the budget is the recommender's NDCG, measured by its evaluation, not Recall@1 of pairs
            cfg = CompressConfig(method="quantize-dynamic", measure={"enabled": False}, max_accuracy_drop=100)
            run_compress(workspace / ONNX_DIR, cfg, workspace / INT8_DIR, overwrite=True, log=log)

    def _open_encoder(self, directory: Path, threads: int | None) -> None:
        from fmkit.runtime.embeddings import load_encoder

        source = next((Path(directory) / name for name in (INT8_DIR, ONNX_DIR) if (Path(directory) / name).is_dir()),
                      Path(directory) / ENCODER_DIR)
        self.encoder_ = load_encoder(str(source), threads=threads)

    # -- scoring ----------------------------------------------------------------------------------------------
    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) unit vectors of item texts (an item without text gets a zero vector: it scores 0)."""
        import numpy as np

        vectors = self.encoder_.encode([t or " " for t in texts], batch_size=64)
        vectors[[not t for t in texts]] = 0.0
        return vectors.astype(np.float32)

    def queries(self, histories: Sequence[Sequence]) -> list[str]:
        """Each history as its query text: its ``history_items`` most recent items with text, as in training.
        An unknown item id is bad input, an item without text is skipped."""
        unknown = [item for history in histories for item in history if item not in self.texts_]
        if unknown:
            raise BadInputError(f"unknown item id(s) in a history: {unknown[:5]}; use ids from the items table "
                                "(or add them with `fmkit recommend add-items`)")
        return [history_query(recent_texts(history, self.texts_, self.cfg.history_items), self.cfg.item_words)
                for history in histories]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) unit vectors of query texts, each encoded as a request alone would encode it."""
        # INT8 (dynamic) quantizes activations per batch: one query per batch, so a user's scores do not
        # depend on who else is in the batch (and match a request served alone)
        alone = 1 if self.encoder_.runtime == "onnx-int8" else None
        return self.encoder_.encode(list(texts), batch_size=alone)

    def cache_user_queries(self, users: Sequence, histories: Sequence[Sequence]) -> None:
        """Encode each known user's query from ``histories`` (what serving ranks them from) once, so scoring
        that user with that history needs no encoder forward (user_queries.py)."""
        from fmkit.apps.recommend.user_queries import UserQueries

        self.user_queries_ = UserQueries.build(users, self.queries(histories), self.encode_queries)

    def query_vectors(self, users: Sequence, histories: Sequence[Sequence]) -> np.ndarray:
        """(n, dim): a known user's cached vector when their query is the cached one, else encoded; an empty
        query gives a zero vector (it scores 0)."""
        import numpy as np

        texts = self.queries(histories)
        vectors = np.zeros((len(texts), self.item_embeddings_.shape[1]), dtype=np.float32)
        missing = []
        for row, (user, text) in enumerate(zip(users, texts)):
            cached = self.user_queries_.vector(user, text) if self.user_queries_ is not None and text else None
            if cached is not None:
                vectors[row] = cached
            elif text:
                missing.append(row)
        if missing:
            vectors[missing] = self.encode_queries([texts[row] for row in missing])
        return vectors

    def score(self, users: Sequence, histories: Sequence[Sequence]) -> np.ndarray:
        """(n_users, n_items) cosine of each user's history query with every item; an empty history scores 0.
        ``users`` only pick a cached query (a known user's, valid for the history it was built from): the
        history is the user, so an unseen user works the same."""
        if self.item_embeddings_ is None:
            raise BadInputError("the text model is not fitted; call fit(data) or TextInterestModel.load(path)")
        return self.query_vectors(users, histories) @ self.item_embeddings_.T

    def add_items(self, items: Sequence, texts: Sequence[str]) -> None:
        """New items embedded and rankable at once (no retraining); an existing id is refused."""
        import numpy as np

        clash = [item for item in items if item in self.texts_]
        if clash:
            raise BadInputError(f"item id(s) {clash[:5]} already exist; new items need new ids")
        vectors = self.encode_items(list(texts))
        self.items_ = list(self.items_) + list(items)
        self.texts_.update(dict(zip(items, texts)))
        self.item_embeddings_ = np.concatenate([self.item_embeddings_, vectors]) if len(vectors) else \
            self.item_embeddings_

    # -- storage: JSON + .npy + the encoder bundles; no pickles ------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the model into ``directory`` (inside a directory the caller writes atomically)."""
        import shutil

        import numpy as np

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in (ENCODER_DIR, ONNX_DIR, INT8_DIR):
            source = Path(self.directory_) / name
            if source.is_dir() and source.resolve() != (directory / name).resolve():
                shutil.copytree(source, directory / name, ignore=shutil.ignore_patterns("reports"))
        np.save(directory / EMBEDDINGS_FILE, self.item_embeddings_.astype(np.float32), allow_pickle=False)
        if self.user_queries_ is not None:
            self.user_queries_.save(directory)
        meta = {"kind": "fmkit-text-interest-model", "config": self.cfg.model_dump(mode="json"),
                "items": [_json_id(i) for i in self.items_], "texts": [self.texts_[i] for i in self.items_],
                "encoder_digest": self.encoder_.digest, "runtime": self.encoder_.runtime, "facts": self.facts_}
        (directory / META_FILE).write_text(json.dumps(meta, indent=1, default=str) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, *, threads: int | None = None) -> "TextInterestModel":
        """Open a saved model (``threads``: the query encoder's); the encoder bundles are verified (digest, seal)
        by load_encoder."""
        import numpy as np

        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise BadInputError(f"{directory} has no {META_FILE}: not a saved text interest model")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        config = dict(meta["config"], **({"query_threads": threads} if threads else {}))
        model = cls(TextModelConfig.model_validate(config))
        model.items_ = list(meta["items"])
        model.texts_ = dict(zip(model.items_, meta["texts"]))
        model.facts_ = meta.get("facts", {})
        model.item_embeddings_ = np.load(directory / EMBEDDINGS_FILE, allow_pickle=False)
        if model.item_embeddings_.shape[0] != len(model.items_):
            raise BadInputError(f"{directory}: {model.item_embeddings_.shape[0]} item embeddings for "
                                f"{len(model.items_)} items; the directory is damaged, retrain it")
        from fmkit.apps.recommend.user_queries import UserQueries

        model.user_queries_ = UserQueries.load(directory)
        if model.user_queries_ is not None and len(model.user_queries_) and \
                model.user_queries_.vectors.shape[1] != model.item_embeddings_.shape[1]:
            raise BadInputError(f"{directory}: the cached user queries have {model.user_queries_.vectors.shape[1]} "
                                f"dimensions, the item embeddings {model.item_embeddings_.shape[1]}; retrain it")
        model.directory_ = directory
        model._open_encoder(directory, model.cfg.query_threads)
        if model.encoder_.digest != meta["encoder_digest"] and model.encoder_.runtime == meta["runtime"]:
            raise BadInputError(f"{directory}: the encoder is not the one the item embeddings were made with")
        return model


def _json_id(item):
    """Item ids as JSON keeps them (numpy integers -> int)."""
    return item.item() if hasattr(item, "item") else item
