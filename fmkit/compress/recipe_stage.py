"""Registers ``compress`` as a recipe stage (chain: distill -> prune-structured -> quantize-static)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field

from fmkit.compress.config import CompressConfig
from fmkit.recipe.stages import STAGES, StageContext, StageResult, StageSpec


class CompressStageConfig(CompressConfig):
    model_config = ConfigDict(extra="forbid")

    bundle: str = Field(description="an earlier stage's name, or a bundle directory")


def _run(cfg: CompressStageConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.compress.stage import run_compress

    manifest = run_compress(Path(cfg.bundle), CompressConfig(**cfg.model_dump(exclude={"bundle"})), out,
                            overwrite=True, log=context.log)
    figures = next(iter(manifest.benchmarks.values()), {})
    return StageResult(out, {
        "metrics": {"test": {k: manifest.metrics["test"][k] for k in ("accuracy", "macro_f1")}},
        "accuracy_drop_points": manifest.compression["accuracy_drop_points"],
        "total_accuracy_drop_points": manifest.compression["total_accuracy_drop_points"],
        "latency_p50_ms": figures.get("latency_p50_ms"), "throughput_per_second": figures.get("throughput_per_second"),
        "size_bytes": figures.get("size_bytes"),
    })


STAGES.register("compress")(
    StageSpec(CompressStageConfig, references=("bundle",), run=_run,
              description="quantize, prune or distill a bundle; measured; accuracy budget enforced")
)
