"""The training package: one loop (``loop.train``) for every method, the ``TrainHooks`` protocol that
methods change it through (hooks.py), its config, checkpoints and precision.

The names below load on first use: ``fmkit.train.config``, ``hooks`` and ``precision`` are read by
configs, compression and serving, which must not pull the loop (and torch) in with them.
"""

from __future__ import annotations

import importlib

_LAZY = {"TrainConfig": "fmkit.train.config", "TrainHooks": "fmkit.train.hooks", "TrainResult": "fmkit.train.loop",
         "train": "fmkit.train.loop"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'fmkit.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
