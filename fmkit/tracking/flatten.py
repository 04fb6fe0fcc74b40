"""Nested fmkit configs and manifests -> MLflow's flat params and metrics.

MLflow keys allow letters, digits, ``_ - . / space``; params are strings of at most 6,000 characters and
are immutable once logged; metrics are finite floats. A nested key becomes ``a.b.c``; lists of scalars in
params become JSON; in metrics only numbers (not booleans, lists or matrices) are kept.
"""

from __future__ import annotations

import json
import math
import re

PARAM_VALUE_LIMIT = 6000
KEY_LIMIT = 250
_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-./ ]")


def clean_key(key: str) -> str:
    """``key`` with the characters MLflow refuses replaced by ``_`` (e.g. ``lora@r`` -> ``lora_r``)."""
    return _BAD_KEY.sub("_", str(key))[:KEY_LIMIT] or "_"


def flatten_params(config: dict, prefix: str = "") -> dict[str, str]:
    """``{"train": {"epochs": 2}}`` -> ``{"train.epochs": "2"}``; values as MLflow shows them (strings)."""
    flat: dict[str, str] = {}
    for key, value in (config or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
        if len(text) > PARAM_VALUE_LIMIT:
            text = text[:PARAM_VALUE_LIMIT - 1] + "…"
        flat[clean_key(name)] = text
    return flat


def flatten_metrics(values: dict, prefix: str = "", *, depth: int = 3) -> dict[str, float]:
    """The finite numbers in ``values`` (nested dicts to ``depth`` levels), keyed ``prefix.a.b``."""
    flat: dict[str, float] = {}
    for key, value in (values or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            if math.isfinite(value):
                flat[clean_key(name)] = float(value)
        elif isinstance(value, dict) and depth > 1:
            flat.update(flatten_metrics(value, f"{name}.", depth=depth - 1))
    return flat


def chunks(items: list, size: int):
    """``items`` in slices of ``size``: MLflow's log_batch takes at most 100 params / 1,000 metrics at once."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
