"""The image fine-tuning config: which network, which images, how to train (the shared TrainConfig)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fmkit.data.images.config import ImageDataConfig
from fmkit.tasks.image_classification import NAME as TASK
from fmkit.train.config import TrainConfig
from fmkit.train.losses import LossConfig

AUTO = "auto"
PRETRAINED = "efficientnet-lite0"  # what model auto trains below pretrained_below_rows training images
FROM_SCRATCH = "cnn"  # ... and at or above it
PRETRAINED_INPUT_SIZE = 64  # model auto's EfficientNet resolution: 28 px data upsampled, ~12x cheaper than 224
PRETRAINED_BELOW_ROWS = 10_000


class ImageFinetuneConfig(BaseModel):
    """``fmkit finetune`` for images: a registered image model (or an image bundle) + labelled images."""

    model_config = ConfigDict(extra="forbid")

    task: Literal[TASK] = TASK
    model: str = Field(AUTO, description="auto, cnn, efficientnet-lite0, or an image-classification bundle to "
                       f"continue; auto: {PRETRAINED} (ImageNet weights, input {PRETRAINED_INPUT_SIZE} px unless "
                       f"input_size is set) below pretrained_below_rows training images, else {FROM_SCRATCH}")
    pretrained_below_rows: int = Field(PRETRAINED_BELOW_ROWS, ge=0, description=(
        f"model auto's threshold: fewer training images than this train {PRETRAINED} from ImageNet weights, "
        f"this many or more train {FROM_SCRATCH} from scratch (docs/images.md: why)"))
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

    def resolved_for(self, data) -> tuple["ImageFinetuneConfig", dict]:
        """(this config with model auto replaced by the architecture it picks for ``data``, the record of why).

        The pick depends on the training split's size only; an explicit model comes back unchanged with ``{}``.
        The resolved config is what the lineage keeps, so ``fmkit evaluate``'s baseline refits on the same network.
        """
        if self.model != AUTO:
            return self, {}
        rows = len(data.splits["train"])
        pretrained = rows < self.pretrained_below_rows
        chosen = PRETRAINED if pretrained else FROM_SCRATCH
        update: dict = {"model": chosen}
        if pretrained and self.input_size is None:
            update["input_size"] = PRETRAINED_INPUT_SIZE
        relation = "<" if pretrained else ">="
        why = ("ImageNet features transfer where a network from scratch has too few images to learn its own"
               if pretrained else "enough images to train the small CNN from scratch, ~10x cheaper per image")
        size = update.get("input_size", self.input_size)
        record = {"requested": AUTO, "chosen": chosen, "train_rows": rows, "threshold": self.pretrained_below_rows,
                  "input_size": size,
                  "reason": f"model auto: {chosen}{f' at {size} px' if size else ''} ({rows} training images "
                            f"{relation} pretrained_below_rows={self.pretrained_below_rows}: {why})"}
        return self.model_copy(update=update), record

    @property
    def method_name(self) -> str:
        return "full"  # every weight trains; LoRA and DP are text-only for now
