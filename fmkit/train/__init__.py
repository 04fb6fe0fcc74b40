"""One training loop for every method: full, LoRA, and (later) DP-SGD, distillation, MLM.

Methods differ by what wraps the model, the optimizer and the loss (see :class:`TrainHooks`),
never by a copy of the loop.
"""

from fmkit.train.config import TrainConfig
from fmkit.train.loop import TrainHooks, TrainResult, train

__all__ = ["TrainConfig", "TrainHooks", "TrainResult", "train"]
