"""(query, document) pairs: read, cleaned, indexed, and split by question.

Every distinct document (an approved answer) is one entry of the index, which always holds all
of them: a held-out question is scored against every answer, including answers no training
question had. Its "label" is the key of its document (``doc-`` + a digest of the text), so the
finetune stage's label ids are positions in that index. The split is by question: rows with the
same query text stay in one split, so a test question was never seen in training. The same
question with two different answers is reported and both pairs are kept (either answer counts).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError
from fmkit.retrieval.config import RetrievalDataConfig

SPLITS = ("train", "validation", "test")


def document_key(text: str) -> str:
    """A short stable name of a document: the same answer text has the same key in any file."""
    return "doc-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@dataclass
class RetrievalData:
    queries: list[str]  # one per pair (row), cleaned
    labels: list[str]  # the key of each row's document
    label_names: list[str]  # every document key, in first-seen order: the index
    documents: list[str]  # the document texts, aligned with label_names
    splits: dict[str, list[int]]  # split -> row indices
    fingerprint: str
    config: RetrievalDataConfig
    report: dict = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:  # the rows' input texts, as in every other task's data
        return self.queries

    def split(self, name: str) -> tuple[list[str], list[str]]:
        if name == "all":
            return list(self.queries), list(self.labels)
        if name not in self.splits:
            raise BadInputError(f"unknown split {name!r}; use one of {', '.join(SPLITS)} or all")
        rows = self.splits[name]
        return [self.queries[i] for i in rows], [self.labels[i] for i in rows]

    def relevant(self, rows) -> list[set[int]]:
        """Per row, the index positions of every document its query has (duplicated questions have several)."""
        position = {key: index for index, key in enumerate(self.label_names)}
        answers: dict[str, set[int]] = {}
        for query, key in zip(self.queries, self.labels):
            answers.setdefault(query, set()).add(position[key])
        return [answers[self.queries[i]] for i in rows]

    def summary(self) -> dict:
        return {
            "source": self.config.source, "query_column": self.config.query_column,
            "document_column": self.config.document_column, "fingerprint": self.fingerprint,
            "split_seed": self.config.seed, "split_sizes": {name: len(rows) for name, rows in self.splits.items()},
            "documents": len(self.documents), "cleaning": self.report, "config": self.config.model_dump(mode="json"),
        }


def read_pairs(config: RetrievalDataConfig) -> tuple[list[str], list[str], str]:
    """The raw query and document columns and a printable origin."""
    from fmkit.data.builtin import BUILTIN_DATASETS
    from fmkit.data.readers import column_as_text, read_table
    from fmkit.registry import did_you_mean

    columns = (config.query_column, config.document_column)
    if config.source in BUILTIN_DATASETS:
        frame, origin = BUILTIN_DATASETS.get(config.source).load(), f"built-in dataset {config.source!r}"
    else:
        path = Path(config.source)
        if not path.exists() and "/" not in config.source and not path.suffix:
            raise BadInputError(f"data {config.source!r} is neither a file nor a built-in dataset "
                                f"({', '.join(BUILTIN_DATASETS.names())})."
                                + did_you_mean(config.source, BUILTIN_DATASETS.names()))
        frame, origin = read_table(path, config.format, columns), str(path)
    present = [str(c) for c in frame.columns]
    missing = [c for c in columns if c not in present]
    if missing:
        hints = "".join(did_you_mean(c, present) for c in missing)
        raise BadInputError(f"{origin}: column(s) {', '.join(map(repr, missing))} not found; the columns are "
                            f"{', '.join(map(repr, present))}.{hints} Set --query-column/--document-column.")
    if len(frame) == 0:
        raise BadInputError(f"{origin}: the file has a header but no rows")
    return column_as_text(frame, columns[0], origin), column_as_text(frame, columns[1], origin), origin


def clean_pairs(queries: list[str], documents: list[str]) -> tuple[list[str], list[str], dict]:
    """Normalised pairs without empty sides or repeated pairs; counts of what was dropped and of conflicts."""
    from fmkit.data.clean import normalize_text

    kept_queries, kept_documents, seen = [], [], set()
    empty = repeated = 0
    for query, document in zip(queries, documents):
        query, document = normalize_text(query), normalize_text(document)
        if not query or not document:
            empty += 1
        elif (query, document) in seen:
            repeated += 1
        else:
            seen.add((query, document))
            kept_queries.append(query)
            kept_documents.append(document)
    answers: dict[str, set[str]] = {}
    for query, document in zip(kept_queries, kept_documents):
        answers.setdefault(query, set()).add(document)
    conflicting = sorted(query for query, found in answers.items() if len(found) > 1)
    report = {"rows_read": len(queries), "empty_dropped": empty, "duplicates_dropped": repeated,
              "rows_kept": len(kept_queries), "questions_with_several_answers": len(conflicting),
              "several_answers_examples": conflicting[:5]}
    return kept_queries, kept_documents, report


def split_by_question(queries: list[str], validation_fraction: float, test_fraction: float,
                      seed: int) -> dict[str, list[int]]:
    """Seeded split of the distinct questions (all rows of one question in one split)."""
    distinct = list(dict.fromkeys(queries))
    order = np.random.default_rng(seed).permutation(len(distinct))
    test = int(round(len(distinct) * test_fraction))
    validation = int(round(len(distinct) * validation_fraction))
    assigned = {}
    for rank, index in enumerate(order):
        assigned[distinct[index]] = "test" if rank < test else ("validation" if rank < test + validation else "train")
    splits: dict[str, list[int]] = {name: [] for name in SPLITS}
    for row, query in enumerate(queries):
        splits[assigned[query]].append(row)
    return splits


def pairs_fingerprint(queries: list[str], documents: list[str]) -> str:
    from fmkit.data.split import fingerprint

    return fingerprint(queries, documents)


def load_pairs(config: RetrievalDataConfig) -> RetrievalData:
    raw_queries, raw_documents, origin = read_pairs(config)
    queries, documents, report = clean_pairs(raw_queries, raw_documents)
    dropped = report["rows_read"] - report["rows_kept"]
    if dropped:
        warnings.warn(f"{origin}: dropped {dropped} of {report['rows_read']} pairs ({report['empty_dropped']} with an "
                      f"empty query or document, {report['duplicates_dropped']} repeated)", stacklevel=2)
    if report["questions_with_several_answers"]:
        warnings.warn(f"{origin}: {report['questions_with_several_answers']} questions have more than one answer "
                      f"(e.g. {report['several_answers_examples'][0]!r}); all pairs are kept and any of the answers "
                      "counts as found", stacklevel=2)
    if len(queries) < 2:
        raise BadInputError(f"{origin}: {len(queries)} usable pairs after dropping empty ones; retrieval needs at "
                            f"least two (columns {config.query_column!r} and {config.document_column!r})")
    if config.max_rows is not None and config.max_rows < len(queries):
        keep = sorted(np.random.default_rng(config.seed + 7919).choice(len(queries), config.max_rows, replace=False))
        queries, documents = [queries[i] for i in keep], [documents[i] for i in keep]
    index = list(dict.fromkeys(documents))
    return RetrievalData(
        queries=queries, labels=[document_key(d) for d in documents], label_names=[document_key(d) for d in index],
        documents=index, splits=split_by_question(queries, config.validation_fraction, config.test_fraction,
                                                  config.seed),
        fingerprint=pairs_fingerprint(queries, documents), config=config, report=report)


def held_out_queries(bundle) -> dict[str, list[str]]:
    """The validation and test questions of a text-retrieval bundle: the ones its encoder never trained on.

    Reads the bundle's recorded data and its saved split (split.json), so calibration on them is honest.
    """
    from fmkit.bundle import read_manifest
    from fmkit.bundle.split import split_rows

    manifest = read_manifest(Path(bundle))
    stored = manifest.data.get("config")
    if not stored:
        raise BadInputError(f"{bundle} does not record its training data")
    data = load_pairs(RetrievalDataConfig.model_validate(stored))
    return {name: [data.queries[i] for i in split_rows(Path(bundle), data, name)] for name in ("validation", "test")}
