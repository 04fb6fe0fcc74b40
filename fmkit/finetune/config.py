"""The fine-tuning stage's config: what to start from, what data, which method, how to train."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

from fmkit.data.config import DataConfig
from fmkit.privacy.dp import DPConfig
from fmkit.finetune.methods import FINETUNE_METHODS
from fmkit.registry import parse_registered_options
from fmkit.train.config import TrainConfig
from fmkit.train.losses import LossConfig


class FinetuneConfig(BaseModel):
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
    privacy: DPConfig | None = Field(None, description="DP-SGD settings (target_epsilon, delta, max_grad_norm, ...); "
                                                      "null trains without differential privacy")

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, value: Any) -> BaseModel:
        return parse_registered_options(value, FINETUNE_METHODS)

    @property
    def method_name(self) -> str:
        return self.method.name  # type: ignore[attr-defined]
