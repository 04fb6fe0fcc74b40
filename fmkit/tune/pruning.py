"""Stopping unpromising trials: a ``TrainCallback`` fed by the validation metrics of each evaluation.

One objective: the value goes to Optuna (``trial.report``) and Optuna's own pruner decides
(``MedianPruner`` or ``SuccessiveHalvingPruner``, i.e. ASHA). Several objectives: Optuna cannot
report or prune multi-objective trials, so the curve is kept in the trial's user attributes and
fmkit applies the median rule itself: stop when the value at this evaluation is worse than the
median of the trials that finished (complete or pruned) at the same evaluation. Evaluations are
counted (1, 2, ...), not optimizer steps, so trials with different batch sizes compare epoch with epoch.
"""

from __future__ import annotations

import statistics

from fmkit.train.callbacks import TrainCallback

CURVE_ATTR = "validation_curve"  # user attribute: {metric, values: [value at evaluation 1, 2, ...]}


def make_pruner(cfg):
    """The Optuna pruner of a single-objective study (a multi-objective one gets NopPruner: fmkit prunes it)."""
    import optuna

    if cfg.pruner == "none" or len(cfg.objectives) > 1:
        return optuna.pruners.NopPruner()
    if cfg.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, cfg.warmup_evaluations), reduction_factor=3,
                                                      min_early_stopping_rate=0)
    return optuna.pruners.MedianPruner(n_startup_trials=cfg.startup_trials, n_warmup_steps=cfg.warmup_evaluations)


class PruningCallback(TrainCallback):
    """Reports the watched validation metric after each evaluation; raises ``optuna.TrialPruned`` to stop."""

    def __init__(self, trial, cfg):
        self.trial, self.cfg = trial, cfg
        self.spec = cfg.pruning_objective
        self.metric = self.spec.name if self.spec else None
        self.evaluations = 0
        self.curve: list[float] = []

    def on_evaluate(self, step: int, epoch: float, metrics: dict) -> bool:
        if self.metric is None or self.metric not in metrics:
            return False
        import optuna

        self.evaluations += 1
        value = float(metrics[self.metric])
        self.curve.append(value)
        self.trial.set_user_attr(CURVE_ATTR, {"metric": self.metric, "values": self.curve})
        if len(self.cfg.objectives) == 1:
            self.trial.report(value, self.evaluations)
            prune = self.trial.should_prune()
        else:
            prune = self._median_rule(value)
        if prune:
            self.trial.set_user_attr("pruned_at", {"evaluation": self.evaluations, "epoch": epoch, "step": step,
                                                   self.metric: value})
            raise optuna.TrialPruned(f"{self.metric}={value:.4f} at evaluation {self.evaluations} (epoch {epoch}) "
                                     "is below the study's median")
        return False

    def _median_rule(self, value: float) -> bool:
        import optuna

        if self.evaluations <= self.cfg.warmup_evaluations:
            return False
        finished = self.trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                                        optuna.trial.TrialState.PRUNED))
        if len(finished) < self.cfg.startup_trials:
            return False
        others = [t.user_attrs[CURVE_ATTR]["values"][self.evaluations - 1] for t in finished
                  if len(t.user_attrs.get(CURVE_ATTR, {}).get("values", [])) >= self.evaluations]
        if not others:
            return False
        median = statistics.median(others)
        return value < median if self.spec.direction == "maximize" else value > median
