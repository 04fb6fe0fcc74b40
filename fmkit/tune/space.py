"""The search space file: which finetune (and compression) settings a study varies, and over what.

    learning_rate: {low: 1.0e-4, high: 3.0e-3, log: true}
    epochs: {low: 1, high: 4}
    lora_rank: {choices: [4, 8, 16]}
    lora_targets: {choices: [[query, value], [query, key, value, dense]]}
    distill_layers: {choices: [0, 3]}        # 0: no distillation; N: a student with N layers
    quantize: {choices: [false, true]}        # ONNX Runtime int8 (quantize-dynamic) after training

A parameter is a name from ``PARAMETERS`` (each maps to a finetune config key, or to a compression
stage run after fine-tuning); its entry is a range ``{low, high[, log][, step]}`` or ``{choices}``.
``validate_space`` reports every problem at once, and each end of each range is validated through
the finetune config itself, so a value the config would refuse is refused before any trial trains.
No torch or optuna here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmkit.errors import BadInputError


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: type  # float, int, bool or list (a list of strings, choices only)
    key: str | None  # the finetune config key it sets; None for a compression stage after fine-tuning
    description: str
    method: str | None = None  # the finetune method it belongs to
    minimum: float | None = None  # for the stages' own parameters (no config to validate them)


PARAMETERS: dict[str, Parameter] = {p.name: p for p in [
    Parameter("learning_rate", float, "train.learning_rate", "peak AdamW learning rate"),
    Parameter("epochs", int, "train.epochs", "passes over the training split"),
    Parameter("batch_size", int, "train.batch_size", "examples per forward pass"),
    Parameter("gradient_accumulation_steps", int, "train.gradient_accumulation_steps", "forward passes per step"),
    Parameter("weight_decay", float, "train.weight_decay", "AdamW decoupled weight decay"),
    Parameter("warmup_ratio", float, "train.warmup_ratio", "share of steps with linear warm-up"),
    Parameter("dropout", float, "dropout", "the model's hidden/attention dropout"),
    Parameter("max_length", int, "max_length", "tokens per text"),
    Parameter("lora_rank", int, "method.r", "LoRA rank", method="lora"),
    Parameter("lora_alpha", int, "method.alpha", "LoRA scaling alpha", method="lora"),
    Parameter("lora_dropout", float, "method.dropout", "dropout on the LoRA adapter input", method="lora"),
    Parameter("lora_targets", list, "method.target_modules", "modules that get LoRA adapters (choices of lists)",
              method="lora"),
    Parameter("distill_layers", int, None, "distil the fine-tuned model into a student with this many layers "
              "(0: no distillation)", minimum=0),
    Parameter("quantize", bool, None, "int8 dynamic quantization (ONNX Runtime) after training: true or false"),
]}

ENTRY_KEYS = ("low", "high", "log", "step", "choices")


@dataclass(frozen=True)
class Dimension:
    """One validated entry of the space."""

    parameter: Parameter
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.parameter.name} in {list(self.choices)}"
        return (f"{self.parameter.name} in [{self.low}, {self.high}]" + (" log" if self.log else "")
                + (f" step {self.step}" if self.step else ""))

    def suggest(self, trial) -> Any:
        """The trial's value (an ``optuna.Trial``); lists are offered to Optuna as comma-joined text."""
        name = self.parameter.name
        if self.choices is not None:
            offered = [",".join(c) if isinstance(c, (list, tuple)) else c for c in self.choices]
            value = trial.suggest_categorical(name, offered)
            return value.split(",") if self.parameter.kind is list else value
        if self.parameter.kind is int:
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), step=self.step, log=self.log)


