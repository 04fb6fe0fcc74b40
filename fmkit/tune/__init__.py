"""``fmkit tune``: hyper-parameter search with Optuna over any manifest measurement.

config.py (TuneConfig), space.py (the search space file), objectives.py (what can be optimised),
pruning.py (the TrainCallback that stops bad trials), trial.py (one trial -> a bundle), study.py
(storage, sampler, a worker's loop), report.py (study.json/html), run.py (the whole command).
Nothing here imports optuna or torch at import time.
"""

from fmkit.tune.config import TuneConfig

__all__ = ["TuneConfig"]
