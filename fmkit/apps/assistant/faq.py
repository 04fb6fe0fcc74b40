"""Read a company's FAQ (question, approved answer, optional category) and split it by question.

Rows with an empty question or answer are dropped and counted; the same question asked twice
with different answers is reported and both rows are kept (the company decides which is right,
the assistant does not guess); a row repeated exactly is kept once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from fmkit.errors import BadInputError
from fmkit.registry import did_you_mean


@dataclass
class Faq:
    ids: list[str]
    questions: list[str]
    answers: list[str]
    categories: list[str] | None
    origin: str
    dropped_empty: int = 0
    dropped_repeats: int = 0
    duplicates: list[dict] = field(default_factory=list)  # same question, different answers

    def __len__(self) -> int:
        return len(self.questions)

    def summary(self) -> dict:
        return {"source": self.origin, "rows": len(self), "dropped_empty": self.dropped_empty,
                "dropped_repeats": self.dropped_repeats, "duplicate_questions": self.duplicates,
                "categories": sorted(set(self.categories)) if self.categories else None}


def normalize(text: str) -> str:
    """The form two spellings of one question share: case and runs of whitespace do not matter."""
    return " ".join(text.split()).casefold()


def read_frame(source: str, columns: tuple[str, ...]):
    from fmkit.data.builtin import BUILTIN_DATASETS
    from fmkit.data.readers import read_table

    if source in BUILTIN_DATASETS and not Path(source).exists():
        return BUILTIN_DATASETS.get(source).load(), f"built-in dataset {source!r}"
    path = Path(source)
    if not path.exists() and "/" not in source and not path.suffix:
        raise BadInputError(f"FAQ {source!r} is neither a file nor a built-in dataset "
                            f"({', '.join(BUILTIN_DATASETS.names())}).{did_you_mean(source, BUILTIN_DATASETS.names())}")
    return read_table(path, "auto", columns), str(path)


def read_faq(source: str, question_column: str, answer_column: str, *, intent_column: str | None = None,
             id_column: str | None = None) -> Faq:
    """The usable rows of the FAQ at ``source``; missing or empty columns are bad input naming them."""
    from fmkit.data.readers import column_as_text

    wanted = tuple(c for c in (question_column, answer_column, intent_column, id_column) if c)
    frame, origin = read_frame(source, wanted)
    columns = [str(c) for c in frame.columns]
    missing = [c for c in wanted if c not in columns]
    if missing:
        hints = "".join(did_you_mean(c, columns) for c in missing)
        raise BadInputError(f"{origin}: column(s) {', '.join(map(repr, missing))} not found; the columns are "
                            f"{', '.join(map(repr, columns))}.{hints} Set --question-column/--answer-column"
                            + ("/--intent-column" if intent_column else "") + ".")
    if len(frame) == 0:
        raise BadInputError(f"{origin}: the FAQ has a header but no rows; it needs question and answer rows")
    values = {c: [v.strip() for v in column_as_text(frame, c, origin)] for c in wanted}
    for column in wanted:
        if not any(values[column]):
            raise BadInputError(f"{origin}: column {column!r} is empty in every row; point the flag at the column "
                                "that holds the text")
    id_column = id_column or ("id" if "id" in columns else None)
    raw_ids = column_as_text(frame, id_column, origin) if id_column else [f"faq-{n + 1}" for n in range(len(frame))]
    return _clean(raw_ids, values[question_column], values[answer_column],
                  values[intent_column] if intent_column else None, origin)


def _clean(raw_ids, questions, answers, categories, origin) -> Faq:
    faq = Faq([], [], [], [] if categories is not None else None, origin)
    seen_rows: set[tuple[str, str]] = set()
    answers_of: dict[str, list[int]] = {}
    for row, (identifier, question, answer) in enumerate(zip(raw_ids, questions, answers)):
        category = categories[row] if categories is not None else None
        if not question or not answer or (categories is not None and not category):
            faq.dropped_empty += 1
            continue
        key = (normalize(question), normalize(answer))
        if key in seen_rows:
            faq.dropped_repeats += 1
            continue
        seen_rows.add(key)
        answers_of.setdefault(key[0], []).append(len(faq.questions))
        faq.ids.append(identifier.strip() or f"faq-{row + 1}")
        faq.questions.append(question)
        faq.answers.append(answer)
        if faq.categories is not None:
            faq.categories.append(category)
    if not faq.questions:
        raise BadInputError(f"{origin}: no row has both a question and an answer"
                            + (" and a category" if categories is not None else "") + "; nothing to index")
    if len(set(faq.ids)) != len(faq.ids):
        repeated = sorted({i for i in faq.ids if faq.ids.count(i) > 1})[:5]
        raise BadInputError(f"{origin}: ids {repeated} appear more than once; each answer needs its own id "
                            "(fix the id column, or pass --id-column of a unique column)")
    for rows in (r for r in answers_of.values() if len(r) > 1):
        faq.duplicates.append({"question": faq.questions[rows[0]], "ids": [faq.ids[r] for r in rows]})
    if faq.duplicates:
        shown = "; ".join(f"{d['question']!r} ({', '.join(d['ids'])})" for d in faq.duplicates[:3])
        warnings.warn(f"{origin}: {len(faq.duplicates)} question(s) appear with different answers, e.g. {shown}; "
                      "both answers are kept in the index. Keep one approved answer per question", stacklevel=3)
    if faq.dropped_empty or faq.dropped_repeats:
        warnings.warn(f"{origin}: dropped {faq.dropped_empty} row(s) with an empty question/answer"
                      + ("/category" if categories is not None else "")
                      + f" and {faq.dropped_repeats} exact repeat(s)", stacklevel=3)
    return faq


def split_by_question(faq: Faq, held_out: float, validation: float, seed: int) -> dict[str, list[int]]:
    """{"train", "validation", "held_out"} row indices, stratified by category; a question asked twice
    (with different answers) stays in one split, so no held-out question was seen in training."""
    from fmkit.data.split import stratified_split

    strata = faq.categories if faq.categories is not None else ["all"] * len(faq)
    parts = stratified_split(strata, validation, held_out, seed)
    split_of = {row: name for name, rows in parts.items() for row in rows}
    first_split: dict[str, str] = {}
    for row in range(len(faq)):
        split_of[row] = first_split.setdefault(normalize(faq.questions[row]), split_of[row])
    return {name: [row for row in range(len(faq)) if split_of[row] == part]
            for name, part in (("train", "train"), ("validation", "validation"), ("held_out", "test"))}


def write_split(source: str, question_column: str, answer_column: str, intent_column: str | None, out: str, *,
                held_out: float, validation: float, seed: int) -> dict[str, tuple[str, int]]:
    """train.csv / validation.csv / held_out.csv under ``out``: {name: (path, rows)}."""
    import pandas as pd

    from fmkit.data.config import DataConfig
    from fmkit.fileio import atomic_file

    DataConfig(source=source, validation_fraction=validation, test_fraction=held_out)  # the fractions, checked
    faq = read_faq(source, question_column, answer_column, intent_column=intent_column)
    written = {}
    for name, rows in split_by_question(faq, held_out, validation, seed).items():
        columns = {"id": [faq.ids[r] for r in rows], question_column: [faq.questions[r] for r in rows],
                   answer_column: [faq.answers[r] for r in rows]}
        if intent_column:
            columns[intent_column] = [faq.categories[r] for r in rows]
        path = Path(out) / f"{name}.csv"
        with atomic_file(path) as tmp:
            pd.DataFrame(columns).to_csv(tmp, index=False)
        written[name] = (str(path), len(rows))
    return written
