"""`fmkit tune` against the default configuration: 24 LoRA trials with pruning vs 8 default LoRA runs (issue 19).

    flock /work/notes/cpu.lock .venv/bin/python bench/tune.py --rows 2000 --trials 24 --out /tmp/bench-tune

In this one script, on the same stratified Rotten Tomatoes sample (``--max-rows``, split seed 0: 80% train,
10% validation, 10% test) and the same MiniLM:
  A. ``fmkit finetune --method lora`` with every default (epochs auto = the planned step budget with early
     stopping, the LoRA learning rate for MiniLM): one run, its wall time and validation/test accuracy;
  B. ``fmkit tune --method lora`` over SPACE below, ``--trials`` trials, objective validation accuracy (TPE),
     ASHA pruning (Optuna's SuccessiveHalvingPruner, reduction factor 3) on an evaluation every ``--eval-every``
     optimizer steps (half an epoch at 2,000 rows). Why not two objectives and the median rule: a pruned trial
     costs at least its warm-up plus one evaluation, and the median rule stops only trials below the median, so
     24 trials cost about 24 x 4 evaluations; ASHA stops two thirds at every rung. With ``--objectives
     accuracy:max,latency_p95_ms:min`` the same script measures the NSGA-II/median variant and its front.
Targets: B's wall time <= 8 x A's; the best trial's validation accuracy >= A's. Both are printed as measured,
with the test accuracy of each (the test split chose nothing), and the Pareto front.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPACE = """\
learning_rate: {low: 2.0e-4, high: 5.0e-3, log: true}
lora_rank: {choices: [4, 8, 16]}
epochs: {low: 2, high: 8}
"""


def fmkit(*arguments: str) -> tuple[float, str]:
    """Run ``fmkit ARGUMENTS`` in a fresh process; returns (wall seconds, stdout)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "fmkit", *arguments], capture_output=True, text=True, cwd=str(ROOT))
    seconds = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"failed ({result.returncode}): fmkit {' '.join(arguments)}\n{result.stderr[-4000:]}")
    print(f"  {seconds:.0f} s: fmkit {' '.join(arguments[:1])}", file=sys.stderr)
    return seconds, result.stdout


def accuracy(bundle: Path, split: str) -> float:
    return json.loads((bundle / "fmkit.json").read_text())["metrics"][split]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000, help="stratified Rotten Tomatoes sample (default: 2000)")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--objectives", default="accuracy:max")
    parser.add_argument("--pruner", default="asha")
    parser.add_argument("--eval-every", type=int, default=25, help="trial evaluations (pruning points) every N steps")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-tune"))
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"--out {args.out} is not empty; the bench measures a fresh study (remove it or pick another)")
    args.out.mkdir(parents=True, exist_ok=True)
    data = ["--model", "minilm", "--data", "rotten-tomatoes", "--max-rows", str(args.rows), "--split-seed", "0",
            "--method", "lora", "--no-progress"]

    default_dir = args.out / "default"
    default_seconds, _ = fmkit("finetune", *data, "--out", str(default_dir))
    default_manifest = json.loads((default_dir / "fmkit.json").read_text())

    space = args.out / "space.yaml"
    space.write_text(SPACE, encoding="utf-8")
    study_dir = args.out / "study"
    tune_seconds, stdout = fmkit("tune", *data, "--space", str(space), "--trials", str(args.trials),
                                 "--objectives", args.objectives, "--pruner", args.pruner, "--eval-every",
                                 str(args.eval_every), "--out", str(study_dir),
                                 "--workspace", str(args.out), "--json")
    summary = json.loads(stdout)
    complete = [t for t in summary["trials"] if t["state"] == "COMPLETE"]
    best = max(complete, key=lambda t: t["values"][0])
    chosen = summary.get("front", summary.get("best", []))
    front = [t for t in summary["trials"] if t["number"] in chosen]

    result = {
        "rows": args.rows, "trials": args.trials, "space": SPACE,
        "default": {"wall_seconds": round(default_seconds, 1), "steps": default_manifest["training"].get("steps"),
                    "epochs": default_manifest["training"].get("epochs_completed"),
                    "stopped_early": default_manifest["training"].get("stopped_early"),
                    "learning_rate": default_manifest["training"].get("learning_rate"),
                    "validation_accuracy": accuracy(default_dir, "validation"),
                    "test_accuracy": accuracy(default_dir, "test")},
        "tune": {"wall_seconds": round(tune_seconds, 1), "counts": summary["counts"],
                 "trial_seconds": summary["cost"]["trial_seconds"], "train_steps": summary["cost"]["train_steps"],
                 "best": {"trial": best["number"], "params": best["params"], "validation_accuracy": best["values"][0],
                          "test_accuracy": accuracy(Path(best["bundle"]), "test")},
                 "objectives": summary["objectives"], "pruner": args.pruner, "eval_every": args.eval_every,
                 "front" if "front" in summary else "best_trials": [
                     {"trial": t["number"], "values": t["values"], "params": t["params"]} for t in front],
                 "pruned_at_evaluation": sorted((t.get("pruned_at") or {}).get("evaluation", 0)
                                                for t in summary["trials"] if t["state"] == "PRUNED")},
    }
    result["cost_ratio_vs_default_run"] = round(tune_seconds / default_seconds, 2)
    result["targets"] = {
        "cost <= 8 default runs": result["cost_ratio_vs_default_run"] <= 8,
        "best validation accuracy >= default": best["values"][0] >= result["default"]["validation_accuracy"],
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
