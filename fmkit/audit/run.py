"""``fmkit audit``: run the audit checks on a bundle and record each in its manifest (``audits.*``).

Checks: fairness (group metrics, needs group columns), counterfactual (identity-term swaps),
robustness (noise invariance), explanations (integrated gradients + faithfulness; PyTorch bundles),
pii (PII found in the audited inputs), privacy (membership inference: training rows vs test rows).
Fairness uses every row of the split; the others a seeded sample of ``max_rows`` rows,
explanations the first ``explain_rows`` of that sample.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fmkit.errors import BadInputError

CHECKS = ("fairness", "counterfactual", "robustness", "explanations", "pii", "privacy")


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checks: list[Literal[CHECKS]] = Field(default_factory=lambda: list(CHECKS), description="which checks to run")
    data: str | None = Field(None, description="file or built-in dataset (default: the bundle's training data)")
    split: Literal["train", "validation", "test", "all"] = Field("test", description="rows to audit")
    max_rows: int = Field(1000, ge=1, description="rows sampled for counterfactual, robustness, pii")
    explain_rows: int = Field(100, ge=1, description="rows explained (the first of the sample)")
    sensitive: list[str] = Field(default_factory=list, description="group columns for fairness (default: dataset's)")
    positive_label: str | None = Field(None, description="favourable label for fairness (default: second of two)")
    n_bootstrap: int = Field(200, ge=0, description="bootstrap resamples for fairness intervals")
    min_group_size: int = Field(50, ge=1, description="smaller groups are left out of fairness gaps")
    terms: str | None = Field(None, description="JSON file with extra identity-term pairs")
    perturbations: list[str] | None = Field(None, description="robustness perturbations (default: all)")
    n_steps: int = Field(32, ge=2, description="integrated-gradients steps")
    internal_batch_size: int = Field(64, ge=1, description="interpolated inputs per forward/backward (bounds memory)")
    faithfulness_k: int = Field(3, ge=1, description="words deleted in the faithfulness check")
    reference: str | None = Field(None, description="privacy: a bundle trained without these rows, to calibrate "
                                                    "the attack (default: the held-out population)")
    seed: int = Field(0, description="seed of sampling, bootstrap and perturbations")
    batch_size: int = Field(64, ge=1, description="texts per inference batch")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    progress: bool = Field(True, description="show progress bars")

    @model_validator(mode="after")
    def _check(self) -> "AuditConfig":
        errors = []
        if not self.checks:
            errors.append(f"checks is empty; name one or more of {', '.join(CHECKS)}")
        if self.perturbations is not None:
            from fmkit.audit.robustness import PERTURBATIONS

            unknown = [p for p in self.perturbations if p not in PERTURBATIONS]
            if unknown:
                errors.append(f"perturbations {unknown} unknown; use {', '.join(PERTURBATIONS.names())}")
        if errors:
            raise ValueError("; ".join(errors))
        return self


def run_audit(bundle: Path, cfg: AuditConfig, *, record: bool = True, log=print) -> dict:
    """Run ``cfg.checks`` on ``bundle``; returns {check: result} and writes each into the manifest."""
    from fmkit.audit.inputs import load_audit_rows
    from fmkit.bundle import read_manifest, update_manifest
    from fmkit.bundle.store import REPORTS_DIR
    from fmkit.fileio import write_json_atomic

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}
    if "privacy" in cfg.checks:
        from fmkit.audit.membership import membership_audit

        started = time.perf_counter()
        results["privacy"] = membership_audit(bundle, reference=Path(cfg.reference) if cfg.reference else None,
                                              max_members=cfg.max_rows, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed,
                                              device=cfg.device, record=record)
        results["privacy"]["seconds"] = round(time.perf_counter() - started, 2)
        p = results["privacy"]
        log(f"  privacy: membership-inference AUC {p['auc']:.4f} ({p['strongest_attack']} attack, "
            f"{p['members']} members vs {p['non_members']} non-members), TPR@1%FPR {p['tpr_at_0.01_fpr']:.4f}")
    needs_sample = [c for c in cfg.checks if c not in ("fairness", "privacy")]
    if "fairness" in cfg.checks:
        from fmkit.audit.fairness_audit import FairnessAuditConfig, audit_fairness

        started = time.perf_counter()
        results["fairness"] = audit_fairness(bundle, FairnessAuditConfig(
            data=cfg.data, sensitive=cfg.sensitive, split=cfg.split, positive_label=cfg.positive_label,
            n_bootstrap=cfg.n_bootstrap, min_group_size=cfg.min_group_size, seed=cfg.seed,
            batch_size=cfg.batch_size, device=cfg.device), record=record)
        timings["fairness"] = time.perf_counter() - started
        log(f"  fairness: {_fairness_line(results['fairness'])}")
    if not needs_sample:
        return results
    rows = load_audit_rows(bundle, data=cfg.data, split=cfg.split, max_rows=cfg.max_rows, seed=cfg.seed)
    predict_proba = None
    if any(c in cfg.checks for c in ("counterfactual", "robustness")):
        if manifest.postprocess:
            raise BadInputError(f"{bundle}'s decisions need group columns; run counterfactual and robustness checks "
                                "on its parent (the thresholds do not change the model's text behaviour)")
        from fmkit.runtime import load_runtime

        runtime = load_runtime(bundle, device=cfg.device, batch_size=cfg.batch_size)
        predict_proba = runtime.predict_proba
    if "counterfactual" in cfg.checks:
        from fmkit.audit.counterfactual import counterfactual_audit, load_term_pairs

        started = time.perf_counter()
        results["counterfactual"] = counterfactual_audit(predict_proba, manifest.labels, rows.texts,
                                                         load_term_pairs(cfg.terms))
        timings["counterfactual"] = time.perf_counter() - started
        cf = results["counterfactual"]
        log(f"  counterfactual: {cf['swapped']} swapped sentences, flip rate {cf.get('flip_rate', 0):.4f}, "
            f"worst pair {cf.get('worst_pair')}")
    if "robustness" in cfg.checks:
        from fmkit.audit.robustness import robustness_audit

        started = time.perf_counter()
        results["robustness"] = robustness_audit(predict_proba, manifest.labels, rows.texts, rows.labels,
                                                 cfg.perturbations, cfg.seed)
        timings["robustness"] = time.perf_counter() - started
        log("  robustness: " + ", ".join(f"{name} {v['stability_rate']:.4f}"
                                         for name, v in results["robustness"]["perturbations"].items()))
    if "pii" in cfg.checks:
        from fmkit.data.pii import pii_summary

        started = time.perf_counter()
        results["pii"] = pii_summary(rows.texts)
        timings["pii"] = time.perf_counter() - started
        log(f"  pii: {results['pii']['texts_with_pii']} of {results['pii']['texts']} texts hold PII "
            f"{results['pii']['entities']}")
    if "explanations" in cfg.checks:
        if manifest.runtime != "torch" and len(cfg.checks) > 1:
            warnings.warn(f"{bundle} runs on {manifest.runtime}; explanations skipped (they need PyTorch weights: "
                          "audit the bundle it was compressed from)", stacklevel=2)
        else:
            started = time.perf_counter()
            results["explanations"], explanations = _explanations(bundle, rows.texts[: cfg.explain_rows], cfg)
            timings["explanations"] = time.perf_counter() - started
            if record:
                from fmkit.audit.explain import write_explanations

                write_explanations(explanations, bundle / REPORTS_DIR)
            e = results["explanations"]
            log(f"  explanations: {e['texts']} texts, faithfulness gap {e['faithfulness'].get('faithfulness_gap')}, "
                f"mean |δ| {e['mean_abs_convergence_delta']:.2e}")
    for check, seconds in timings.items():
        results[check]["seconds"] = round(seconds, 2)
    if record:
        samples = {c: results[c] for c in results if c not in ("fairness", "privacy")}
        for check, result in samples.items():
            result.update({"split": rows.split, "data_fingerprint": rows.data_fingerprint})
            write_json_atomic(bundle / REPORTS_DIR / f"audit_{check}.json", result)

        def change(m):
            for check, result in samples.items():
                m.audits[check] = result

        update_manifest(bundle, change)
    return results


def _explanations(bundle: Path, texts: list[str], cfg: AuditConfig):
    import numpy as np

    from fmkit.audit.explain import Explainer, class_top_words, deletion_faithfulness

    explainer = Explainer(bundle, device=cfg.device, n_steps=cfg.n_steps, internal_batch_size=cfg.internal_batch_size)
    explanations = explainer.explain(texts, progress=cfg.progress)
    deltas = np.abs([e.convergence_delta for e in explanations])
    summary = {"texts": len(explanations), "method": "layer integrated gradients (word embeddings)",
               "n_steps": cfg.n_steps, "mean_abs_convergence_delta": float(deltas.mean()),
               "max_abs_convergence_delta": float(deltas.max()),
               "faithfulness": deletion_faithfulness(explainer, explanations, k=cfg.faithfulness_k, seed=cfg.seed),
               "top_words": class_top_words(explanations)}
    return summary, explanations


def _fairness_line(report: dict) -> str:
    parts = []
    for attribute, values in report.items():
        if "demographic_parity_difference" in values:
            parts.append(f"{attribute}: DP diff {values['demographic_parity_difference']:.4f}, "
                         f"EO diff {values['equalized_odds_difference']:.4f}")
        else:
            parts.append(f"{attribute}: {values.get('note')}")
    return "; ".join(parts)
