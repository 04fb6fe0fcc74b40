"""Observers of a training run: ``TrainCallback``.

Hooks (fmkit/train/hooks.py) change how the loop trains; callbacks only watch it and may ask it to
stop: a hyper-parameter search's pruner (fmkit/tune/), live experiment tracking (MLflow). Subclass
``TrainCallback`` and override what you need; the defaults do nothing. Several callbacks may be given;
each is called in order. An exception a callback raises (e.g. ``optuna.TrialPruned``) ends training
and propagates to the caller of ``train``. No torch here: importing the protocol is cheap.

Under torchrun (several ranks) the loop calls callbacks on rank 0 only and sends rank 0's stop
decision to every rank, so all ranks stop at the same step.
"""

from __future__ import annotations

from typing import Sequence


class TrainCallback:
    """What an observer sees; every method is optional (the defaults do nothing)."""

    def on_step(self, step: int, loss: float, learning_rate: float) -> None:
        """After optimizer step ``step`` (1-based): the running training loss and the current learning rate."""
        return None

    def on_evaluate(self, step: int, epoch: float, metrics: dict) -> bool:
        """After each validation evaluation; ``metrics`` are the task's headline metrics. True stops training."""
        return False

    def on_end(self, result) -> None:
        """Once, with the ``TrainResult``, after the best weights are back in the model."""
        return None


def check_callbacks(callbacks: Sequence | None) -> list[TrainCallback]:
    """``callbacks`` as a list; a clear error for an object that is not a ``TrainCallback``."""
    checked = list(callbacks or ())
    for callback in checked:
        if not isinstance(callback, TrainCallback):
            raise TypeError(f"training callback {type(callback).__name__} is not a fmkit.train.callbacks.TrainCallback: "
                            "subclass it (its defaults do nothing) and override on_step, on_evaluate or on_end")
    return checked
