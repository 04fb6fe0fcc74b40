"""Full fine-tuning: every weight trains."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from fmkit.finetune.methods.base import FINETUNE_METHODS, FinetuneMethod


class FullOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["full"] = "full"


def prepare(model, options: FullOptions):
    return model


def save(model, directory, options: FullOptions) -> dict:
    model.save_pretrained(str(directory), safe_serialization=True)
    return {"trainable_parameters": sum(p.numel() for p in model.parameters())}


FINETUNE_METHODS.register("full")(FinetuneMethod(FullOptions, prepare, save, default_learning_rate=6e-5,
                                                                  max_learning_rate=3e-4))
