"""``fmkit audit``: run registered audit checks on a bundle and record each in its manifest (``audits.*``).

The checks are ``fmkit.audit.checks.AUDIT_CHECKS`` (fairness, counterfactual, robustness, explanations,
pii, privacy; one file each). ``AuditConfig`` is the settings they share (rows, seed, device) plus
every check's own fields, so the CLI and recipes reach each one. Fairness and privacy read their own
rows; the others share a seeded sample of ``max_rows`` rows, explanations the first ``explain_rows``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from fmkit.audit.checks import AUDIT_CHECKS, AuditContext
from fmkit.audit.checks.base import check_capabilities

CHECKS = tuple(AUDIT_CHECKS)


class AuditSettings(BaseModel):
    """What every check shares; ``AuditConfig`` adds the checks' own fields."""

    model_config = ConfigDict(extra="forbid")

    checks: list[Literal[CHECKS]] = Field(default_factory=lambda: list(CHECKS), description="which checks to run")
    data: str | None = Field(None, description="file or built-in dataset (default: the bundle's training data)")
    split: Literal["train", "validation", "test", "all"] = Field("test", description="rows to audit")
    max_rows: int = Field(1000, ge=1, description="rows sampled for counterfactual, robustness, pii")
    seed: int = Field(0, description="seed of sampling, bootstrap and perturbations")
    batch_size: int = Field(64, ge=1, description="texts per inference batch")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    progress: bool = Field(True, description="show progress bars")

    @model_validator(mode="after")
    def _check(self) -> "AuditSettings":
        errors = [] if self.checks else [f"checks is empty; name one or more of {', '.join(CHECKS)}"]
        for name in CHECKS:  # every check's own validators, all errors at once
            try:
                check_options(self, name)
            except ValidationError as error:
                errors += [e["msg"].removeprefix("Value error, ") for e in error.errors()]
        if errors:
            raise ValueError("; ".join(errors))
        return self


def check_options(cfg: BaseModel, name: str) -> BaseModel:
    """Check ``name``'s own config, read from the flat ``cfg``."""
    options = AUDIT_CHECKS.get(name).options
    return options.model_validate({field: getattr(cfg, field) for field in options.model_fields if hasattr(cfg, field)})


def _check_fields() -> dict:
    fields: dict = {}
    for name in CHECKS:
        for field, info in AUDIT_CHECKS.get(name).options.model_fields.items():
            if field in AuditSettings.model_fields:
                raise TypeError(f"audit check {name!r}: {field!r} is a shared setting; read it from context.settings")
            earlier = fields.get(field)
            if earlier and (earlier[0], earlier[1].default) != (info.annotation, info.default):
                raise TypeError(f"audit check {name!r}: {field!r} differs from another check's field of that name")
            fields.setdefault(field, (info.annotation, info))
    return fields


AuditConfig = create_model("AuditConfig", __base__=AuditSettings, __module__=__name__, **_check_fields())
AuditConfig.__doc__ = "``fmkit audit`` / the audit recipe stage: which checks, the shared settings, each check's own."


def run_audit(bundle: Path, cfg: AuditSettings, *, record: bool = True, log=print) -> dict:
    """Run ``cfg.checks`` on ``bundle``; returns {check: result} and writes each into the manifest."""
    from fmkit.bundle import read_manifest

    bundle = Path(bundle)
    context = AuditContext(bundle, read_manifest(bundle), cfg, record)
    names = [name for name in CHECKS if name in cfg.checks]
    check_capabilities(bundle, context.manifest, names)
    results: dict[str, dict] = {}
    for name in names:
        check = AUDIT_CHECKS.get(name)
        started = time.perf_counter()
        result = check.run(context, check_options(cfg, name))
        if result is None:
            continue
        log(f"  {name}: {check.summary(result)}")
        result["seconds"] = round(time.perf_counter() - started, 2)
        results[name] = result
    if record:
        record_sampled(context, {name: r for name, r in results.items() if AUDIT_CHECKS.get(name).sampled})
    return results


def record_sampled(context: AuditContext, results: dict[str, dict]) -> None:
    """The sampled checks' results, with the rows they saw, into reports/audit_<check>.json and ``audits.*``."""
    from fmkit.bundle import update_manifest
    from fmkit.bundle.store import REPORTS_DIR
    from fmkit.fileio import write_json_atomic

    for check, result in results.items():
        result.update({"split": context.rows.split, "data_fingerprint": context.rows.data_fingerprint})
        write_json_atomic(context.bundle / REPORTS_DIR / f"audit_{check}.json", result)

    def change(manifest):
        for check, result in results.items():
            manifest.audits[check] = result

    update_manifest(context.bundle, change)
