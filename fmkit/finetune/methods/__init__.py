"""Fine-tuning methods. Each file registers one method; a new method is a new file here.

A method provides an options model (validated in recipes and on the CLI), ``prepare`` (what
wraps the model before training) and ``save`` (what goes into the bundle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from fmkit.registry import Registry


@dataclass(frozen=True)
class FinetuneMethod:
    options: type[BaseModel]
    prepare: Callable  # (model, options) -> model to train
    save: Callable  # (trained model, directory, options) -> dict recorded in the manifest
    default_learning_rate: float


FINETUNE_METHODS: Registry[FinetuneMethod] = Registry("fine-tuning method")

from fmkit.finetune.methods import full, lora  # noqa: E402,F401  (register themselves)
