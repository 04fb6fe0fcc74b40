"""A worker of ``fmkit tune``: validate everything, open (or continue) the study, run trials, write the summary."""

from __future__ import annotations

import datetime
import os
import socket
import uuid
from pathlib import Path
from typing import Callable

from fmkit.errors import BadInputError


def check_objectives(cfg, base) -> None:
    """Objectives the trials cannot produce are refused before any trial trains."""
    errors = []
    for spec in cfg.objectives:
        if spec.objective.needs == "dp" and getattr(base, "privacy", None) is None:
            errors.append(f"objective {spec.name}: the trials train without DP-SGD, so there is no ε to measure; "
                          "add --privacy dp or drop it")
    if errors:
        raise BadInputError("; ".join(errors))


def run_tune(cfg, base, out: Path, space_data: dict, *, workspace: Path = Path("."), keep_checkpoints: bool = False,
             echo: Callable[[str], None] = print, callbacks=()) -> dict:
    """Run this worker's share of the study ``cfg`` over finetune config ``base``; returns the study summary."""
    from fmkit.recipe.registry_db import RunRegistry
    from fmkit.tasks import TASKS, finetune_config, task_of_config
    from fmkit.tune.report import write_summary
    from fmkit.tune.space import space_summary, validate_space
    from fmkit.tune.study import open_study, run_worker
    from fmkit.tune.trial import TrialPlan

    out = Path(out)
    task_name = task_of_config(base)
    base_settings = base.model_dump(mode="json")
    if "task" not in base_settings:
        base_settings["task"] = task_name
    dimensions = validate_space(space_data, base_settings, base.method_name, finetune_config)
    check_objectives(cfg, base)
    if cfg.storage is None:
        out.mkdir(parents=True, exist_ok=True)  # the default storage lives in it
    space = space_summary(dimensions)
    study, storage, notes = open_study(cfg, out, space)
    out.mkdir(parents=True, exist_ok=True)
    for note in notes:
        echo(f"note: {note}")
    echo(f"study {study.study_name!r} in {storage}: {', '.join(map(str, cfg.objectives))}; sampler "
         f"{cfg.sampler_name}, pruner {cfg.pruner}; space: " + "; ".join(d.describe() for d in dimensions))
    task = TASKS.get(task_name)
    data = task.load_data(base.data)
    judged = [str(spec) for spec in cfg.objectives if spec.objective.needs in ("validation", "benchmark", "fairness")]
    if judged and not data.splits.get("validation"):
        raise BadInputError(f"{base.data.source}: no validation split, and the objectives {', '.join(judged)} are "
                            "measured on it (the test split must not choose the configuration); keep a validation "
                            "fraction in the data settings")
    registry = RunRegistry(workspace)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    run_id = registry.start_run(study.study_name, f"tune:{study.study_name}", out, now)
    plan = TrialPlan(cfg, base_settings, finetune_config, dimensions, out, data, registry, run_id, echo,
                     keep_checkpoints, list(callbacks), worker=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    status, error = "done", None
    try:
        counts = run_worker(study, plan, cfg.trials, echo)
    except BaseException as failure:
        status, error = "failed", str(failure)[:500]
        raise
    finally:
        registry.finish_run(run_id, status, datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                            error)
        summary = write_summary(study, storage, out)
    summary["worker"] = {**counts, "id": plan.worker}
    return summary
