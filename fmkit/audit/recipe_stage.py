"""Registers ``gate`` as a recipe stage: a broken rule stops the pipeline."""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field

from fmkit.audit.gate import Policy
from fmkit.recipe.stages import STAGES, StageContext, StageResult, StageSpec


class GateStageConfig(Policy):
    model_config = ConfigDict(extra="forbid")

    bundle: str = Field(description="an earlier stage's name, or a bundle directory")


def _run(cfg: GateStageConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.audit.gate import check_policy
    from fmkit.bundle import read_manifest
    from fmkit.errors import CheckFailedError

    results = check_policy(read_manifest(cfg.bundle), Policy(**cfg.model_dump(exclude={"bundle"})))
    for result in results:
        context.log("  " + result.describe())
    broken = [r for r in results if not r.passed]
    if broken:
        raise CheckFailedError(f"gate on {cfg.bundle}: {len(broken)} rule(s) broken: "
                               + "; ".join(r.describe() for r in broken))
    return StageResult(Path(cfg.bundle), {"gate": "passed", "rules": len(results)})


STAGES.register("gate")(
    StageSpec(GateStageConfig, references=("bundle",), run=_run, produces_bundle=False,
              description="policy rules over a bundle's manifest; a broken rule stops the run")
)
