"""What an audit check is (``AuditCheck``), what it is handed (``AuditContext``), and the registry
every check file joins (``AUDIT_CHECKS``).

A check declares the capabilities it needs from the bundle (``requires``); ``bundle_capabilities``
is the one place that answers, so a bundle that cannot take a check is refused before any runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pydantic import BaseModel

from fmkit.errors import BadInputError
from fmkit.registry import Registry

TEXT_INPUT = "text-input"  # the model reads texts (the sampled checks feed it texts)
EXPLANATIONS = "explanations"  # integrated gradients over word embeddings apply
TEXT_ONLY_DECISIONS = "text-only-decisions"  # its decisions need no group columns (no per-group thresholds)


@dataclass(frozen=True)
class AuditCheck:
    options: type[BaseModel]  # its own settings (docstring: what it measures); each field is also in AuditConfig
    run: Callable[["AuditContext", BaseModel], dict | None]  # None: skipped (a warning said why)
    summary: Callable[[dict], str]  # the result in one log line
    requires: tuple[str, ...] = (TEXT_INPUT,)
    # True: it runs on the shared seeded sample of rows and run_audit records it (audits.<name>,
    # reports/audit_<name>.json); False: it reads its own rows and records itself (fairness, privacy).
    sampled: bool = True

    @property
    def description(self) -> str:
        """What the check measures: its config's docstring (the help of ``fmkit audit``)."""
        return " ".join((self.options.__doc__ or "").split())


AUDIT_CHECKS: Registry[AuditCheck] = Registry("audit check")


@dataclass
class AuditContext:
    """The bundle under audit and the settings every check shares; rows and runtime load once, on first use."""

    bundle: Path
    manifest: object  # the bundle's Manifest
    settings: BaseModel  # the AuditConfig: data, split, max_rows, seed, batch_size, device, progress, checks
    record: bool = True
    _rows: object = field(default=None, repr=False)
    _runtime: object = field(default=None, repr=False)

    @property
    def rows(self):
        """The seeded sample of ``max_rows`` rows of the split (an AuditRows)."""
        if self._rows is None:
            from fmkit.audit.inputs import load_audit_rows

            s = self.settings
            self._rows = load_audit_rows(self.bundle, data=s.data, split=s.split, max_rows=s.max_rows, seed=s.seed)
        return self._rows

    def predict_proba(self, texts: list[str]):
        if self._runtime is None:
            from fmkit.runtime import load_runtime

            self._runtime = load_runtime(self.bundle, device=self.settings.device, batch_size=self.settings.batch_size)
        return self._runtime.predict_proba(texts)


def bundle_capabilities(manifest) -> set[str]:
    """What the bundle can be audited on: the one function to ask (its task's adapter answers)."""
    from fmkit.tasks import TASKS

    capabilities = set()
    task = TASKS.get(manifest.task).capabilities
    if task.serves == "texts":
        capabilities.add(TEXT_INPUT)
    if task.explanations:
        capabilities.add(EXPLANATIONS)
    if not manifest.postprocess:
        capabilities.add(TEXT_ONLY_DECISIONS)
    return capabilities


def refusal(bundle: Path, manifest, check: str, capability: str) -> str:
    if capability == TEXT_ONLY_DECISIONS:
        return (f"{bundle}'s decisions need group columns; run the {check} check on its parent (the thresholds do "
                "not change the model's text behaviour)")
    return (f"{bundle} is a {manifest.task} bundle: the {check} check needs {capability}, which its task does not "
            "have; audit a text-classification bundle")


def check_capabilities(bundle: Path, manifest, names) -> None:
    """Refuse, before anything runs, a check the bundle cannot take (every refusal at once)."""
    from fmkit.tasks import task_of_bundle

    task_of_bundle(bundle, manifest.task)  # a base model without labels: "fine-tune it first"
    capabilities = bundle_capabilities(manifest)
    problems = [refusal(bundle, manifest, name, capability) for name in names
                for capability in AUDIT_CHECKS.get(name).requires if capability not in capabilities]
    if problems:
        raise BadInputError("; ".join(dict.fromkeys(problems)))
