"""``fmkit runs export --mlflow URI``: the workspace run registry and its bundles, as MLflow runs.

Each recipe run becomes one MLflow run (params: every stage's config under its stage name; metrics: every
stage's measurements under its stage name; artifacts: the recipe, resolved config, outputs and run log) with
one nested run per stage (``mlflow.parentRunId``: params = that stage's resolved config, metrics = its
bundle's measurements per split and its validation curve, tags = fmkit run id, bundle digest, lineage;
artifacts = the bundle's manifest, model card and reports, and the weights only with ``weights=True``).

Re-exporting is idempotent: runs are found again by their fmkit tags (workspace, registry run id, stage
position), a run whose export finished (tag ``fmkit.export = complete``) is left alone, one that did not
(an interrupted export) is deleted and written again, and a recipe run still running when last exported
gets its new stages. MLflow keeps every logged metric value, so logging twice would double the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fmkit.errors import BadInputError, FmkitError
from fmkit.tracking.bundle_log import bundle_metrics, bundle_tags, log_bundle_artifacts, read_bundle_manifest
from fmkit.tracking.flatten import flatten_metrics, flatten_params
from fmkit.tracking.registry_read import RunRecord, StageRecord, read_runs, registry_path
from fmkit.tracking.store import experiment_id, find_run, iso_ms, log_batches, now_ms, open_client
from fmkit.tracking.uri import resolve_tracking_uri

COMPLETE = {"fmkit.export": "complete"}
STATUS = {"done": "FINISHED", "failed": "FAILED"}  # a registry run still "running" stays RUNNING in MLflow
STAGE_STATUS = {"done": "FINISHED", "complete": "FINISHED", "pruned": "KILLED"}  # else FAILED (tune trials: pruned)
RUN_FILES = ("recipe.yaml", "resolved.json", "outputs.json", "run.log", "study.json", "study.html")  # those present


@dataclass
class Exported:
    """One fmkit run (or bundle) and what the export did with it: created, updated or unchanged."""

    fmkit_run: str
    mlflow_run_id: str
    experiment: str
    action: str
    stages: dict[str, str] = field(default_factory=dict)  # stage name -> created | unchanged | rewritten

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def export_workspace(workspace: Path, mlflow: str, *, experiment: str | None = None, run_ids: list[int] | None = None,
                     bundles: list[Path] = (), weights: bool = False,
                     echo: Callable[[str], None] | None = None) -> tuple[str, list[Exported]]:
    """Export ``workspace``'s recipe runs (all, or ``run_ids``) and any standalone ``bundles`` to the store
    ``mlflow`` names; ``experiment`` puts everything in one experiment (default: one per recipe name, and
    "fmkit" for standalone bundles). Returns the tracking URI and what happened to each run."""
    uri = resolve_tracking_uri(str(mlflow))
    workspace = Path(workspace).resolve()
    only_bundles = bundles and not run_ids and not registry_path(workspace).is_file()
    runs = [] if only_bundles else read_runs(workspace, run_ids)
    for bundle in bundles:
        if read_bundle_manifest(bundle) is None:
            raise BadInputError(f"--bundle {bundle}: not an fmkit bundle (no readable fmkit.json)")
    client = open_client(uri)
    from mlflow.exceptions import MlflowException

    say = echo or (lambda line: None)
    results = []
    try:
        for run in runs:
            results.append(_export_run(client, uri, workspace, run, experiment or run.name, weights))
            say(f"#{run.id} {run.name}: {results[-1].action} ({_count(results[-1].stages)})")
        for bundle in bundles:
            results.append(_export_bundle(client, uri, Path(bundle), experiment or "fmkit", weights))
            say(f"{bundle}: {results[-1].action}")
    except MlflowException as error:
        raise FmkitError(f"MLflow refused the export to {uri}: {error.message}") from error
    return uri, results


def _count(stages: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for action in stages.values():
        counts[action] = counts.get(action, 0) + 1
    return ", ".join(f"{number} stage(s) {action}" for action, number in sorted(counts.items())) or "no stages"


def _export_run(client, uri: str, workspace: Path, run: RunRecord, experiment_name: str, weights: bool) -> Exported:
    experiment = experiment_id(client, experiment_name, uri)
    ident = {"fmkit.workspace": str(workspace), "fmkit.run_id": str(run.id)}
    parent = find_run(client, experiment, {**ident, "fmkit.kind": "recipe-run"})
    if parent is not None and parent.data.tags.get("fmkit.export") == COMPLETE["fmkit.export"]:
        return Exported(f"#{run.id}", parent.info.run_id, experiment_name, "unchanged",
                        {stage.name: "unchanged" for stage in run.stages})
    action = "updated"
    if parent is None:
        action = "created"
        parent = client.create_run(experiment, start_time=iso_ms(run.started), run_name=f"{run.name} #{run.id}", tags={
            **ident, "fmkit.kind": "recipe-run", "fmkit.recipe": run.recipe, "fmkit.run_dir": run.run_dir,
            "mlflow.note.content": f"fmkit recipe run #{run.id} of {run.recipe} ({run.run_dir})"})
    parent_id = parent.info.run_id
    have_params, have_metrics = set(parent.data.params), set(parent.data.metrics)
    stages, digests = {}, {}
    params, metrics = {}, []
    for stage in run.stages:
        stages[stage.name], child_metrics = _export_stage(client, experiment, ident, parent_id, stage, digests, weights)
        params.update(flatten_params(stage.config, f"{stage.name}."))
        metrics += [(f"{stage.name}.{key}", value, 0, timestamp) for key, value, step, timestamp in child_metrics
                    if step == 0]
    log_batches(client, parent_id,
                params={key: value for key, value in params.items() if key not in have_params},
                metrics=[row for row in metrics if row[0] not in have_metrics],
                tags={"fmkit.status": run.status, "fmkit.stages": str(len(run.stages)),
                      **({"fmkit.error": run.error[:5000]} if run.error else {})})
    for name in RUN_FILES:
        if (Path(run.run_dir) / name).is_file():
            client.log_artifact(parent_id, str(Path(run.run_dir) / name), "run")
    if run.status in STATUS:
        client.set_terminated(parent_id, STATUS[run.status], end_time=iso_ms(run.finished) or now_ms())
        client.set_tag(parent_id, "fmkit.export", COMPLETE["fmkit.export"])
    return Exported(f"#{run.id}", parent_id, experiment_name, action, stages)


def _export_stage(client, experiment: str, ident: dict, parent_id: str, stage: StageRecord, digests: dict,
                  weights: bool) -> tuple[str, list]:
    """One nested run for ``stage``; returns what was done and its step-0 metrics (for the parent's columns)."""
    stage_ident = {**ident, "fmkit.kind": "stage", "fmkit.stage_index": str(stage.index)}
    existing = find_run(client, experiment, stage_ident)
    output = Path(stage.output) if stage.output else None
    manifest = read_bundle_manifest(output) if output is not None else None
    if existing is not None and existing.data.tags.get("fmkit.export") == COMPLETE["fmkit.export"]:
        if manifest:
            digests[manifest.get("content_digest")] = existing.info.run_id
        return "unchanged", [(key, value, 0, 0) for key, value in existing.data.metrics.items()
                             if not key.startswith("eval.")]  # eval.* are curves, not one figure
    action = "created"
    if existing is not None:  # a half-written export: its metrics may be partly there, so write it again
        client.delete_run(existing.info.run_id)
        action = "rewritten"
    finished = iso_ms(stage.started) or now_ms()  # the registry records a stage when it finishes
    started = finished - int((stage.seconds or 0) * 1000)
    tags = {**stage_ident, "mlflow.parentRunId": parent_id, "fmkit.stage": stage.stage, "fmkit.stage_name": stage.name,
            "fmkit.cached": str(stage.cached).lower(), "fmkit.cache_key": stage.cache_key, "fmkit.status": stage.status,
            **{f"fmkit.{key}": str(stage.summary[key]) for key in ("study", "trial") if key in stage.summary}}
    child = client.create_run(experiment, start_time=started, run_name=stage.name, tags=tags)
    run_id = child.info.run_id
    summary_metrics = stage.summary.get("metrics") if isinstance(stage.summary.get("metrics"), dict) else {}
    rows = [(key, value, 0, finished) for key, value in flatten_metrics(summary_metrics, depth=3).items()]
    rows.append(("stage.seconds", float(stage.seconds or 0), 0, finished))
    extra_tags = {}
    if manifest is not None:
        bundle_rows = bundle_metrics(manifest, finished)
        keys = {row[0] for row in bundle_rows if row[2] == 0}
        rows = [row for row in rows if row[0] not in keys] + bundle_rows  # the manifest is the record
        extra_tags = bundle_tags(manifest, output)
        maker = digests.get(manifest.get("content_digest"))
        if maker:
            extra_tags["fmkit.bundle_run"] = maker  # an earlier stage made this bundle (evaluate, audit, card)
        parent_run = digests.get(extra_tags.get("fmkit.parent_digest"))
        if parent_run:
            extra_tags["fmkit.parent_run"] = parent_run  # the stage run that made this bundle's parent
        digests.setdefault(manifest.get("content_digest"), run_id)
    params = flatten_params(stage.config or _made_with(manifest))  # a tune trial has no recipe config: its bundle's
    if isinstance(stage.summary.get("params"), dict):
        params.update(flatten_params(stage.summary["params"], "trial."))  # the values a search chose
    log_batches(client, run_id, params=params, metrics=rows, tags=extra_tags)
    if manifest is not None:  # the weights once, with the stage that made them
        log_bundle_artifacts(client, run_id, output, weights=weights and "fmkit.bundle_run" not in extra_tags)
    client.set_terminated(run_id, STAGE_STATUS.get(stage.status, "FAILED"), end_time=finished)
    client.set_tag(run_id, "fmkit.export", COMPLETE["fmkit.export"])
    return action, [row for row in rows if row[2] == 0]


def _made_with(manifest: dict | None) -> dict:
    """The config of the stage that made a bundle (its last lineage entry), {} without one."""
    lineage = [entry for entry in (manifest or {}).get("lineage") or [] if isinstance(entry, dict)]
    return lineage[-1].get("config") or {} if lineage else {}


def _export_bundle(client, uri: str, directory: Path, experiment_name: str, weights: bool) -> Exported:
    """A bundle made outside a recipe (``fmkit finetune --out DIR``) as one run, found again by its digest."""
    manifest = read_bundle_manifest(directory)
    experiment = experiment_id(client, experiment_name, uri)
    ident = {"fmkit.kind": "bundle", "fmkit.bundle_digest": manifest.get("content_digest") or str(directory.resolve())}
    existing = find_run(client, experiment, ident)
    if existing is not None and existing.data.tags.get("fmkit.export") == COMPLETE["fmkit.export"]:
        return Exported(str(directory), existing.info.run_id, experiment_name, "unchanged")
    if existing is not None:
        client.delete_run(existing.info.run_id)
    lineage = [entry for entry in manifest.get("lineage") or [] if isinstance(entry, dict)]
    finished = iso_ms(lineage[-1].get("time")) if lineage else None
    finished = finished or now_ms()
    run = client.create_run(experiment, start_time=finished, run_name=directory.name,
                            tags={**ident, "fmkit.stage": str(lineage[-1].get("stage")) if lineage else ""})
    log_batches(client, run.info.run_id, params=flatten_params(_made_with(manifest)),
                metrics=bundle_metrics(manifest, finished), tags=bundle_tags(manifest, directory))
    log_bundle_artifacts(client, run.info.run_id, directory, weights=weights)
    client.set_terminated(run.info.run_id, "FINISHED", end_time=finished)
    client.set_tag(run.info.run_id, "fmkit.export", COMPLETE["fmkit.export"])
    return Exported(str(directory), run.info.run_id, experiment_name, "created" if existing is None else "rewritten")
