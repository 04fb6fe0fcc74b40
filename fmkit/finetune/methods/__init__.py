"""Fine-tuning methods. Each file registers one method; a new method is a new file here.

A method provides an options model (validated in recipes and on the CLI), ``prepare`` (what
wraps the model before training) and ``save`` (what goes into the bundle).
"""

from fmkit.finetune.methods.base import FINETUNE_METHODS, FinetuneMethod
from fmkit.finetune.methods import full, lora  # noqa: F401  (register themselves)

__all__ = ["FINETUNE_METHODS", "FinetuneMethod"]
