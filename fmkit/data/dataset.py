"""Load, clean and split a labelled text table into a :class:`TextClassificationData`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from fmkit.data.builtin import BUILTIN_DATASETS
from fmkit.data.clean import CleaningReport, clean_rows
from fmkit.data.config import DataConfig
from fmkit.data.readers import column_as_text, read_table
from fmkit.data.split import SPLITS, check_held_out, fingerprint, stratified_sample, stratified_split
from fmkit.errors import BadInputError
from fmkit.registry import did_you_mean


@dataclass
class TextClassificationData:
    texts: list[str]
    labels: list[str]
    label_names: list[str]
    splits: dict[str, list[int]]
    fingerprint: str
    config: DataConfig
    report: CleaningReport = field(default_factory=CleaningReport)
    # config.group_columns -> one value per row, aligned with texts (fairness audits; never in the text)
    groups: dict[str, list[str]] = field(default_factory=dict)

    def split(self, name: str) -> tuple[list[str], list[str]]:
        if name == "all":
            return list(self.texts), list(self.labels)
        if name not in self.splits:
            raise BadInputError(f"unknown split {name!r}; use one of {', '.join(SPLITS)} or all")
        indices = self.splits[name]
        if not indices and name != "train":
            # checked where a held-out split is used, not on load: `evaluate --split all` needs none
            check_held_out(self.labels, self.splits, self.config.validation_fraction, self.config.test_fraction,
                           self.config.source)
        return [self.texts[i] for i in indices], [self.labels[i] for i in indices]

    def summary(self) -> dict:
        return {
            "source": self.config.source,
            "text_column": self.config.text_column,
            "label_column": self.config.label_column,
            "fingerprint": self.fingerprint,
            "split_seed": self.config.seed,
            "split_sizes": {name: len(indices) for name, indices in self.splits.items()},
            "cleaning": self.report.as_dict(),
            "config": self.config.model_dump(mode="json"),
        }


def _sort_labels(values: set[str]) -> list[str]:
    try:
        return sorted(values, key=float)  # numeric labels in numeric order
    except ValueError:
        return sorted(values)


def read_labelled_columns(config: DataConfig) -> tuple[list[str], list[str], str]:
    """The raw text and label columns, and a printable name of where they came from."""
    texts, labels, _, origin = read_columns(config)
    return texts, labels, origin


def read_columns(config: DataConfig) -> tuple[list[str], list[str], dict[str, list[str]], str]:
    """The raw text, label and group columns, and a printable name of where they came from."""
    if config.source in BUILTIN_DATASETS:
        frame = BUILTIN_DATASETS.get(config.source).load()
        origin = f"built-in dataset {config.source!r}"
    else:
        path = Path(config.source)
        if not path.exists() and "/" not in config.source and not path.suffix:
            raise BadInputError(
                f"data {config.source!r} is neither a file nor a built-in dataset "
                f"({', '.join(BUILTIN_DATASETS.names())}).{did_you_mean(config.source, BUILTIN_DATASETS.names())}"
            )
        frame = read_table(path, config.format, (config.text_column, config.label_column, *config.group_columns))
        origin = str(path)
    columns = [str(c) for c in frame.columns]
    missing = [c for c in (config.text_column, config.label_column, *config.group_columns) if c not in columns]
    if missing:
        hints = "".join(did_you_mean(c, columns) for c in missing)
        flags = "--text-column/--label-column" + ("/--sensitive" if config.group_columns else "")
        raise BadInputError(
            f"{origin}: column(s) {', '.join(map(repr, missing))} not found; the columns are "
            f"{', '.join(map(repr, columns))}.{hints} Set {flags}."
        )
    if len(frame) == 0:
        raise BadInputError(f"{origin}: the file has a header but no rows")
    groups = {column: column_as_text(frame, column, origin) for column in config.group_columns}
    return (column_as_text(frame, config.text_column, origin), column_as_text(frame, config.label_column, origin),
            groups, origin)


def drop_duplicates_for(config: DataConfig) -> bool:
    if config.drop_duplicates is not None:
        return config.drop_duplicates
    builtin = BUILTIN_DATASETS.get(config.source) if config.source in BUILTIN_DATASETS else None
    return builtin.drop_duplicates if builtin else True


def load_text_classification(config: DataConfig) -> TextClassificationData:
    raw_texts, raw_labels, raw_groups, origin = read_columns(config)
    kept_rows, texts, labels, report = clean_rows(raw_texts, raw_labels, drop_duplicates_for(config))
    groups = {column: [values[i] for i in kept_rows] for column, values in raw_groups.items()}
    dropped = report.rows_read - report.rows_kept
    if dropped:
        warnings.warn(
            f"{origin}: dropped {dropped} of {report.rows_read} rows ({report.empty_dropped} empty, "
            f"{report.duplicates_dropped} duplicate, {report.conflicting_dropped} with conflicting labels, "
            f"{report.missing_label_dropped} without a label)",
            stacklevel=2,
        )
    for canonical, spellings in report.merged_labels.items():
        written = ", ".join(f"{spelling!r} ({rows} rows)" for spelling, rows in sorted(spellings.items()))
        warnings.warn(
            f"{origin}: labels {written} in column {config.label_column!r} are the same number written "
            f"differently; merged into one class {canonical!r}. Write each label one way to silence this",
            stacklevel=2,
        )
    if not texts:
        raise BadInputError(f"{origin}: no usable rows after dropping empty texts and labels")
    if config.max_rows is not None:
        keep = stratified_sample(labels, config.max_rows, config.seed)
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
        groups = {column: [values[i] for i in keep] for column, values in groups.items()}
    label_names = _sort_labels(set(labels))
    if len(label_names) < 2:
        raise BadInputError(
            f"{origin}: column {config.label_column!r} has only one class ({label_names[0]!r}); "
            "classification needs at least two. Check --label-column."
        )
    splits = stratified_split(labels, config.validation_fraction, config.test_fraction, config.seed)
    return TextClassificationData(
        texts=texts,
        labels=labels,
        label_names=label_names,
        splits=splits,
        fingerprint=fingerprint(texts, labels),
        config=config,
        report=report,
        groups=groups,
    )
