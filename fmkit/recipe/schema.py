"""Recipe files: parsed, validated against the registered stages, every error reported at once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from fmkit.errors import BadInputError
from fmkit.recipe.stages import StageSpec, get_path, load_stages
from fmkit.registry import did_you_mean
from fmkit.validation import format_validation_error

TOP_LEVEL_KEYS = ("name", "description", "workspace", "stages")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class StageEntry:
    name: str
    stage: str
    spec: StageSpec
    config: BaseModel
    references: dict[str, str] = field(default_factory=dict)  # config field -> earlier stage name


@dataclass
class Recipe:
    name: str
    description: str
    workspace: Path
    stages: list[StageEntry]
    path: Path
    text: str

    def resolved(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "workspace": str(self.workspace),
            "stages": [{"name": s.name, "stage": s.stage, "references": s.references,
                        "config": s.config.model_dump(mode="json")} for s in self.stages],
        }


def _parse_yaml(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise BadInputError(f"recipe {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BadInputError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: a recipe is a mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    return data


def validate_recipe(data: dict, path: Path) -> Recipe:
    stages_registry = load_stages()
    errors: list[str] = []
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            errors.append(f"  {key}: unknown top-level key.{did_you_mean(key, TOP_LEVEL_KEYS)} "
                          f"Allowed: {', '.join(TOP_LEVEL_KEYS)}")
    name = str(data.get("name") or path.stem)
    if not NAME_PATTERN.match(name):
        errors.append(f"  name: {name!r} must be letters, digits, '-', '_' or '.'")
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        errors.append("  stages: a non-empty list of stages is required")
        raw_stages = []
    entries: list[StageEntry] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_stages):
        where = f"stages[{index}]"
        if not isinstance(raw, dict):
            errors.append(f"  {where}: each stage is a mapping with 'stage' and its settings")
            continue
        raw = dict(raw)
        stage_type = raw.pop("stage", None)
        stage_name = str(raw.pop("name", stage_type))
        where = f"stages[{index}] ({stage_name})"
        if stage_type is None:
            errors.append(f"  {where}: missing 'stage'; one of {', '.join(stages_registry.names())}")
            continue
        if stage_type not in stages_registry:
            errors.append(f"  {where}.stage: unknown stage {stage_type!r}; registered: "
                          f"{', '.join(stages_registry.names())}.{did_you_mean(stage_type, stages_registry.names())}")
            continue
        if stage_name in seen:
            errors.append(f"  {where}.name: {stage_name!r} is used twice; give each stage its own name")
        elif not NAME_PATTERN.match(stage_name):
            errors.append(f"  {where}.name: {stage_name!r} must be letters, digits, '-', '_' or '.'")
        spec = stages_registry.get(stage_type)
        references = {f: get_path(raw, f) for f in spec.references
                      if isinstance(get_path(raw, f), str) and get_path(raw, f) in seen}
        for field_name in spec.references:
            value = get_path(raw, field_name)
            later = [str(s.get("name", s.get("stage"))) for s in raw_stages[index + 1:] if isinstance(s, dict)]
            if isinstance(value, str) and value not in seen and value in later:
                errors.append(f"  {where}.{field_name}: stage {value!r} runs later; stages run in order")
        try:
            config_model = spec.config_for(raw) if spec.config_for else spec.config
        except BadInputError as error:
            errors.append(f"  {where}: {error}")
            continue
        try:
            config = config_model.model_validate(raw)
        except ValidationError as error:
            detail = format_validation_error(error, config_model, prefix=f"{where}.")
            errors.extend(detail.splitlines()[1:])
            seen.add(stage_name)
            continue
        seen.add(stage_name)
        entries.append(StageEntry(stage_name, stage_type, spec, config, references))
    if errors:
        raise BadInputError(f"{path}: {len(errors)} error(s):\n" + "\n".join(errors))
    workspace = Path(data.get("workspace") or ".")
    return Recipe(name, str(data.get("description", "")), workspace, entries, path, "")


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    recipe = validate_recipe(_parse_yaml(path), path)
    recipe.text = path.read_text(encoding="utf-8")
    return recipe
