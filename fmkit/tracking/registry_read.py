"""Read-only view of the workspace run registry (``.fmkit/registry.sqlite``) for the export.

fmkit/recipe/registry_db.py writes the registry; this module only reads it (opened read-only, so an export
never takes a write lock a running recipe needs), and tolerates columns or tables a newer fmkit adds. Each
stage gets its resolved config from the run directory's ``resolved.json`` (the registry keeps its cache key,
not the config) and its bundle's manifest where it produced one.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from fmkit.errors import BadInputError

REGISTRY = Path(".fmkit") / "registry.sqlite"


@dataclass
class StageRecord:
    index: int  # 1-based position in its run
    name: str
    stage: str
    status: str
    cached: bool
    seconds: float | None
    output: str | None
    started: str | None
    cache_key: str
    summary: dict
    config: dict = field(default_factory=dict)  # the resolved stage config (resolved.json), {} when unknown


@dataclass
class RunRecord:
    id: int
    name: str
    recipe: str
    run_dir: str
    status: str
    started: str
    finished: str | None
    error: str | None
    stages: list[StageRecord] = field(default_factory=list)


def registry_path(workspace: Path) -> Path:
    return Path(workspace) / REGISTRY


def read_runs(workspace: Path, run_ids: list[int] | None = None) -> list[RunRecord]:
    """Every run of ``workspace`` (oldest first), or only ``run_ids``, with their stages in order."""
    path = registry_path(workspace)
    if not path.is_file():
        raise BadInputError(f"no run registry in {workspace} ({path} does not exist); runs are recorded by "
                            "`fmkit run RECIPE.yaml --workspace DIR`")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        rows = [dict(row) for row in db.execute("SELECT * FROM runs ORDER BY id")]
        if run_ids:
            known = {row["id"] for row in rows}
            missing = sorted(set(run_ids) - known)
            if missing:
                raise BadInputError(f"--run {', '.join(map(str, missing))}: no such run in {path} "
                                    f"(runs: {', '.join(map(str, sorted(known))) or 'none'}); `fmkit runs` lists them")
            rows = [row for row in rows if row["id"] in set(run_ids)]
        runs = []
        for row in rows:
            stages = [dict(stage) for stage in db.execute("SELECT * FROM stages WHERE run_id=? ORDER BY id", (row["id"],))]
            runs.append(_run_record(row, stages))
        return runs
    finally:
        db.close()


def _run_record(row: dict, stages: list[dict]) -> RunRecord:
    configs = _resolved_configs(Path(row["run_dir"]))
    record = RunRecord(id=int(row["id"]), name=row["name"], recipe=row.get("recipe") or "", run_dir=row["run_dir"],
                       status=row["status"], started=row["started"], finished=row.get("finished"),
                       error=row.get("error"))
    for index, stage in enumerate(stages, start=1):
        record.stages.append(StageRecord(
            index=index, name=stage["name"], stage=stage["stage"], status=stage["status"],
            cached=bool(stage.get("cached")), seconds=stage.get("seconds"), output=stage.get("output"),
            started=stage.get("started"), cache_key=stage.get("cache_key") or "",
            summary=_json(stage.get("summary")), config=configs.get(stage["name"], {})))
    return record


def _resolved_configs(run_dir: Path) -> dict[str, dict]:
    """stage name -> its resolved config, from the run's resolved.json (missing or unreadable: {})."""
    data = _json_file(run_dir / "resolved.json")
    return {stage.get("name"): stage.get("config") or {} for stage in data.get("stages", []) if isinstance(stage, dict)}


def _json(text) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _json_file(path: Path) -> dict:
    try:
        return _json(path.read_text(encoding="utf-8"))
    except OSError:
        return {}
