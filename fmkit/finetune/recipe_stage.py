"""Registers ``finetune`` as a recipe stage (text or image classification, by the stage's task)."""

from __future__ import annotations

from pathlib import Path

from fmkit.finetune.config import FinetuneConfig
from fmkit.recipe.stages import STAGES, StageContext, StageResult, StageSpec


def _config_for(raw: dict):
    from fmkit.tasks import TASKS, task_of_settings

    return TASKS.get(task_of_settings(raw)).get("finetune_config")


def _run(cfg, out: Path, context: StageContext) -> StageResult:
    from fmkit.finetune.stage import run_finetune

    manifest = run_finetune(cfg, out, overwrite=True, echo=lambda line: context.log("  " + line))  # schedule, warnings
    from fmkit.tasks import TASKS

    keys = TASKS.get(manifest.task).headline_metrics[:2]  # a classifier's accuracy and macro-F1; retrieval's MRR@10, R@1
    headline = {split: {k: m[k] for k in keys} for split, m in manifest.metrics.items()}
    return StageResult(out, {"metrics": headline, "samples_per_second": manifest.training["samples_per_second"]})


STAGES.register("finetune")(
    StageSpec(FinetuneConfig, references=("model", "data.source"), run=_run, config_for=_config_for,
              description="base model + labelled data (texts or images) -> task bundle")
)
