"""The image fine-tuning config: which network, which images, how to train (the shared TrainConfig)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fmkit.data.images.config import ImageDataConfig
from fmkit.tasks.image_classification import NAME as TASK
from fmkit.train.config import TrainConfig
from fmkit.train.losses import LossConfig


class ImageFinetuneConfig(BaseModel):
    """``fmkit finetune`` for images: a registered image model (or an image bundle) + labelled images."""

    model_config = ConfigDict(extra="forbid")

    task: Literal[TASK] = TASK
    model: str = Field("cnn", description="cnn, efficientnet-lite0, or an image-classification bundle to continue")
    data: ImageDataConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    loss: LossConfig = Field(default_factory=LossConfig, description="the classification loss and class weights")
    input_size: int | None = Field(
        None, description="pixels per side the network sees; images are resized inside the model (default: cnn the "
        "data's size, efficientnet-lite0 224; 64-96 is far cheaper for 28x28 data)")
    augment: bool = Field(True, description="random crop (padding 1/8 of the side) and horizontal flip of training "
                                            "batches; validation and test images are never augmented")
    dropout: float | None = Field(None, ge=0, lt=1, description="dropout before the classifier "
                                                               "(default: cnn 0.5, efficientnet-lite0 0.2)")

    @model_validator(mode="after")
    def _check(self) -> "ImageFinetuneConfig":
        if self.input_size is not None and not 16 <= self.input_size <= 1024:
            raise ValueError(f"input_size={self.input_size}: use 16..1024 pixels (efficientnet-lite0 was trained at 224)")
        return self

    @property
    def method_name(self) -> str:
        return "full"  # every weight trains; LoRA and DP are text-only for now
