"""One trial: the sampled settings -> a fine-tuned (optionally distilled, quantized) bundle -> its objective values.

The trial's bundle is ``OUT/trials/<number>``; when the space adds compression stages, the bundles
before the last stage live in ``OUT/trials/<number>.stages/`` and the final bundle's lineage names
them. Every number an objective reads is written into the final bundle's manifest first
(validation metrics of a compressed variant, the runtime benchmark on validation texts, the
fairness audit), so the study and ``fmkit report`` read the same figures. Each trial is recorded in
the workspace run registry (complete, pruned or failed).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fmkit.tune.objectives import read_value
from fmkit.tune.space import Dimension, apply_params


@dataclass
class TrialPlan:
    """What every trial of this worker shares: the settings, the space, the loaded data, where to write."""

    cfg: object  # TuneConfig
    base_settings: dict  # the finetune settings without the space (JSON)
    validate: Callable  # settings -> a validated finetune config
    dimensions: list[Dimension]
    out: Path
    data: object  # the dataset, loaded once per worker
    registry: object  # fmkit.recipe.registry_db.RunRegistry
    run_id: int
    echo: Callable[[str], None]
    keep_checkpoints: bool = False
    callbacks: list = field(default_factory=list)
    worker: str = ""  # host:pid:run, recorded with each trial

    def trial_dir(self, number: int) -> Path:
        return self.out / "trials" / str(number)


def run_trial(plan: TrialPlan, trial) -> list[float]:
    """Train and measure trial ``trial`` (an ``optuna.Trial``); returns one value per objective."""
    import optuna

    from fmkit.finetune.stage import checkpoint_dir_for, run_finetune

    values = {d.parameter.name: d.suggest(trial) for d in plan.dimensions}
    settings, stages = apply_params(plan.base_settings, plan.dimensions, values)
    cfg = plan.validate(settings)
    final = plan.trial_dir(trial.number)
    chain = [name for name in ("distill", "quantize") if _wants(name, stages)]
    work = final.with_name(f"{trial.number}.stages")
    finetuned = work / "finetune" if chain else final
    trial.set_user_attr("bundle", str(final))
    trial.set_user_attr("worker", plan.worker)
    trial.set_user_attr("stages", ["finetune", *chain])
    plan.echo(f"trial {trial.number}: " + ", ".join(f"{k}={_short(v)}" for k, v in values.items()))
    started = time.time()
    from fmkit.tune.pruning import PruningCallback

    try:
        manifest = run_finetune(cfg, finetuned, data=plan.data, echo=plan.echo, keep_checkpoints=plan.keep_checkpoints,
                                callbacks=[PruningCallback(trial, plan.cfg), *plan.callbacks])
        trial.set_user_attr("train_steps", manifest.training.get("steps"))
        parent = finetuned
        for index, name in enumerate(chain):
            target = final if index == len(chain) - 1 else work / name
            parent = _compress(name, parent, target, stages, cfg, plan.echo)
        measurements = _measure(plan, final, compressed=bool(chain), data=plan.data)
    except optuna.TrialPruned as pruned:
        shutil.rmtree(checkpoint_dir_for(finetuned), ignore_errors=True)
        _record(plan, trial, "pruned", None, time.time() - started, {"pruned": str(pruned), "params": values})
        raise
    except BaseException as error:
        _record(plan, trial, "failed", None, time.time() - started, {"error": str(error)[:500], "params": values})
        raise
    seconds = time.time() - started
    results = [read_value(spec, measurements["manifest"], final) for spec in plan.cfg.objectives]
    trial.set_user_attr("seconds", round(seconds, 2))
    trial.set_user_attr("measurements", measurements["figures"])
    trial.set_user_attr("content_digest", measurements["manifest"].content_digest)
    _record(plan, trial, "complete", measurements["manifest"], seconds,
            {"params": values, "values": dict(zip([s.name for s in plan.cfg.objectives], results))})
    return results


def _wants(stage: str, stages: dict) -> bool:
    return bool(stages.get("distill_layers")) if stage == "distill" else bool(stages.get("quantize"))


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _compress(name: str, parent: Path, out: Path, stages: dict, cfg, echo) -> Path:
    """Distil or quantize ``parent`` into ``out``; the search judges the variant, so the accuracy budget is off."""
    from fmkit.compress.config import CompressConfig
    from fmkit.compress.stage import run_compress

    train = cfg.train
    if name == "distill":
        method = {"name": "distill", "student_layers": int(stages["distill_layers"]), "train": {
            "epochs": train.epochs if isinstance(train.epochs, int) else 3, "batch_size": train.batch_size,
            "precision": train.precision, "progress": train.progress, "seed": train.seed,
            "num_threads": train.num_threads, "device": train.device}}
    else:
        method = {"name": "quantize-dynamic"}
    run_compress(parent, CompressConfig(method=method, max_accuracy_drop=100, measure={"enabled": False},
                                        seed=train.seed), out, log=echo)
    return out


def _validation_rows(bundle: Path, data) -> list[int]:
    from fmkit.bundle.split import split_rows

    return split_rows(bundle, data, "validation")


def _measure(plan: TrialPlan, final: Path, *, compressed: bool, data) -> dict:
    """Write what the objectives read into ``final``'s manifest; returns {manifest, figures (every objective found)}."""
    from fmkit.bundle import read_manifest, update_manifest
    from fmkit.tune.objectives import OBJECTIVES

    needs = {spec.objective.needs for spec in plan.cfg.objectives}
    manifest = read_manifest(final)
    rows = _validation_rows(final.with_name(f"{final.name}.stages") / "finetune" if compressed else final, data)
    texts = [data.texts[i] for i in rows] if hasattr(data, "texts") else None
    if compressed and "validation" in needs:
        from fmkit.compress.stage import evaluate_variant

        if texts is None:
            from fmkit.errors import BadInputError

            raise BadInputError(f"{manifest.task}: validation metrics of a distilled or quantized trial are measured "
                                "on texts only; drop distill_layers/quantize from the space")
        metrics = evaluate_variant(final, texts, [data.labels[i] for i in rows], manifest.labels)
        update_manifest(final, lambda m: m.metrics.__setitem__("validation", metrics))
    if "benchmark" in needs and not read_manifest(final).benchmarks.get(manifest.runtime):
        from fmkit.compress.config import MeasureConfig
        from fmkit.compress.tasks import compress_hooks

        if texts is None:
            from fmkit.errors import BadInputError

            raise BadInputError(f"{manifest.task}: latency and size objectives are measured on validation texts; "
                                "this task has none")
        figures = compress_hooks(manifest).measure(final, texts, MeasureConfig(
            latency_samples=plan.cfg.latency_samples, threads=plan.cfg.measure_threads))
        update_manifest(final, lambda m: m.benchmarks.__setitem__(figures["runtime"], figures))
    if "fairness" in needs:
        from fmkit.audit.run import AuditConfig, run_audit

        settings = {"checks": ["fairness"], "split": "validation", "progress": False}
        if plan.cfg.fairness_sensitive:
            settings["sensitive"] = list(plan.cfg.fairness_sensitive)
        run_audit(final, AuditConfig(**settings), log=plan.echo)
    manifest = read_manifest(final)
    figures = {name: objective.read(manifest) for name, objective in OBJECTIVES.items()}
    return {"manifest": manifest, "figures": {k: v for k, v in figures.items() if v is not None}}


def _record(plan: TrialPlan, trial, status: str, manifest, seconds: float, summary: dict) -> None:
    """The trial in the workspace run registry: a stage of this worker's run, and its bundle with its metrics."""
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    study = trial.study.study_name
    bundle = str(plan.trial_dir(trial.number)) if manifest is not None else None
    plan.registry.record_trial(plan.run_id, study, trial.number, status, bundle, seconds,
                               {"study": study, "trial": trial.number, **summary}, now)
    if manifest is not None:
        plan.registry.record_bundle(manifest, plan.trial_dir(trial.number), now)
