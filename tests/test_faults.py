"""Kill every stage that writes an artifact at random points: under the output name there is nothing, or all of it.

Each stage runs once uninterrupted (which times it), then is SIGKILLed after random delays spread
over that whole run (one seed per slice of it), and at two moments a timer rarely hits: while the
temporary copy is being written and the instant the output name appears (where a bundle published
before it was measured would show). After each kill the name holds nothing or a complete, verified
artifact; a final run succeeds and leaves none of the killed runs' temporary files behind.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from conftest import synthetic_reviews, write_csv
from fmkit.bundle import read_manifest
from fmkit.bundle.store import verify_bundle

SEEDS = (0, 1, 2)
SLOW_SEEDS = (0, 1)  # the slow scenarios: two timed kills (plus the two moments) keep the file near its time budget
ANON_KEY = "fault-test-key-of-more-than-16-bytes"


@dataclass
class Scenario:
    args: Callable[[Path], list]  # the output path -> arguments after `fmkit`
    check: Callable[[Path], None]  # asserts the artifact at the output path is complete
    suffix: str = ""  # of the output name (a table file for anonymize)


def fmkit_command(args) -> list[str]:
    return [sys.executable, "-m", "fmkit", *map(str, args)]


def killed_run(args, env: dict, *, delay: float | None = None, when: Callable[[], bool] | None = None) -> int | None:
    """Run fmkit and SIGKILL it after ``delay`` seconds or as soon as ``when()`` holds; its exit code if it finished first."""
    process = subprocess.Popen(fmkit_command(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                               start_new_session=True)
    deadline = time.monotonic() + (delay if delay is not None else 600)
    try:
        while process.poll() is None:
            if time.monotonic() >= deadline or (when is not None and when()):
                os.kill(process.pid, signal.SIGKILL)  # the main process only, as `kill -9` or the OOM killer would
                process.wait()
                return None
            time.sleep(0.005)
        return process.returncode
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # then its orphaned helpers (the measurement child), to free the CPU


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def exercise(scenario: Scenario, tmp_path: Path, seeds: tuple[int, ...] = SEEDS) -> None:
    env = {**os.environ, "FMKIT_ANON_KEY": ANON_KEY, "HF_HUB_OFFLINE": "1"}
    reference = tmp_path / f"reference{scenario.suffix}"
    started = time.monotonic()
    result = subprocess.run(fmkit_command(scenario.args(reference)), capture_output=True, text=True, env=env)
    duration = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    scenario.check(reference)
    victim = tmp_path / f"victim{scenario.suffix}"
    for seed in seeds:
        delay = duration * (seed + random.Random(seed).random()) / len(seeds)  # one kill in each slice of the run
        code = killed_run(scenario.args(victim), env, delay=delay)
        assert code in (None, 0), f"seed {seed}: exit {code} before the kill"
        if victim.exists():
            scenario.check(victim)
    # Two moments a timer rarely hits: while the temporary copy is being written, and the instant the name appears.
    for moment in ("writing", "published"):
        if victim.is_dir():
            shutil.rmtree(victim)
        victim.unlink(missing_ok=True)
        before = set(leftovers(victim))
        happened = ((lambda: bool(set(leftovers(victim)) - before)) if moment == "writing" else victim.exists)
        code = killed_run(scenario.args(victim), env, when=happened)
        assert code in (None, 0), f"kill when {moment}: exit {code} before the kill"
        if victim.exists():
            scenario.check(victim)
    result = subprocess.run(fmkit_command(scenario.args(victim)), capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    scenario.check(victim)
    assert leftovers(victim) == [], "a killed run's temporary files outlived the next run"


def complete_bundle(out: Path, *, metrics_split: str = "test", benchmarks: bool = False) -> None:
    assert verify_bundle(out) == [], f"{out} does not match its manifest"
    manifest = read_manifest(out)
    assert manifest.metrics.get(metrics_split, {}).get("accuracy" if metrics_split == "test" else "masked_accuracy")
    if benchmarks:
        figures = manifest.benchmarks[manifest.runtime]
        assert figures["latency_p50_ms"] > 0 and figures["size_bytes"] > 0
    if manifest.compression:
        assert manifest.compression["status"] == "ok"
        assert manifest.compression["total_accuracy_drop_points"] is not None


def compress_scenario(bundle: Path, *method_args: str) -> Scenario:
    return Scenario(
        args=lambda out: ["compress", bundle, *method_args, "--out", out, "--max-accuracy-drop", "100",
                          "--threads", "1", "--overwrite"],
        check=lambda out: complete_bundle(out, benchmarks=True))


def test_killed_quantization_publishes_nothing_or_a_measured_variant(tiny_bundle, tmp_path):
    exercise(compress_scenario(tiny_bundle, "--method", "quantize-dynamic"), tmp_path)


@pytest.mark.slow
def test_killed_distillation_publishes_nothing_or_a_measured_variant(tiny_bundle, tmp_path):
    # Every method shares run_compress's publish path; distillation adds a training loop to be killed in.
    exercise(compress_scenario(tiny_bundle, "--method", "distill", "--student-layers", "1"), tmp_path, SLOW_SEEDS)


@pytest.mark.slow
def test_killed_export_publishes_nothing_or_a_measured_bundle(tiny_bundle, tmp_path):
    exercise(Scenario(args=lambda out: ["export", tiny_bundle, "--out", out, "--overwrite"],
                      check=lambda out: complete_bundle(out, benchmarks=True)), tmp_path, SLOW_SEEDS)


@pytest.mark.slow
def test_killed_finetune_publishes_nothing_or_an_evaluated_bundle(tiny_bert_dir, reviews_csv, tmp_path):
    exercise(Scenario(args=lambda out: ["finetune", "--model", tiny_bert_dir, "--data", reviews_csv, "--out", out,
                                        "--epochs", "2", "--batch-size", "16", "--learning-rate", "5e-3",
                                        "--precision", "fp32", "--no-progress", "--overwrite"],
                      check=complete_bundle), tmp_path, SLOW_SEEDS)


@pytest.mark.slow
def test_killed_pretrain_publishes_nothing_or_an_evaluated_bundle(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(text for text, _ in synthetic_reviews(600)) + "\n", encoding="utf-8")
    exercise(Scenario(args=lambda out: ["pretrain", "--corpus", corpus, "--size", "tiny", "--vocab-size", "200",
                                        "--min-frequency", "1", "--seq-length", "32", "--max-steps", "20",
                                        "--batch-size", "8", "--heldout-fraction", "0.1", "--precision", "fp32",
                                        "--no-progress", "--out", out, "--overwrite"],
                      check=lambda out: complete_bundle(out, metrics_split="heldout")), tmp_path, SLOW_SEEDS)


@pytest.mark.slow
def test_killed_mitigate_publishes_nothing_or_an_audited_bundle(tiny_bundle, tmp_path):
    import csv

    bundle = tmp_path / "bundle"  # `fmkit mitigate` records the parent's own audit: not into the shared fixture
    shutil.copytree(tiny_bundle, bundle)
    with open(read_manifest(bundle).data["source"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rng = random.Random(0)  # groups with different base rates: a is mostly pos, b mostly neg
    grouped = write_csv(tmp_path / "grouped.csv", [
        (row["text"], row["label"], "a" if (row["label"] == "pos") == (rng.random() < 0.8) else "b") for row in rows],
        header=("text", "label", "group"))

    def check(out: Path) -> None:
        assert verify_bundle(out) == []
        manifest = read_manifest(out)
        assert manifest.postprocess["attribute"] == "group"
        assert set(manifest.audits["fairness"]["group"]["groups"]) == {"a", "b"}  # audited on the test split

    exercise(Scenario(args=lambda out: ["mitigate", bundle, "--attribute", "group", "--data", grouped,
                                        "--positive-label", "pos", "--out", out, "--overwrite"], check=check), tmp_path,
             SLOW_SEEDS)


def test_killed_anonymize_writes_nothing_or_a_table_with_its_mapping(tmp_path):
    from fmkit.privacy.anonymize import read_mapping, report_path

    rows = [(index, f"card 4111 1111 1111 1111 from 10.0.{index % 250}.{index % 7} {text}", label)
            for index, (text, label) in enumerate(synthetic_reviews(300))]
    source = write_csv(tmp_path / "tickets.csv", rows, header=("id", "text", "label"))
    mappings: dict[Path, Path] = {}

    def args(out: Path) -> list:
        mappings[out] = out.with_suffix(".map")
        return ["anonymize", source, "--operator", "pseudonymize", "--mapping", mappings[out], "--entities",
                "CREDIT_CARD,IP_ADDRESS", "--no-progress", "--out", out]

    def check(out: Path) -> None:
        table = out.read_text(encoding="utf-8")
        assert table.count("\n") == len(rows) + 1 and "4111" not in table
        assert report_path(out).is_file()
        mapping = read_mapping(mappings[out], ANON_KEY.encode())  # the tokens in the table can be reversed
        assert all(token in table for token in mapping)
        if out.name.startswith("victim"):
            assert table == (tmp_path / "reference.csv").read_text(encoding="utf-8")

    exercise(Scenario(args=args, check=check, suffix=".csv"), tmp_path)


# -- the cleaning rule itself -----------------------------------------------------------------------------

def test_only_a_dead_writers_leftovers_of_the_same_name_are_removed(tmp_path):
    from fmkit.fileio import NEWBORN_SECONDS, atomic_directory, remove_stale_leftovers

    final = tmp_path / "model"
    writer = subprocess.Popen(  # a live writer of the same name, holding its partial
        [sys.executable, "-c", "import time\nfrom fmkit.fileio import atomic_directory\n"
         f"with atomic_directory({str(final)!r}) as tmp:\n    print(tmp, flush=True)\n    time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        live = Path(writer.stdout.readline().strip())
        finished = subprocess.Popen([sys.executable, "-c", "pass"])
        finished.wait()
        dead = finished.pid  # a PID that no longer runs
        stale = [tmp_path / f".model.{dead}-abc123.partial", tmp_path / f".model.old-{dead}"]
        for path in stale:
            path.mkdir()
            (path / "model.safetensors").write_bytes(b"half")
        (tmp_path / f".model.{dead}-xyz.tmp").write_text("half")
        reused = tmp_path / f".model.{os.getpid()}-reused.partial"  # a live PID, but nobody holds the lock: PID reuse
        reused.mkdir()
        young = tmp_path / f".model.{os.getpid()}-young.partial"  # just created: its writer may not have locked it yet
        young.mkdir()
        other_name = tmp_path / f".model.int8.{dead}-abc123.partial"  # the leftover of `model.int8`, not of `model`
        other_name.mkdir()
        legacy = tmp_path / ".model.abcd1234.partial"  # no PID (an older fmkit): removed only when a day old
        legacy.mkdir()
        old = time.time() - NEWBORN_SECONDS - 5
        for path in (reused, live):  # old and unlocked is stale; old and locked by a live writer is not
            os.utime(path, (old, old))
        removed = remove_stale_leftovers(final)
        assert sorted(p.name for p in removed) == sorted(
            [p.name for p in stale] + [f".model.{dead}-xyz.tmp", reused.name])
        assert live.is_dir() and young.is_dir() and other_name.is_dir() and legacy.is_dir()
    finally:
        writer.kill()
        writer.wait()
    os.utime(young)
    with atomic_directory(final) as tmp:  # the writer is dead now: the next writer of the name cleans its partial
        (tmp / "weights").write_text("complete")
    assert not live.exists() and (final / "weights").read_text() == "complete"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".model.")) == sorted(
        [young.name, other_name.name, legacy.name])
