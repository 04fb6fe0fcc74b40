"""The training loop's extension points: the ``TrainHooks`` protocol every hook implements.

A method that changes how the loop trains (DP-SGD in fmkit/privacy/dp.py; a test's simulated
crash) subclasses ``TrainHooks`` and overrides what it needs; the defaults change nothing. The loop
calls every method on every hook, so nothing is probed for or optional.

One optimizer step is a series of passes (a forward and a backward each): the loop's
``gradient_accumulation_steps`` batches, each cut by ``split_batch`` into parts (by default the
batch itself). After every pass but the step's last, the loop calls ``accumulate``; after the
last it clips, steps and schedules. No torch here: importing the protocol is cheap.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable


@runtime_checkable
class TrainHooks(Protocol):
    """What a method may change in the loop; subclass it and override (its defaults do nothing)."""

    def setup(self, model, optimizer, batches):
        """Wrap model, optimizer and batch source before training (DP: Opacus' engine, Poisson batches)."""
        return model, optimizer, batches

    def wrap_loss(self, loss_fn: Callable) -> Callable:
        """The loss the loop uses after ``setup`` (DP's ghost clipping supplies its own criterion)."""
        return loss_fn

    def split_batch(self, batch: dict) -> list[dict]:
        """The parts one batch is computed in, one pass each. The loop backpropagates each part's loss as it
        is (over ``gradient_accumulation_steps``), so a hook that splits makes the parts add up: DP does,
        because Opacus rescales every example's clipped gradient by the expected batch size."""
        return [batch]

    def accumulate(self, optimizer) -> None:
        """After the backward of a pass that does not end the optimizer step. Autograd already sums ``.grad``;
        DP-SGD clips the pass's per-example gradients into its running sum here (Opacus' skipped step)."""
        return None

    def after_step(self, step: int) -> bool:
        """Called after optimizer step ``step``; True stops training (e.g. a privacy budget is spent)."""
        return False

    def state_dict(self) -> dict:
        """What a checkpoint keeps for the hook (DP: the accountant's history)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None

    def summary(self) -> dict:
        """The hook's figures for the training result (DP: ε, δ, noise, steps)."""
        return {}


class NoHooks(TrainHooks):
    """The loop's default: trains as it is."""


HOOK_METHODS = ("setup", "wrap_loss", "split_batch", "accumulate", "after_step", "state_dict", "load_state_dict",
                "summary")


def check_hooks(hooks) -> TrainHooks:
    """``hooks``, or the no-op default for None; a clear error for an object that lacks part of the protocol."""
    if hooks is None:
        return NoHooks()
    if not isinstance(hooks, TrainHooks):
        missing = [name for name in HOOK_METHODS if not callable(getattr(hooks, name, None))]
        raise TypeError(f"training hooks {type(hooks).__name__} lack {', '.join(missing)}: subclass "
                        "fmkit.train.hooks.TrainHooks, whose defaults do nothing, and override what you change")
    return hooks
