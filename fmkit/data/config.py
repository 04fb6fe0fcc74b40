"""Where the data comes from and how it is split."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TableSourceConfig(BaseModel):
    """Where a table comes from and how its rows are held out: what every text task's data config shares
    (a labelled table here, a table of query/document pairs in fmkit/retrieval/config.py)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="path to CSV/TSV/JSONL/Parquet, or a built-in dataset (rotten-tomatoes, "
                                    "support-faq)")
    format: str = Field("auto", description="auto (from the suffix), csv, tsv, jsonl or parquet")
    validation_fraction: float = Field(0.1, description="share held out for early stopping (of each class; of the "
                                                        "questions for query/document pairs)")
    test_fraction: float = Field(0.1, description="share held out for the final test (of each class; of the questions "
                                                  "for query/document pairs)")
    seed: int = Field(0, description="seed of the split (and of max_rows sampling)")
    max_rows: int | None = Field(
        None, description="keep a sample of this many cleaned rows (stratified by class where there are classes; "
                          "quick runs, tests)"
    )

    def extra_errors(self) -> list[str]:
        """A subclass's own checks, reported with the shared ones (every error at once)."""
        return []

    @model_validator(mode="after")
    def _check(self):
        errors = []
        if self.format not in ("auto", "csv", "tsv", "jsonl", "parquet"):
            errors.append(f"format={self.format!r}: use auto, csv, tsv, jsonl or parquet")
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                errors.append(f"{name}={value}: must be in [0, 1)")
        if self.validation_fraction + self.test_fraction >= 0.9:
            errors.append(
                f"validation_fraction + test_fraction = {self.validation_fraction + self.test_fraction:.2f} "
                "leaves under 10% for training; lower them"
            )
        if self.max_rows is not None and self.max_rows < 10:
            errors.append(f"max_rows={self.max_rows}: need at least 10 rows, or leave it unset for all")
        errors += self.extra_errors()
        if errors:
            raise ValueError("; ".join(errors))
        return self


class DataConfig(TableSourceConfig):
    """A labelled text table: a file (CSV/TSV/JSONL/Parquet) or a built-in dataset name."""

    text_column: str = Field("text", description="column holding the input text")
    label_column: str = Field("label", description="column holding the class label")
    drop_duplicates: bool | None = Field(
        None,
        description="drop repeated texts and texts with conflicting labels (default: yes, except for built-in "
        "tabular data such as adult, where identical records are different people)",
    )
    group_columns: list[str] = Field(
        default_factory=list,
        description="columns kept beside each row for fairness audits (e.g. sex, race); never part of the text",
    )

    def extra_errors(self) -> list[str]:
        overlap = {self.text_column, self.label_column} & set(self.group_columns)
        return [f"group_columns {sorted(overlap)} is the text or label column; name other columns"] if overlap else []
