"""``finetune``: a base model + labelled data -> an evaluated task bundle, for every task.

One pipeline: refuse a taken ``out``, load the data, let the task adapter (fmkit/tasks/) build
the model and each split's inputs, train with the shared loop (DP-SGD through its hooks where
the task can), score validation and test, write the bundle with its split and confusion
matrices. What differs between text and images lives in the adapter, not here.
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Callable

from fmkit.bundle import LineageEntry, Manifest, write_bundle
from fmkit.errors import BadInputError
from fmkit.train.losses import criterion_for


def checkpoint_dir_for(out: Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".checkpoints")


def headline_metrics(metrics: dict, keys=("accuracy", "macro_f1", "log_loss")) -> dict:
    """What the training loop logs and early-stops on after each evaluation: the task's headline metrics
    (``TaskAdapter.headline_metrics``; a classifier's accuracy, macro-F1 and log-loss)."""
    return {k: metrics[k] for k in keys}


def check_method(task, cfg) -> None:
    """The finetune method and DP are ones the task trains with; DP's limits on the TrainConfig hold."""
    able = task.capabilities.finetune_methods
    if cfg.method_name not in able:
        raise BadInputError(f"{task.name} fine-tunes with {', '.join(able) or 'no method'}, not {cfg.method_name!r}")
    if getattr(cfg, "privacy", None) is None:
        return
    if not task.capabilities.dp:
        raise BadInputError(f"--privacy dp: DP-SGD fine-tuning is not available for {task.name}")
    problems = []
    if cfg.train.gradient_accumulation_steps != 1:
        problems.append(f"gradient_accumulation_steps={cfg.train.gradient_accumulation_steps}: with DP the "
                        "logical batch is batch_size (Poisson-sampled); set it to 1")
    if cfg.train.precision in ("fp16", "bf16"):
        problems.append(f"precision={cfg.train.precision}: DP-SGD runs in fp32 here (per-sample clipping in "
                        "low precision is unvalidated); use auto or fp32")
    if cfg.train.max_steps is not None:
        problems.append("max_steps: the DP budget is planned over whole epochs; leave max_steps unset")
    if cfg.train.learning_rate == "auto":
        problems.append("learning_rate=auto: the range test would train on the private data without noise; give a "
                        "learning rate")
    if problems:
        raise BadInputError("--privacy dp: " + "; ".join(problems))


def run_finetune(cfg, out: Path, *, resume: bool = False, overwrite: bool = False, keep_checkpoints: bool = False,
                 data=None, hooks=None, echo: Callable[[str], None] | None = None, callbacks=()) -> Manifest:
    """Fine-tune ``cfg.model`` on ``cfg.data`` and write the bundle ``out`` (the task is ``cfg``'s: text by default).

    ``data`` skips loading (an already loaded dataset); ``hooks`` wrap the training loop (tests, DP brings its own);
    ``echo`` gets the run's choices and warnings as lines (default: the ``fmkit.finetune`` logger);
    ``callbacks`` (fmkit/train/callbacks.py) watch training: a search's pruner, live tracking.

    Under torchrun every rank trains (fmkit/train/distributed.py); rank 0 alone scores the test split and writes the
    bundle, and every rank returns its manifest. A restart by ``torchrun --max-restarts`` resumes from the last
    checkpoint.
    """
    echo = echo or logging.getLogger("fmkit.finetune").info
    from fmkit.tasks import TASKS, task_of_config
    from fmkit.train import distributed, train
    from fmkit.train.precision import select_device

    ranks = distributed.setup(cfg.train.device)
    if not ranks.is_main:
        echo = _quiet  # one log for the job: rank 0's
    resume = resume or ranks.restart_count > 0
    out = Path(out)
    if out.exists() and not overwrite:
        raise BadInputError(f"{out} already exists; choose another --out or pass --overwrite")
    task = TASKS.get(task_of_config(cfg))
    check_method(task, cfg)
    if ranks.active and getattr(cfg, "privacy", None) is not None:
        raise BadInputError(f"--privacy dp with {ranks.world_size} ranks: DP-SGD's accountant and Poisson sampling "
                            "assume one process here; train DP in one process (without torchrun / --nproc)")
    started = time.time()
    data = data or task.load_data(cfg.data)
    label2id = {label: index for index, label in enumerate(data.label_names)}
    label_ids = {name: [label2id[data.labels[i]] for i in rows] for name, rows in data.splits.items()}
    if not label_ids["train"]:  # before the base model is loaded and every split encoded
        raise BadInputError(f"{cfg.data.source}: the training split is empty; add {task.examples} or lower the "
                            "held-out fractions")
    cfg, choice = task.resolve_config(cfg, data) if task.resolve_config is not None else (cfg, {})
    if choice:
        echo(choice["reason"])
    setup = task.prepare(cfg, data)
    if choice:
        setup.facts["model_choice"] = choice
    if cfg.train.learning_rate is None:
        update = {"learning_rate": setup.default_learning_rate}
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=update)})
    model, device = setup.model, select_device(cfg.train.device)

    def evaluate_split(name: str):
        return lambda m: task.split_metrics(setup, m, setup.inputs[name], label_ids[name], data.label_names, device)

    train_cfg, dp_hooks, planned = cfg.train, None, None
    criterion, loss_facts = criterion_for(getattr(cfg, "loss", None), label_ids["train"], len(data.label_names))
    loss_fn = functools.partial(task.loss, criterion=criterion) if criterion is not None else task.loss
    if getattr(cfg, "privacy", None) is not None:
        cfg, planned = planned_for_privacy(cfg, len(label_ids["train"]), bool(label_ids["validation"]))
        train_cfg, hooks = private_training(task, setup, cfg, label_ids["train"], hooks)
        dp_hooks = hooks
        if criterion is not None:
            warnings.warn("class weights and focal loss do not apply with DP-SGD (Opacus clips through its own "
                          "cross-entropy); training with plain cross-entropy", stacklevel=2)
            loss_facts["applied"] = False
    if loss_facts.get("class_weights", {}).get("mode", "none") != "none":
        echo(f"class weights: {loss_facts['class_weights']['mode']} (largest/smallest class ratio "
             f"{loss_facts['class_weights']['imbalance_ratio']}, threshold {loss_facts['class_weights']['threshold']})")
    has_validation = bool(label_ids["validation"])
    if not has_validation:
        warnings.warn("no validation split: early stopping is off and the last epoch is kept", stacklevel=2)
    checkpoints = checkpoint_dir_for(out)
    result = train(
        model, task.batches(setup, cfg, setup.inputs["train"], label_ids["train"]), train_cfg, loss_fn=loss_fn,
        evaluate_fn=(lambda m: headline_metrics(evaluate_split("validation")(m), task.headline_metrics))
        if has_validation else None, selection_metric=task.selection_metric,
        checkpoint_dir=checkpoints, resume=resume, hooks=hooks, default_learning_rate=setup.default_learning_rate,
        announce=echo, callbacks=callbacks,
    )
    if dp_hooks is not None:
        dp_hooks.cleanup()
    return distributed.on_main(ranks, lambda: _score_and_write(
        task, setup, cfg, data, label_ids, model, result, started, dp_hooks, loss_facts, planned, evaluate_split,
        out, overwrite, keep_checkpoints, checkpoints, echo))


