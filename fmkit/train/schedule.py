"""How long to train: the step budget the loop runs, derived from the data size unless the config says.

A fixed number of epochs is the wrong unit for fine-tuning: 3 epochs of 10,000 texts are ~960
optimizer steps, 3 epochs of 600 texts are 57, too few for a new head and far too few for LoRA
(issue 15: an 8-class set of 2,291 texts reached 0.752 accuracy in 3 epochs and 0.853 in 12).
``epochs: auto`` therefore plans by optimizer steps: at least ``AUTO_MIN_STEPS`` steps, never
fewer than ``AUTO_MIN_EPOCHS`` epochs (so large data trains exactly as long as before) and never
more than ``AUTO_MAX_EPOCHS``; early stopping on validation ends it once it stops improving.
Explicit ``epochs`` or ``max_steps`` win. No torch here: configs and the CLI import it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

AUTO_MIN_STEPS = 800  # the 2,291-row set peaked at ~520 steps of a 864-step (12-epoch) run
AUTO_MIN_EPOCHS = 3  # large data keeps the old default: 10,246 Rotten Tomatoes rows -> 3 epochs, 963 steps
AUTO_MAX_EPOCHS = 40  # tiny data: 600 rows -> 40 epochs (760 steps); more passes only memorise
AUTO_PATIENCE_SHARE = 0.2  # patience: a fifth of the planned epochs (3 -> 2 as before, 12 -> 3, 40 -> 8)
AUTO_MIN_PATIENCE = 2


@dataclass(frozen=True)
class Schedule:
    """The resolved plan: what the loop runs and what the manifest records as ``training.schedule``."""

    epochs: int
    total_steps: int  # the optimizer-step budget (the LR schedule decays over it)
    steps_per_epoch: int
    patience: int | None  # evaluations without a better validation score before stopping; None: never
    source: str  # what decided the budget: "auto", "epochs", "max_steps", "batches" (the source), "privacy" (DP)
    reason: str  # one sentence for the log

    def as_dict(self) -> dict:
        return asdict(self)

    def apply(self, cfg):
        """``cfg`` with concrete ``epochs`` and ``early_stopping_patience`` (``max_steps`` is kept as given)."""
        return cfg.model_copy(update={"epochs": self.epochs, "early_stopping_patience": self.patience})


def auto_epochs(steps_per_epoch: int) -> int:
    """Epochs that give at least ``AUTO_MIN_STEPS`` optimizer steps, within [AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS]."""
    wanted = math.ceil(AUTO_MIN_STEPS / max(1, steps_per_epoch))
    return min(AUTO_MAX_EPOCHS, max(AUTO_MIN_EPOCHS, wanted))


def auto_patience(epochs: int) -> int:
    """More epochs mean noisier per-epoch validation on small data: wait a fifth of them, at least 2."""
    return max(AUTO_MIN_PATIENCE, math.ceil(AUTO_PATIENCE_SHARE * epochs))


def plan_schedule(cfg, steps_per_epoch: int, *, evaluates: bool = True, fixed_epochs: int | None = None) -> Schedule:
    """The step budget for ``cfg`` (a TrainConfig) with ``steps_per_epoch`` optimizer steps per pass.

    With the defaults (batch 32): 10,246 rows (321 steps per epoch) -> 3 epochs as before; 2,291 rows
    (72) -> 12 epochs, 864 steps; 600 rows (19) -> 40 epochs, 760 steps; early stopping may end any sooner.
    ``fixed_epochs``: a batch source whose epoch is already a whole budget (few-shot pairs) declares it.
    """
    steps_per_epoch = max(1, steps_per_epoch)
    if cfg.max_steps is not None and cfg.epochs == "auto":
        epochs, total, source = math.ceil(cfg.max_steps / steps_per_epoch), cfg.max_steps, "max_steps"
        why = f"max_steps={cfg.max_steps} given"
    elif cfg.epochs == "auto" and fixed_epochs:
        epochs, total, source = fixed_epochs, fixed_epochs * steps_per_epoch, "batches"
        why = f"the batch source plans {fixed_epochs} epoch(s) itself"
    elif cfg.epochs == "auto":
        epochs, source = auto_epochs(steps_per_epoch), "auto"
        total = epochs * steps_per_epoch
        if epochs == AUTO_MIN_EPOCHS:
            why = f"{steps_per_epoch} steps per epoch already reach {AUTO_MIN_STEPS} steps in {AUTO_MIN_EPOCHS} epochs"
        elif epochs == AUTO_MAX_EPOCHS and AUTO_MAX_EPOCHS * steps_per_epoch < AUTO_MIN_STEPS:
            why = f"small data ({steps_per_epoch} steps per epoch): capped at {AUTO_MAX_EPOCHS} epochs"
        else:
            why = f"small data ({steps_per_epoch} steps per epoch): enough epochs for >= {AUTO_MIN_STEPS} steps"
    else:
        epochs, source = cfg.epochs, "epochs"
        total = epochs * steps_per_epoch if cfg.max_steps is None else min(epochs * steps_per_epoch, cfg.max_steps)
        why = f"epochs={cfg.epochs} given" + (f", max_steps={cfg.max_steps}" if cfg.max_steps is not None else "")
    patience = cfg.early_stopping_patience
    if patience == "auto":
        patience = auto_patience(epochs)
    if not evaluates:
        patience = None
        why += "; no validation split, so no early stopping"
    elif patience is not None:
        why += f"; early stopping after {patience} evaluations without a better validation score"
    return Schedule(epochs=epochs, total_steps=total, steps_per_epoch=steps_per_epoch, patience=patience,
                    source=source, reason=f"{epochs} epochs, {total} optimizer steps: {why}")
