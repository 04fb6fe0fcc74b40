"""Fine-tuning stage: base model + labelled data -> task bundle (full or LoRA; DP via hooks)."""

from fmkit.finetune.config import FinetuneConfig
from fmkit.finetune.methods import FINETUNE_METHODS

__all__ = ["FINETUNE_METHODS", "FinetuneConfig"]