def _quiet(line: str) -> None:
    return None


def _score_and_write(task, setup, cfg, data, label_ids, model, result, started, dp_hooks, loss_facts, planned,
                     evaluate_split, out, overwrite, keep_checkpoints, checkpoints, echo) -> Manifest:
    """After training (rank 0 under torchrun): score validation and test, the checks, the bundle."""
    metrics = {name: evaluate_split(name)(model) for name in ("validation", "test") if label_ids[name]}
    checks = {**loss_facts, **({"schedule": planned.as_dict()} if planned else {})}
    checks.update(training_checks(task, cfg, data, label_ids, metrics, {**result.as_dict(), **checks}, echo))

    manifest = finetune_manifest(task, setup, cfg, data, metrics, result, time.time() - started,
                                 private=dp_hooks is not None)
    manifest.training.update(checks)

    def write_files(directory: Path) -> None:
        manifest.training.update(task.save(setup, model, cfg, directory))
        write_split_and_confusion(directory, data, cfg.data.seed, metrics, out.name)

    from fmkit.evaluate.reference import write_reference  # the drift reference `fmkit serve --watch` reads

    manifest = write_bundle(out, manifest, write_files, overwrite=overwrite, before_publish=lambda directory, sealed:
                            write_reference(directory, data=data, rows=data.splits.get("test"), manifest=sealed,
                                            log=echo))
    if not keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return manifest


