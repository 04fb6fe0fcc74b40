"""Helpers of tests/test_distributed.py: a tiny BERT without dropout, torchrun launches with a recorded retry.

``torchrun`` aborted about one launch in 11 on this kind of machine (../shared/OFFLINE.md, cause not found). A
launch that dies of SIGABRT before doing anything the test asked for is run once more, and the abort is recorded
as a warning (shown in pytest's summary) and in ``ABORTS``, never hidden; a second abort fails the test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABORTS: list[str] = []  # every retried launch, for the report
WORKER = Path(__file__).with_name("distributed_worker.py")


def still_bert(source: Path, directory: Path) -> Path:
    """``source``'s tiny BERT with dropout 0 everywhere: one process and two ranks then compute the same function."""
    import shutil

    shutil.copytree(source, directory)
    config = json.loads((directory / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def environment() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID", "FMKIT_BACKEND"):
        env.pop(name, None)
    return env


def aborted(result: subprocess.CompletedProcess) -> bool:
    """torchrun's summary of a rank killed by SIGABRT (exit code -6), or the launcher itself aborted."""
    text = result.stdout + result.stderr
    return result.returncode in (-6, 134) or "Signal 6 (SIGABRT)" in text or "exitcode  : -6" in text


def aborted_before_the_kill(result: subprocess.CompletedProcess, kill_rank: int) -> bool:
    """A ``--max-restarts`` launch whose restart went to a SIGABRT instead of the test's SIGKILL of ``kill_rank``:
    torchrun's agent logged a rank failing with exit code -6 and never the killed rank's -9, so the restarted
    attempt did not start from the kill the test is about."""
    text = result.stdout + result.stderr
    return aborted(result) or (re.search(r"failed \(exitcode: -6\)", text) is not None
                               and f"failed (exitcode: -9) local_rank: {kill_rank} " not in text)


def launch(arguments: list[str], *, timeout: float = 240, is_abort=aborted,
           outputs: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    """Run a command (torchrun or fmkit); one recorded retry after an unexplained SIGABRT (``is_abort``), with
    ``outputs`` and the command's ``--out`` with its checkpoints (what the aborted launch may have written) removed
    first."""
    import shutil

    if "--out" in arguments:  # the command's own bundle and checkpoints, whatever else the caller names
        out = Path(arguments[arguments.index("--out") + 1])
        outputs = (*outputs, out, out.with_name(f"{out.name}.checkpoints"))
    for attempt in (1, 2):
        for path in outputs if attempt == 2 else ():
            shutil.rmtree(path, ignore_errors=True)
        result = subprocess.run(arguments, capture_output=True, text=True, timeout=timeout, env=environment(),
                                cwd=str(ROOT))
        if not is_abort(result) or attempt == 2:
            return result
        note = f"torchrun launch aborted (SIGABRT), retried once: {' '.join(arguments[:6])} ...; last lines: " \
               f"{(result.stderr or result.stdout).strip().splitlines()[-3:]}"
        ABORTS.append(note)
        warnings.warn(note, stacklevel=2)
    return result


def torchrun(nproc: int, *command: str, max_restarts: int = 0) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            f"--max-restarts={max_restarts}", *command]


def weights(bundle: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(bundle / "model.safetensors"))


def largest_relative_difference(left: dict, right: dict) -> float:
    """max over tensors of ||a - b|| / ||b||."""
    assert left.keys() == right.keys()
    worst = 0.0
    for name, reference in right.items():
        difference = float((left[name].double() - reference.double()).norm())
        worst = max(worst, difference / max(float(reference.double().norm()), 1e-12))
    return worst


TOLERANCE = 1e-5  # relative, per tensor, fp32: what "the same weights" means in the distributed tests
# 320 training rows in batches of 13: 25 batches, so rank 1 has no batch of its own in the last step (a filler
# with weight 0) and the last batch has 8 rows: both uneven cases of the equivalence are exercised.
FLAGS = ["--epochs", "1", "--batch-size", "13", "--learning-rate", "5e-3", "--precision", "fp32", "--device", "cpu",
         "--patience", "none", "--eval-every", "4", "--checkpoint-every", "4", "--no-progress"]


def fmkit(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "fmkit", *arguments]


def check(result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    """``result`` of a launch that must have worked; else every rank's error line, then the end of the output."""
    errors = [line for line in result.stderr.splitlines() if "error:" in line or "Error:" in line]
    assert result.returncode == 0, (f"{what} failed (exit {result.returncode}):\n" + "\n".join(errors[-12:])
                                    + f"\nstdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-4000:]}")
    return result


def one_process(*arguments: str) -> None:
    """``fmkit ARGUMENTS`` in this process (no launch to pay for) with one torch thread, as each rank has."""
    import torch

    from fmkit.cli.main import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(list(arguments))
    finally:
        torch.set_num_threads(threads)
    assert code == 0, f"one process: fmkit {' '.join(arguments[:3])} ... exited {code} (its stderr is captured above)"


def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "fmkit.json").read_text())
