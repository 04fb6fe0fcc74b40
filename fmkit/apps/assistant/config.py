"""What ``fmkit assistant build`` is given: the encoder, the FAQ, optional intents and documents.

Loads no torch (tests/test_layering.py): the CLI validates a build before anything heavy starts.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

RETRIEVAL_MODES = ("auto", "dense", "bm25", "hybrid")


class BuildConfig(BaseModel):
    """One assistant: every problem with the settings is reported at once."""

    model_config = ConfigDict(extra="forbid")

    encoder: str = Field(description="text-retrieval bundle directory, or the zero-shot base 'minilm'")
    faq: str = Field(description="FAQ table (CSV/TSV/JSONL/Parquet, UTF-8) or the built-in 'support-faq'")
    question_column: str = Field("q", description="column holding the customer question")
    answer_column: str = Field("a", description="column holding the approved answer")
    id_column: str | None = Field(None, description="column holding a stable answer id (default: 'id' when "
                                  "the table has one, else the row number)")
    intent_column: str | None = Field(None, description="column holding the question's category (intent)")
    intent_bundle: str | None = Field(None, description="text-classification bundle that predicts the intent "
                                      "column (fmkit finetune --text-column Q --label-column CATEGORY)")
    intent_mass: float = Field(0.9, description="routing searches first the answers of the fewest intents that "
                               "hold this share of the classifier's probability")
    documents: str | None = Field(None, description="folder of .txt/.md/.html documents, chunked into the index "
                                  "with their source file kept")
    validation_data: str | None = Field(None, description="held-out questions (same columns) the handoff is "
                                        "calibrated on; default: the FAQ's own questions (optimistic when the "
                                        "encoder trained on them)")
    name: str | None = Field(None, description="the assistant's name (default: the output folder's name)")
    retrieval: str = Field("auto", description="dense, bm25, hybrid (reciprocal-rank fusion), or auto: the best "
                           "MRR@10 on the calibration questions")
    target_precision: float = Field(0.90, description="precision of answered questions the handoff threshold "
                                    "is chosen for")
    ann_threshold: int = Field(20_000, description="index entries above which search uses an HNSW graph "
                               "(hnswlib) instead of exact numpy search")
    chunk_chars: int = Field(800, description="target characters per document chunk")
    max_question_chars: int = Field(1000, description="longest question ask accepts (characters)")
    runtime: str = Field("auto", description="encoder runtime: auto, torch or onnx")
    seed: int = Field(0, description="seed of the HNSW graph and the calibration fit")

    @model_validator(mode="after")
    def _check(self) -> "BuildConfig":
        errors = []
        if self.retrieval not in RETRIEVAL_MODES:
            errors.append(f"retrieval={self.retrieval!r}: use one of {', '.join(RETRIEVAL_MODES)}")
        if not 0.0 < self.target_precision < 1.0:
            errors.append(f"target_precision={self.target_precision}: must be between 0 and 1 (e.g. 0.9)")
        if not 0.0 < self.intent_mass <= 1.0:
            errors.append(f"intent_mass={self.intent_mass}: must be in (0, 1]")
        if self.ann_threshold < 1:
            errors.append(f"ann_threshold={self.ann_threshold}: must be at least 1")
        if self.chunk_chars < 100:
            errors.append(f"chunk_chars={self.chunk_chars}: use at least 100 characters")
        if self.max_question_chars < 10:
            errors.append(f"max_question_chars={self.max_question_chars}: use at least 10")
        if self.intent_bundle and not self.intent_column:
            errors.append("intent_bundle given without intent_column: name the FAQ's category column "
                          "(--intent-column) so routed answers can be filtered by it")
        if self.question_column == self.answer_column:
            errors.append(f"question_column and answer_column are both {self.question_column!r}; name two columns")
        if errors:
            raise ValueError("; ".join(errors))
        return self
