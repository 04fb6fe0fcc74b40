"""The text-retrieval finetune config: (query, document) pairs, the bi-encoder's loss and its negatives.

``fmkit finetune --task text-retrieval --data faq.csv --query-column q --document-column a`` fills
it: every field with a description becomes a flag (fmkit/cli/from_config.py). Importing it loads no torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

from fmkit.data.config import TableSourceConfig
from fmkit.finetune.config import FinetuneMethodChoice
from fmkit.train.config import TrainConfig

TASK = "text-retrieval"


class RetrievalDataConfig(TableSourceConfig):
    """A table of (query, document) pairs: a file (CSV/TSV/JSONL/Parquet) or a built-in dataset name."""

    query_column: str = Field("query", description="column holding the query (a customer's question)")
    document_column: str = Field("document", description="column holding the document it should find (the answer)")
    test_fraction: float = Field(0.2, description="share held out for the final test (of each class; of the questions "
                                                  "for query/document pairs)")  # the 20% question split

    def extra_errors(self) -> list[str]:
        if self.query_column == self.document_column:
            return [f"query_column and document_column are both {self.query_column!r}; name two columns"]
        return []


# A bi-encoder on a few hundred pairs: a handful of epochs of in-batch negatives (sentence-transformers' MNRL
# recipe), early-stopped on validation MRR@10. Not the classifiers' step budget (epochs auto: up to 40): a pretrained
# sentence encoder needs few steps to adapt and forgets with many, and each pair costs 2-3 forward passes.
TRAINING_DEFAULTS = {"epochs": 4, "batch_size": 32, "early_stopping_patience": 2}


def _retrieval_training() -> TrainConfig:
    return TrainConfig(**TRAINING_DEFAULTS)


class RetrievalFinetuneConfig(FinetuneMethodChoice):
    """``fmkit finetune --task text-retrieval``: a base encoder + (query, document) pairs -> an encoder bundle."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["text-retrieval"] = TASK
    model: str = Field("minilm", description="built-in name (minilm), local HF directory or fmkit bundle")
    data: RetrievalDataConfig
    method: SerializeAsAny[BaseModel] = Field(
        default="full", description="full, lora, or a mapping {name: lora, r: 16, ...}", validate_default=True)
    train: TrainConfig = Field(default_factory=_retrieval_training)
    max_length: int = Field(256, ge=8, le=8192, description="tokens per query or document; longer ones are truncated")
    scale: float = Field(20.0, gt=0, le=1000, description="similarity scale of the in-batch-negatives loss "
                                                          "(cosine x scale are the logits; sentence-transformers: 20)")
    symmetric: bool = Field(False, description="also train document -> query (the symmetric in-batch-negatives loss)")
    hard_negatives: int = Field(1, ge=0, le=16, description="hard negatives per query, mined with the zero-shot "
                                                            "encoder from the documents ranked just below the "
                                                            "answer (0: in-batch negatives only)")
    mining_depth: int = Field(20, ge=1, le=1000, description="how many top-ranked documents the hard negatives are "
                                                             "chosen from")
    mining_margin: float = Field(0.05, ge=0, lt=1, description="skip a candidate scoring above (1 - margin) x the "
                                                              "answer's score: likely another right answer")
    negative_sampling: Literal["mined", "popularity"] = Field(
        "mined", description="how the hard negatives are chosen: mined (ranked just below the answer by the zero-shot "
                             "encoder) or popularity (drawn by how often a document is a training answer, ^0.75; "
                             "no zero-shot pass over the training queries: for many pairs, e.g. a recommender's)")
    document_queries: bool = Field(False, description="also train on one pseudo-question per document of the index: "
                                                      "its first sentence, to find the rest of it (inverse cloze task)")

    @field_validator("train", mode="before")
    @classmethod
    def _train(cls, value: Any) -> Any:
        """The retrieval defaults under whatever training settings were given (a flag such as --no-progress
        makes a partial mapping, which would otherwise take the classifiers' defaults)."""
        return {**TRAINING_DEFAULTS, **value} if isinstance(value, dict) else value

