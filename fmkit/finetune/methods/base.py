"""What a fine-tuning method is (``FinetuneMethod``) and the registry every method file joins.

Kept apart from ``methods/__init__.py`` so that the method files import this module, not the
package that imports them: no import loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from fmkit.registry import Registry


REFERENCE_PARAMETERS = 110_000_000  # BERT-base: the size the published fine-tuning rates were tuned at


@dataclass(frozen=True)
class FinetuneMethod:
    options: type[BaseModel]
    prepare: Callable  # (model, options) -> model to train
    save: Callable  # (trained model, directory, options) -> dict recorded in the manifest
    default_learning_rate: float  # the method's rate for a BERT-base-sized (110M) model; see learning_rate_for
    max_learning_rate: float = 1e-3  # what the size scaling never exceeds (a tiny model would get absurd rates)

    def learning_rate_for(self, model) -> float:
        """The default rate for ``model``: smaller encoders take larger steps, ∝ sqrt(110M / parameters).

        Full fine-tuning: BERT-base 6e-5, all-MiniLM-L6-v2 (22.7M) 1.3e-4 (issue 15 measured 1.5e-4
        beating 5e-5 there); LoRA trains far fewer weights and needs ~10x more.
        """
        parameters = sum(p.numel() for p in model.parameters())
        scaled = self.default_learning_rate * math.sqrt(REFERENCE_PARAMETERS / max(1, parameters))
        return float(f"{min(self.max_learning_rate, scaled):.2g}")


FINETUNE_METHODS: Registry[FinetuneMethod] = Registry("fine-tuning method")