def write_split_and_confusion(directory: Path, data, split_seed: int, metrics: dict, title: str) -> None:
    """The bundle's ``split.json`` (indices + data fingerprint) and a confusion-matrix PNG per evaluated split."""
    from fmkit.bundle.split import write_split
    from fmkit.bundle.store import REPORTS_DIR
    from fmkit.evaluate.plots import plot_confusion_matrix

    write_split(directory, data.fingerprint, split_seed, data.splits)
    for name, split_metrics in metrics.items():
        if "confusion_matrix" not in split_metrics:  # a task that ranks (retrieval) has no confusion matrix
            continue
        plot_confusion_matrix(split_metrics["confusion_matrix"], directory / REPORTS_DIR / f"confusion_{name}.png",
                              f"{title}: {name}")


def training_checks(task, cfg, data, label_ids, metrics: dict, training: dict, echo) -> dict:
    """After training: collapse detection (``status``, ``collapse``) and the frozen-embedding baseline (``baseline``);
    each problem is a loud warning and a line for ``echo``."""
    from fmkit.evaluate.baseline import baseline_warning, frozen_baseline
    from fmkit.finetune.collapse import collapse_message, detect_collapse

    facts: dict = {"status": "ok"}
    split = "validation" if "validation" in metrics else "test"
    evidence = detect_collapse(metrics[split]) if split in metrics else None
    if evidence is not None:
        facts.update(status="degenerate", collapse={"split": split, **evidence})
        _loudly(collapse_message(evidence, split, training), echo)
    baseline = frozen_baseline(task, cfg, data, label_ids)
    if baseline is not None:
        facts["baseline"] = baseline
        message = baseline_warning(metrics["test"], baseline) if "test" in metrics else None
        if message:
            _loudly(message, echo)
    return facts


def _loudly(message: str, echo) -> None:
    warnings.warn(message, stacklevel=4)  # the caller of run_finetune
    echo(f"WARNING: {message}")


def planned_for_privacy(cfg, train_rows: int, evaluates: bool):
    """(cfg with concrete epochs and patience, the plan): DP-SGD calibrates its noise to the epochs before training.

    ``epochs: auto`` keeps DP at the 3 epochs it always had: more epochs spend the same ε over more steps, so
    each step gets more noise, and the step-budget reasoning of fmkit/train/schedule.py does not carry over.
    """
    import dataclasses
    import math

    from fmkit.train.schedule import AUTO_MIN_EPOCHS, plan_schedule

    if cfg.train.epochs != "auto" and cfg.train.early_stopping_patience != "auto":
        return cfg, None
    train_cfg = cfg.train
    if train_cfg.epochs == "auto":
        train_cfg = train_cfg.model_copy(update={"epochs": AUTO_MIN_EPOCHS})
    plan = plan_schedule(train_cfg, math.ceil(train_rows / cfg.train.batch_size), evaluates=evaluates)
    if cfg.train.epochs == "auto":
        plan = dataclasses.replace(plan, source="privacy", reason=plan.reason.replace(
            f"epochs={AUTO_MIN_EPOCHS} given", f"DP-SGD keeps {AUTO_MIN_EPOCHS} epochs (its noise is calibrated to them)"))
    return cfg.model_copy(update={"train": plan.apply(train_cfg)}), plan


def private_training(task, setup, cfg, train_label_ids, hooks):
    """(TrainConfig, hooks) of a DP-SGD run: the task's DP hooks, per-example clipping instead of global, fp32."""
    if hooks is not None:
        raise BadInputError("DP fine-tuning brings its own training hooks; do not pass others")
    hooks = task.dp_hooks(setup, cfg, setup.inputs["train"], train_label_ids)
    return cfg.train.model_copy(update={"max_grad_norm": None, "precision": "fp32"}), hooks


def finetune_manifest(task, setup, cfg, data, metrics: dict, result, seconds: float, *, private: bool) -> Manifest:
    """The new bundle's manifest: the parent's lineage plus this fine-tune, its metrics, data and training facts."""
    return Manifest(
        task=task.name, labels=data.label_names, base_model=setup.base, **setup.manifest_fields,
        lineage=setup.parent_lineage + [LineageEntry(
            stage="finetune", config=cfg.model_dump(mode="json"), parent_digest=setup.base.get("digest"),
            parent=setup.parent, data_fingerprint=data.fingerprint)],
        metrics=metrics, data=data.summary(),
        training={**result.as_dict(), "method": cfg.method_name, **setup.facts, "wall_seconds": round(seconds, 1)},
        privacy={"dp": result.hooks} if private else {},
    )
