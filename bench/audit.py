"""The audit on a real bundle: 1,000 test texts (counterfactual, robustness, PII) + attributions for 100.

Target (issue 5): the whole audit finishes in under 2 minutes on the 2-core machine. Works on a copy
of the bundle so the original manifest is untouched; prints the time of each check and peak RSS.

    .venv/bin/python bench/audit.py --bundle runs/DATE-full/finetune-full
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="a PyTorch text-classification bundle (e.g. finetune-full)")
    parser.add_argument("--rows", type=int, default=1000, help="audited texts (default 1000)")
    parser.add_argument("--explain-rows", type=int, default=100, help="texts explained (default 100)")
    parser.add_argument("--steps", type=int, default=32, help="integrated-gradients steps (default 32)")
    args = parser.parse_args()

    from fmkit.audit.run import AuditConfig, run_audit

    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / Path(args.bundle).name
        shutil.copytree(args.bundle, bundle)
        started = time.perf_counter()
        results = run_audit(bundle, AuditConfig(checks=["counterfactual", "robustness", "pii", "explanations"],
                                                max_rows=args.rows, explain_rows=args.explain_rows,
                                                n_steps=args.steps, progress=False))
        total = time.perf_counter() - started
    summary = {
        "bundle": args.bundle, "rows": args.rows, "explained": args.explain_rows, "n_steps": args.steps,
        "seconds_total": round(total, 1),
        "seconds_per_check": {check: result["seconds"] for check, result in results.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "counterfactual_flip_rate": results["counterfactual"].get("flip_rate"),
        "min_stability_rate": results["robustness"]["min_stability_rate"],
        "texts_with_pii": results["pii"]["texts_with_pii"],
        "faithfulness": results["explanations"]["faithfulness"],
        "mean_abs_convergence_delta": results["explanations"]["mean_abs_convergence_delta"],
        "target_met": total < 120,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
