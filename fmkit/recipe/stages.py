"""The stage registry. Each stage registers itself next to its code (fmkit/<stage>/recipe_stage.py)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pydantic import BaseModel

from fmkit.registry import Registry


@dataclass
class StageContext:
    run_dir: Path
    outputs: dict[str, Path]  # stage name -> bundle produced by that stage
    log: Callable[[str], None]


@dataclass
class StageResult:
    bundle: Path | None  # the bundle this stage produced or changed
    summary: dict = field(default_factory=dict)  # headline metrics for the registry and `fmkit runs`


@dataclass(frozen=True)
class StageSpec:
    config: type[BaseModel]
    references: tuple[str, ...]  # config fields (dotted for nested: data.source) that may name an earlier stage's output
    run: Callable[[BaseModel, Path, StageContext], StageResult]  # (config, out_dir, context)
    produces_bundle: bool = True
    description: str = ""
    cacheable: bool = True  # False: the stage reads the whole run (e.g. report), so it always runs
    # Picks the config model from the raw settings when it depends on them (finetune: text or image task).
    config_for: Callable[[dict], type[BaseModel]] | None = None


STAGES: Registry[StageSpec] = Registry("stage")


def get_path(config: dict, dotted: str):
    value = config
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def set_path(config: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        config = config.setdefault(part, {})
    config[last] = value

# Modules that register stages; importing them is cheap (no torch at import time).
STAGE_MODULES = ["fmkit.privacy.recipe_stage", "fmkit.pretrain.recipe_stage", "fmkit.finetune.recipe_stage", "fmkit.evaluate.recipe_stage",
                 "fmkit.compress.recipe_stage", "fmkit.audit.recipe_stage", "fmkit.apps.assistant.recipe_stage",
                 "fmkit.apps.recommend.recipe_stage"]


def load_stages() -> Registry[StageSpec]:
    for module in STAGE_MODULES:
        importlib.import_module(module)
    return STAGES
