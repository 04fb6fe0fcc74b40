"""Registers ``evaluate`` as a recipe stage."""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field

from fmkit.evaluate.stage import EvaluateConfig
from fmkit.recipe.stages import STAGES, StageContext, StageResult, StageSpec


class EvaluateStageConfig(EvaluateConfig):
    model_config = ConfigDict(extra="forbid")

    bundle: str = Field(description="an earlier stage's name, or a bundle directory")


def _run(cfg: EvaluateStageConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.evaluate.stage import evaluate_bundle
    from fmkit.fileio import write_json_atomic

    settings = cfg.model_dump(exclude={"bundle"})
    metrics = evaluate_bundle(Path(cfg.bundle), EvaluateConfig(**settings))
    write_json_atomic(out.with_suffix(".json"), metrics)
    return StageResult(Path(cfg.bundle), {"metrics": {cfg.split: {k: metrics[k] for k in ("accuracy", "macro_f1")}}})


STAGES.register("evaluate")(
    StageSpec(EvaluateStageConfig, references=("bundle",), run=_run, produces_bundle=False,
              description="metrics of a bundle on a split, written into its manifest")
)
