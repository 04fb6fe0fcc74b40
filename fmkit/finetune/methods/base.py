"""What a fine-tuning method is (``FinetuneMethod``) and the registry every method file joins.

Kept apart from ``methods/__init__.py`` so that the method files import this module, not the
package that imports them: no import loop.
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
