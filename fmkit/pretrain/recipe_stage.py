"""Registers ``pretrain`` as a recipe stage."""

from __future__ import annotations

from pathlib import Path

from fmkit.pretrain.config import PretrainConfig
from fmkit.recipe.stages import STAGES, StageContext, StageResult, StageSpec


def _run(cfg: PretrainConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.pretrain.stage import run_pretrain

    manifest = run_pretrain(cfg, out, overwrite=True)
    heldout = manifest.metrics.get("heldout", {})
    return StageResult(out, {"masked_accuracy": heldout.get("masked_accuracy"), "perplexity": heldout.get("perplexity"),
                             "tokens_per_second": manifest.training["tokens_per_second"]})


STAGES.register("pretrain")(
    StageSpec(PretrainConfig, references=("from_model",), run=_run,
              description="text corpus -> masked-LM base bundle (from scratch or continued)")
)
