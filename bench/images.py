"""Fashion-MNIST with the two image models, through the real CLI; prints one JSON line per run.

    nice -n 5 .venv/bin/python bench/images.py --model cnn --work bench-out
    nice -n 5 .venv/bin/python bench/images.py --model efficientnet-lite0 --work bench-out

Each run is exactly the `fmkit finetune` command it prints (default threads: all cores), and the
figures come from the bundle's manifest: test accuracy on the official 10,000-image test split,
training seconds (the loop's own clock) and wall seconds (data loading and evaluation included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RUNS = {  # model -> the finetune flags of the recorded run (docs/benchmarks.md)
    "cnn": ["--epochs", "10", "--batch-size", "128", "--learning-rate", "2e-3", "--patience", "3"],
    # ImageNet weights at 224 px cost ~50x the CNN per image on 2 cores; 28 px upscaled to 64 keeps a
    # run under half an hour while the pretrained filters still see shapes of a familiar scale.
    # fp32: its depthwise convolutions ran faster in fp32 than under bf16 autocast on this CPU.
    "efficientnet-lite0": ["--input-size", "64", "--epochs", "2", "--batch-size", "64", "--learning-rate", "1e-3",
                           "--patience", "2", "--precision", "fp32"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(RUNS), required=True)
    parser.add_argument("--work", default="bench-out", help="folder for the bundles")
    parser.add_argument("--max-rows", type=int, help="a stratified sample (smoke test of this script)")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores; on a machine another job keeps "
                        "busy, 1 thread avoids OpenMP's oversubscription collapse)")
    args = parser.parse_args()
    out = Path(args.work) / f"fashion-{args.model}"
    command = ["fmkit", "finetune", "--model", args.model, "--data", "fashion-mnist", "--out", str(out),
               "--overwrite", "--no-progress", *RUNS[args.model]]
    if args.max_rows:
        command += ["--max-rows", str(args.max_rows)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    print(" ".join(command), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "fmkit", *command[1:]], check=True)
    manifest = json.loads((out / "fmkit.json").read_text())
    training = manifest["training"]
    print(json.dumps({
        "command": " ".join(command), "test_accuracy": manifest["metrics"]["test"]["accuracy"],
        "test_macro_f1": manifest["metrics"]["test"]["macro_f1"],
        "validation_accuracy": manifest["metrics"]["validation"]["accuracy"],
        "epochs_completed": training["epochs_completed"], "steps": training["steps"], "precision": training["precision"],
        "train_seconds": training["train_seconds"], "wall_seconds": training["wall_seconds"],
        "samples_per_second": training["samples_per_second"], "history": training["history"],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
