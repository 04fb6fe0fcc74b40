"""The compression stage's config."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

from fmkit.compress.methods import COMPRESS_METHODS
from fmkit.registry import parse_registered_options


class MeasureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threads: int | None = Field(None, ge=1, description="runtime threads (default: all cores)")
    latency_samples: int = Field(200, ge=10, description="single-text calls timed for p50/p95")
    throughput_batch: int = Field(32, ge=1, description="batch size of the throughput measurement")
    enabled: bool = Field(True, description="measure latency, throughput and RSS (off: accuracy only)")


class CompressConfig(BaseModel):
    """``fmkit compress``: one method applied to a bundle, measured, checked against a budget."""

    model_config = ConfigDict(extra="forbid")

    method: SerializeAsAny[BaseModel] = Field(description="a registered method name or {name: ..., options}")
    max_accuracy_drop: float = Field(
        1.0, ge=0, le=100, description="test-accuracy points the variant may lose; by default in total vs the "
        "lineage's task model (the last ancestor that is not a compression), so a chain shares one budget")
    accuracy_budget: Literal["total", "step"] = Field(
        "total", description="what max_accuracy_drop bounds: the total drop vs the task model, or this step's vs "
        "the parent")
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    data: str | None = Field(
        None, description="the parent's training data (file or built-in name) when its recorded path moved; "
        "default: the source recorded in the parent's manifest")
    seed: int = Field(0, description="seed of the training rows drawn for calibration and validation samples")

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, value: Any) -> BaseModel:
        return parse_registered_options(value, COMPRESS_METHODS)

    @property
    def method_name(self) -> str:
        return self.method.name  # type: ignore[attr-defined]
