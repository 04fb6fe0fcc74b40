"""Registers ``finetune`` as a recipe stage."""

from __future__ import annotations

from pathlib import Path

from fmkit.finetune.config import FinetuneConfig
from fmkit.recipe.stages import STAGES, StageContext, StageResult, StageSpec


def _run(cfg: FinetuneConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.finetune.stage import run_finetune

    manifest = run_finetune(cfg, out, overwrite=True)
    headline = {split: {k: m[k] for k in ("accuracy", "macro_f1")} for split, m in manifest.metrics.items()}
    return StageResult(out, {"metrics": headline, "samples_per_second": manifest.training["samples_per_second"]})


STAGES.register("finetune")(
    StageSpec(FinetuneConfig, references=("model", "data.source"), run=_run, description="base model + labelled data -> task bundle")
)