def read_space(path: str | Path) -> dict:
    """The space YAML as a mapping; a missing or malformed file is bad input."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"--space {path} does not exist; write a YAML such as "
                            "`learning_rate: {low: 1.0e-4, high: 3.0e-3, log: true}`")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise BadInputError(f"--space {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"--space {path} must be a mapping of parameter -> range or choices; got "
                            f"{type(data).__name__}")
    return data


def _number(value, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind is int else isinstance(value, (int, float))


def _dimension(name: str, entry, errors: list[str]) -> Dimension | None:
    parameter = PARAMETERS[name]
    if isinstance(entry, list):
        entry = {"choices": entry}
    if not isinstance(entry, dict):
        errors.append(f"{name}: {entry!r} is neither a range {{low, high}} nor {{choices: [...]}}; to fix a value, "
                      "pass it as a finetune flag instead")
        return None
    unknown = [key for key in entry if key not in ENTRY_KEYS]
    if unknown:
        errors.append(f"{name}: unknown key(s) {unknown}; an entry has low/high (log, step) or choices")
        return None
    if "choices" in entry:
        if any(key in entry for key in ("low", "high", "log", "step")):
            errors.append(f"{name}: give either choices or a range (low/high), not both")
            return None
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            errors.append(f"{name}: choices is empty; list at least one value")
            return None
        bad = [c for c in choices if not _fits(c, parameter.kind)]
        if bad:
            errors.append(f"{name}: choices {bad} are not {_kind_name(parameter.kind)}")
            return None
        if len({repr(c) for c in choices}) < len(choices):
            errors.append(f"{name}: choices {choices} repeat a value")
            return None
        return Dimension(parameter, choices=tuple(tuple(c) if isinstance(c, list) else c for c in choices))
    if parameter.kind in (bool, list):
        errors.append(f"{name}: {_kind_name(parameter.kind)}; give {{choices: [...]}}, not a range")
        return None
    missing = [key for key in ("low", "high") if key not in entry]
    if missing:
        errors.append(f"{name}: a range needs low and high; {' and '.join(missing)} missing")
        return None
    low, high, log, step = entry["low"], entry["high"], entry.get("log", False), entry.get("step")
    problems = [f"{key}={value!r} is not {_kind_name(parameter.kind)}" for key, value in (("low", low), ("high", high))
                if not _number(value, parameter.kind)]
    if not isinstance(log, bool):
        problems.append(f"log={log!r} is not true or false")
    if step is not None and (not _number(step, parameter.kind) or step <= 0):
        problems.append(f"step={step!r} must be a positive {_kind_name(parameter.kind)}")
    if problems:
        errors.append(f"{name}: " + "; ".join(problems))
        return None
    if low > high:
        errors.append(f"{name}: low={low} > high={high}; swap them")
        return None
    if low == high:
        errors.append(f"{name}: the range [{low}, {high}] is empty (one value); to fix it pass it as a finetune flag, "
                      "or widen the range")
        return None
    if log and low <= 0:
        errors.append(f"{name}: log=true needs low > 0, got low={low}")
        return None
    if log and step is not None:
        errors.append(f"{name}: log and step do not combine (Optuna refuses it); drop one")
        return None
    if step is not None and step > high - low:
        errors.append(f"{name}: step={step} is wider than the range [{low}, {high}]: the range holds one value")
        return None
    return Dimension(parameter, float(low) if parameter.kind is float else int(low),
                     float(high) if parameter.kind is float else int(high), log, step)


def _fits(value, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is list:
        return isinstance(value, list) and bool(value) and all(isinstance(v, str) and "," not in v for v in value)
    return _number(value, kind)


def _kind_name(kind: type) -> str:
    return {float: "a number", int: "a whole number", bool: "true or false", list: "a list of module names"}[kind]


def validate_space(data: dict, base_settings: dict, method: str, validate) -> list[Dimension]:
    """The space's dimensions; every problem at once as one :class:`BadInputError`.

    ``base_settings`` are the finetune settings without the space (a JSON dump of the validated config),
    ``method`` its finetune method, ``validate(settings)`` the finetune config's validation (raises).
    """
    from fmkit.registry import did_you_mean

    errors: list[str] = []
    dimensions = []
    if not data:
        raise BadInputError("the search space is empty; name at least one parameter: " + ", ".join(PARAMETERS))
    for name, entry in data.items():
        if name not in PARAMETERS:
            errors.append(f"unknown parameter {name!r};{did_you_mean(name, list(PARAMETERS))} the space takes: "
                          + ", ".join(PARAMETERS))
            continue
        dimension = _dimension(name, entry, errors)
        if dimension is None:
            continue
        parameter = dimension.parameter
        if parameter.method and parameter.method != method:
            errors.append(f"{name} is a {parameter.method} option but the trials fine-tune with --method {method}; "
                          f"add --method {parameter.method} or drop {name}")
            continue
        errors += _check_values(dimension, base_settings, validate)
        dimensions.append(dimension)
    if errors:
        raise BadInputError("bad search space: " + "; ".join(errors))
    return dimensions


def _check_values(dimension: Dimension, base_settings: dict, validate) -> list[str]:
    """Each end of the range (each choice) through the finetune config: the config's own message when it refuses."""
    import copy

    from fmkit.cli.common import set_nested

    parameter = dimension.parameter
    values = list(dimension.choices) if dimension.choices is not None else [dimension.low, dimension.high]
    if parameter.key is None:
        low = parameter.minimum
        return [f"{parameter.name}={value}: must be >= {low}" for value in values
                if low is not None and not isinstance(value, bool) and value < low]
    problems = []
    for value in values:
        settings = copy.deepcopy(base_settings)
        set_nested(settings, parameter.key, list(value) if isinstance(value, tuple) else value)
        try:
            validate(settings)
        except Exception as error:  # pydantic's ValidationError or a config's own ValueError
            text = error.errors()[0]["msg"] if hasattr(error, "errors") else str(error)
            problems.append(f"{parameter.name}={value!r}: {text.removeprefix('Value error, ')}")
    return problems


def apply_params(base_settings: dict, dimensions: list[Dimension], values: dict) -> tuple[dict, dict]:
    """(finetune settings with the trial's values, the stage parameters: distill_layers, quantize)."""
    import copy

    from fmkit.cli.common import set_nested

    settings = copy.deepcopy(base_settings)
    stages = {}
    for dimension in dimensions:
        parameter = dimension.parameter
        value = values[parameter.name]
        if parameter.key is None:
            stages[parameter.name] = value
        else:
            set_nested(settings, parameter.key, value)
    return settings, stages


def space_summary(dimensions: list[Dimension]) -> dict:
    """The space as JSON (stored with the study, so a resumed run can tell it changed)."""
    return {d.parameter.name: ({"choices": [list(c) if isinstance(c, tuple) else c for c in d.choices]}
                               if d.choices is not None else
                               {"low": d.low, "high": d.high, "log": d.log, **({"step": d.step} if d.step else {})})
            for d in dimensions}


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
