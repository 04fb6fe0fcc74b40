"""The explanations check: integrated-gradients attributions (Captum) with a deletion faithfulness check.

It needs the PyTorch weights: on a compressed (ONNX) bundle it is skipped with a warning when other
checks run beside it, and refused (with the fix) when it is the only one.
"""

from __future__ import annotations

import warnings

from pydantic import BaseModel, ConfigDict, Field

from fmkit.audit.checks.base import AUDIT_CHECKS, EXPLANATIONS, TEXT_INPUT, AuditCheck, AuditContext


class ExplanationsOptions(BaseModel):
    """integrated-gradients attributions (Captum) with a deletion faithfulness check"""

    model_config = ConfigDict(extra="forbid")

    explain_rows: int = Field(100, ge=1, description="rows explained (the first of the sample)")
    n_steps: int = Field(32, ge=2, description="integrated-gradients steps")
    internal_batch_size: int = Field(64, ge=1, description="interpolated inputs per forward/backward (bounds memory)")
    faithfulness_k: int = Field(3, ge=1, description="words deleted in the faithfulness check")


def run(context: AuditContext, options: ExplanationsOptions) -> dict | None:
    import numpy as np

    from fmkit.audit.explain import Explainer, class_top_words, deletion_faithfulness, write_explanations
    from fmkit.bundle.store import REPORTS_DIR

    bundle, manifest, settings = context.bundle, context.manifest, context.settings
    if manifest.runtime != "torch" and len(settings.checks) > 1:
        warnings.warn(f"{bundle} runs on {manifest.runtime}; explanations skipped (they need PyTorch weights: "
                      "audit the bundle it was compressed from)", stacklevel=3)
        return None
    explainer = Explainer(bundle, device=settings.device, n_steps=options.n_steps,
                          internal_batch_size=options.internal_batch_size)
    explanations = explainer.explain(context.rows.texts[: options.explain_rows], progress=settings.progress)
    deltas = np.abs([e.convergence_delta for e in explanations])
    if context.record:
        write_explanations(explanations, bundle / REPORTS_DIR)
    return {"texts": len(explanations), "method": "layer integrated gradients (word embeddings)",
            "n_steps": options.n_steps, "mean_abs_convergence_delta": float(deltas.mean()),
            "max_abs_convergence_delta": float(deltas.max()),
            "faithfulness": deletion_faithfulness(explainer, explanations, k=options.faithfulness_k,
                                                  seed=settings.seed),
            "top_words": class_top_words(explanations)}


def summary(result: dict) -> str:
    return (f"{result['texts']} texts, faithfulness gap {result['faithfulness'].get('faithfulness_gap')}, "
            f"mean |δ| {result['mean_abs_convergence_delta']:.2e}")


AUDIT_CHECKS.register("explanations")(
    AuditCheck(ExplanationsOptions, run, summary, requires=(TEXT_INPUT, EXPLANATIONS)))
