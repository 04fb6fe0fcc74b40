"""Sequence packing: the corpus as one token stream on disk, cut into full-length sequences.

Documents are tokenized in chunks and appended to a flat binary file (documents separated by
``[SEP]``), so memory stays flat however large the corpus is; training reads sequences back
through a NumPy memmap. Sequence ``i`` is ``[CLS]`` + the stream's tokens
``[i·(L-1), (i+1)·(L-1))``: no padding except in the very last sequence, and no token is lost
(``tests/test_pretrain.py`` checks both).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from fmkit.errors import BadInputError
from fmkit.pretrain.corpus import heldout

META_NAME = "packed.json"
CHUNK_DOCUMENTS = 2000  # documents tokenized per call (the Rust tokenizer parallelises within it)


@dataclass(frozen=True)
class PackedStream:
    path: Path
    dtype: str
    num_tokens: int  # tokens in the stream (document tokens + one [SEP] per document)
    num_documents: int
    seq_length: int
    cls_id: int

    @property
    def body_length(self) -> int:
        return self.seq_length - 1  # stream tokens per sequence; [CLS] is added in front

    @property
    def num_sequences(self) -> int:
        return math.ceil(self.num_tokens / self.body_length)

    def tokens(self) -> np.ndarray:
        if self.num_tokens == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.num_tokens,))

    def sequence(self, index: int, tokens: np.ndarray | None = None) -> np.ndarray:
        tokens = self.tokens() if tokens is None else tokens
        body = tokens[index * self.body_length : (index + 1) * self.body_length]
        return np.concatenate([np.array([self.cls_id], dtype=np.int64), body.astype(np.int64)])

    def as_dict(self) -> dict:
        return {"path": self.path.name, "dtype": self.dtype, "num_tokens": self.num_tokens,
                "num_documents": self.num_documents, "seq_length": self.seq_length, "cls_id": self.cls_id}


def stream_tokenizer(tokenizer):
    """The tokenizer's Rust backend with padding and truncation off (a model may ship them on)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    return backend


def _chunks(documents: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk = []
    for document in documents:
        chunk.append(document)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True)
class PackedCorpus:
    train: PackedStream
    heldout: PackedStream
    fingerprint: str  # sha256 over the documents' text, in order
    empty_documents: int  # documents that tokenized to nothing (e.g. only control characters)

    def summary(self) -> dict:
        return {"documents": self.train.num_documents + self.heldout.num_documents,
                "train_documents": self.train.num_documents, "heldout_documents": self.heldout.num_documents,
                "train_tokens": self.train.num_tokens, "heldout_tokens": self.heldout.num_tokens,
                "train_sequences": self.train.num_sequences, "heldout_sequences": self.heldout.num_sequences,
                "empty_documents": self.empty_documents, "fingerprint": self.fingerprint}


def pack_corpus(documents: Iterable[str], tokenizer, seq_length: int, directory: Path, *,
                heldout_fraction: float = 0.02, progress: bool = True) -> PackedCorpus:
    """Tokenize ``documents`` once into ``directory/{train,heldout}.bin`` and describe them."""
    from tqdm.auto import tqdm

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backend = stream_tokenizer(tokenizer)
    sep, cls = tokenizer.sep_token_id, tokenizer.cls_token_id
    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.uint32
    digest = hashlib.sha256()
    counts = {"train": [0, 0], "heldout": [0, 0]}  # tokens, documents
    empty = 0
    paths = {name: directory / f"{name}.bin" for name in counts}
    handles = {name: open(path.with_suffix(".bin.tmp"), "wb") for name, path in paths.items()}
    try:
        with tqdm(desc="tokenize + pack", unit="doc", disable=not progress, leave=False) as bar:
            for chunk in _chunks(documents, CHUNK_DOCUMENTS):
                encodings = backend.encode_batch(chunk, add_special_tokens=False)
                for document, encoding in zip(chunk, encodings):
                    digest.update(document.encode("utf-8") + b"\n")
                    if not encoding.ids:
                        empty += 1
                        continue
                    name = "heldout" if heldout(document, heldout_fraction) else "train"
                    ids = np.asarray(encoding.ids + [sep], dtype=dtype)
                    ids.tofile(handles[name])
                    counts[name][0] += len(ids)
                    counts[name][1] += 1
                bar.update(len(chunk))
    finally:
        for handle in handles.values():
            handle.close()
    for name, path in paths.items():
        path.with_suffix(".bin.tmp").replace(path)
    streams = {name: PackedStream(paths[name], np.dtype(dtype).name, counts[name][0], counts[name][1], seq_length, cls)
               for name in counts}
    packed = PackedCorpus(streams["train"], streams["heldout"], f"sha256:{digest.hexdigest()}", empty)
    total_documents = packed.train.num_documents + packed.heldout.num_documents
    if total_documents == 0:
        raise BadInputError("the corpus is empty: no non-empty lines (one line = one document) in the --corpus sources")
    if packed.train.num_tokens < packed.train.body_length:
        raise BadInputError(
            f"the corpus is smaller than one training sequence: {packed.train.num_tokens} training tokens, but one "
            f"sequence of --seq-length {seq_length} needs {packed.train.body_length} (+[CLS]). Add text, or lower "
            "--seq-length (and --heldout-fraction)"
        )
    (directory / META_NAME).write_text(json.dumps({"train": packed.train.as_dict(), "heldout": packed.heldout.as_dict(),
                                                   "fingerprint": packed.fingerprint, "empty_documents": empty}))
    return packed
