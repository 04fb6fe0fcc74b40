"""Registers the audit-side recipe stages: gate (a broken rule stops the pipeline), audit (the registered
checks), mitigate, card, and report (the run's frontier page, fmkit/recipe/report.py)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from fmkit.audit.gate import Policy
from fmkit.recipe.stages import STAGES, StageContext, StageResult, StageSpec


class GateStageConfig(Policy):
    model_config = ConfigDict(extra="forbid")

    bundle: str = Field(description="an earlier stage's name, or a bundle directory")


def _run(cfg: GateStageConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.audit.gate import check_policy, read_gated_manifest
    from fmkit.errors import CheckFailedError

    results = check_policy(read_gated_manifest(cfg.bundle), Policy(**cfg.model_dump(exclude={"bundle"})))
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


# -- audit: the registered checks (fmkit/audit/checks/) ------------------------------------------
from fmkit.audit.mitigate import MitigateConfig  # noqa: E402  (light: no heavy import at module level)
from fmkit.audit.run import CHECKS, AuditConfig  # noqa: E402


class AuditStageConfig(AuditConfig):
    model_config = ConfigDict(extra="forbid")

    bundle: str = Field(description="an earlier stage's name, or a bundle directory")


def _run_audit(cfg: AuditStageConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.audit.run import run_audit
    from fmkit.fileio import write_json_atomic

    results = run_audit(Path(cfg.bundle), AuditConfig(**cfg.model_dump(exclude={"bundle"})), log=context.log)
    write_json_atomic(out.with_suffix(".json"), results)
    headline = {}
    for attribute, values in results.get("fairness", {}).items():
        if "demographic_parity_difference" in values:
            headline[f"fairness.{attribute}.dp_difference"] = values["demographic_parity_difference"]
    if "robustness" in results:
        headline["robustness.min_stability_rate"] = results["robustness"]["min_stability_rate"]
    if "counterfactual" in results and "flip_rate" in results["counterfactual"]:
        headline["counterfactual.flip_rate"] = results["counterfactual"]["flip_rate"]
    return StageResult(Path(cfg.bundle), headline)


STAGES.register("audit")(
    StageSpec(AuditStageConfig, references=("bundle",), run=_run_audit, produces_bundle=False,
              description="the registered audit checks (" + ", ".join(CHECKS) + ") into the manifest")
)


class MitigateStageConfig(MitigateConfig):
    model_config = ConfigDict(extra="forbid")

    bundle: str = Field(description="an earlier stage's name, or a bundle directory")


def _run_mitigate(cfg: MitigateStageConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.audit.mitigate import mitigate_fairness
    from fmkit.bundle import read_manifest

    rule = mitigate_fairness(Path(cfg.bundle), out, MitigateConfig(**cfg.model_dump(exclude={"bundle"})),
                             overwrite=True)
    values = read_manifest(out).audits["fairness"][rule["attribute"]]  # audited before it was published
    context.log(f"  {rule['attribute']}: demographic parity difference {values.get('demographic_parity_difference')}")
    return StageResult(out, {f"fairness.{rule['attribute']}.dp_difference": values.get("demographic_parity_difference")})


STAGES.register("mitigate")(
    StageSpec(MitigateStageConfig, references=("bundle",), run=_run_mitigate,
              description="per-group decision thresholds (Fairlearn ThresholdOptimizer) -> a new bundle")
)


class CardStageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bundle: str = Field(description="an earlier stage's name, or a bundle directory")


def _run_card(cfg: CardStageConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.audit.card import write_card

    markdown_path, _ = write_card(Path(cfg.bundle))
    context.log(f"  card: {markdown_path}")
    return StageResult(Path(cfg.bundle), {"card": str(markdown_path)})


STAGES.register("card")(
    StageSpec(CardStageConfig, references=("bundle",), run=_run_card, produces_bundle=False,
              description="MODEL_CARD.md + card.html from the bundle's manifest")
)


class ReportStageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    measure: bool = Field(True, description="measure bundles whose speed was never measured")
    threads: int | None = Field(None, ge=1, description="threads for measuring (default: all cores)")


def _run_report(cfg: ReportStageConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.recipe.report import write_report

    page, rows = write_report(context.run_dir, out=out, measure=cfg.measure, threads=cfg.threads)
    context.log(f"  report: {page} ({len(rows)} bundles; frontier: "
                f"{', '.join(r['name'] for r in rows if r['pareto'])})")
    return StageResult(None, {"report": str(page), "frontier": [r["name"] for r in rows if r["pareto"]]})


STAGES.register("report")(
    StageSpec(ReportStageConfig, references=(), run=_run_report, produces_bundle=False, cacheable=False,
              description="one HTML page comparing every bundle of the run (the frontier)")
)
