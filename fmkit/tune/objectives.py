"""What a search can optimise: named measurements read from a trial bundle's manifest.

Every objective is a number fmkit already records in ``fmkit.json`` (validation metrics, the
runtime benchmark, the DP budget, the fairness audit), so a study's values are the same numbers
``fmkit report`` and ``fmkit gate`` read. Validation metrics, never test ones: choosing the
configuration on the test split would make its test accuracy an optimistic estimate. No torch or
optuna here (``fmkit/tune/config.py`` imports this to validate ``--objectives``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fmkit.errors import BadInputError


def _validation(key: str) -> Callable:
    return lambda m: m.metrics.get("validation", {}).get(key)


def _benchmark(key: str) -> Callable:
    return lambda m: m.benchmarks.get(m.runtime, {}).get(key)


def _size_mb(manifest) -> float | None:
    size = manifest.benchmarks.get(manifest.runtime, {}).get("size_bytes")
    return None if size is None else size / 1e6


def _fairness_gap(manifest) -> float | None:
    from fmkit.audit.gate import MEASURES

    return MEASURES["max_fairness_gap"](manifest)


@dataclass(frozen=True)
class Objective:
    """One measurement: how to read it from a manifest, its natural direction and what produces it."""

    name: str
    direction: str  # "max" or "min": the default when --objectives names no direction
    needs: str  # validation | benchmark | dp | fairness: what a trial must do to have the number
    read: Callable
    description: str


OBJECTIVES: dict[str, Objective] = {o.name: o for o in [
    Objective("accuracy", "max", "validation", _validation("accuracy"), "validation accuracy"),
    Objective("macro_f1", "max", "validation", _validation("macro_f1"), "validation macro-F1"),
    Objective("log_loss", "min", "validation", _validation("log_loss"), "validation log-loss"),
    Objective("latency_p50_ms", "min", "benchmark", _benchmark("latency_p50_ms"),
              "median latency at batch 1 on the trial bundle's runtime (fmkit.runtime.measure)"),
    Objective("latency_p95_ms", "min", "benchmark", _benchmark("latency_p95_ms"),
              "95th-percentile latency at batch 1 on the trial bundle's runtime"),
    Objective("throughput_per_second", "max", "benchmark", _benchmark("throughput_per_second"),
              "texts per second at batch 32 on the trial bundle's runtime"),
    Objective("size_mb", "min", "benchmark", _size_mb, "model files on disk (MB)"),
    Objective("parameters", "min", "benchmark", _benchmark("parameters"), "parameters in the weight files"),
    Objective("epsilon", "min", "dp", lambda m: m.privacy.get("dp", {}).get("epsilon"),
              "DP-SGD privacy budget spent (needs --privacy dp)"),
    Objective("fairness_gap", "min", "fairness", _fairness_gap,
              "largest fairness gap of the fairness audit on the validation split (needs group columns)"),
]}

DIRECTIONS = {"max": "maximize", "min": "minimize", "maximize": "maximize", "minimize": "minimize"}


@dataclass(frozen=True)
class ObjectiveSpec:
    name: str
    direction: str  # maximize | minimize (Optuna's words)

    @property
    def objective(self) -> Objective:
        return OBJECTIVES[self.name]

    def __str__(self) -> str:
        return f"{self.name}:{self.direction[:3]}"


def valid_objectives() -> str:
    return ", ".join(f"{o.name} ({o.direction})" for o in OBJECTIVES.values())


def parse_objectives(text: str | list) -> list[ObjectiveSpec]:
    """``"accuracy:max,latency_p95_ms:min"`` -> specs; every bad entry is reported at once."""
    from fmkit.registry import did_you_mean

    entries = [part.strip() for part in text.split(",")] if isinstance(text, str) else [str(p).strip() for p in text]
    entries = [entry for entry in entries if entry]
    if not entries:
        raise BadInputError(f"--objectives is empty; name one or more of: {valid_objectives()}")
    specs, errors = [], []
    for entry in entries:
        name, _, direction = entry.partition(":")
        name = name.strip()
        if name not in OBJECTIVES:
            errors.append(f"objective {name!r} names no manifest measurement;{did_you_mean(name, list(OBJECTIVES))} "
                          f"valid objectives: {valid_objectives()}")
            continue
        direction = direction.strip().lower() or OBJECTIVES[name].direction
        if direction not in DIRECTIONS:
            errors.append(f"objective {entry!r}: direction {direction!r} is not max or min")
            continue
        if any(spec.name == name for spec in specs):
            errors.append(f"objective {name!r} is given twice")
            continue
        specs.append(ObjectiveSpec(name, DIRECTIONS[direction]))
    if errors:
        raise BadInputError("; ".join(errors))
    return specs


def read_value(spec: ObjectiveSpec, manifest, bundle) -> float:
    """The objective's number in ``manifest``; a trial whose bundle lacks it is an error naming what is missing."""
    value = spec.objective.read(manifest)
    if value is None:
        raise BadInputError(f"trial bundle {bundle} has no {spec.name} ({spec.objective.description}) in its manifest")
    return float(value)
