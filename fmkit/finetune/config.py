"""The fine-tuning stage's config: what to start from, what data, which method, how to train."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

from fmkit.data.config import DataConfig
from fmkit.privacy.dp import DPConfig
from fmkit.finetune.methods import FINETUNE_METHODS
from fmkit.registry import parse_registered_options
from fmkit.train.config import TrainConfig
from fmkit.train.losses import LossConfig


class FinetuneMethodChoice(BaseModel):
    """The ``method`` field's parsing into a registered method's options, and ``method_name``: shared by the
    finetune configs of the tasks that train with FINETUNE_METHODS (text classification, text retrieval)."""

    @field_validator("method", mode="before", check_fields=False)
    @classmethod
    def _method(cls, value: Any) -> BaseModel:
        return parse_registered_options(value, FINETUNE_METHODS)

    @property
    def method_name(self) -> str:
        return self.method.name  # type: ignore[attr-defined]


class FinetuneConfig(FinetuneMethodChoice):
    """``fmkit finetune``: a base model + labelled texts -> a task bundle."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("minilm", description="built-in name (minilm), local HF directory or fmkit bundle")
    data: DataConfig
    method: SerializeAsAny[BaseModel] = Field(
        default="full", description="full, lora, or a mapping {name: lora, r: 16, ...}", validate_default=True
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    loss: LossConfig = Field(default_factory=LossConfig, description="the classification loss and class weights")
    max_length: int = Field(
        128, ge=8, le=8192, description="tokens per text; longer texts are truncated (and counted)"
    )
    dropout: float | None = Field(None, ge=0, lt=1, description="override the model's hidden/attention dropout")
    pooling: Literal["auto", "pooler", "mean", "cls", "max"] = Field(
        "auto", description="what the text head reads: auto = the base's own sentence pooling when it declares one "
                            "(all-MiniLM-L6-v2: mean, 1_Pooling), else pooler ([CLS] through BERT's pooler)")
    head_init: Literal["auto", "random", "probe"] = Field(
        "auto", description="text head start: probe = a logistic-regression probe on the pooled embeddings "
                            "(LP-FT), random = a fresh head; auto = the measured default (docs/finetune.md)")
    few_shot: Literal["auto", "on", "off"] = Field(
        "auto", description="SetFit-style few-shot mode (contrastive pairs, then a logistic-regression head); "
                            "auto: on for full fine-tuning with <= few_shot_max_per_class training rows per class "
                            "and at most 10 classes")
    few_shot_max_per_class: int = Field(30, ge=1, description="few_shot auto's threshold: training rows per class")
    privacy: DPConfig | None = Field(None, description="DP-SGD settings (target_epsilon, delta, max_grad_norm, ...); "
                                                      "null trains without differential privacy")
