"""`fmkit tune`: real Optuna studies over the tiny in-code BERT (tests/conftest.py) on synthetic reviews.

Trials train for real (a couple of seconds each); the study lives in a real SQLite file; the
two-worker test starts two real `python -m fmkit tune` processes on one study.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fmkit.cli.main import main as cli

FIXED = ["--epochs", "3", "--batch-size", "16", "--no-progress", "--precision", "fp32", "--patience", "none"]


def tune_args(tiny_bert_dir, reviews_csv, out: Path, space: Path, *extra: str) -> list[str]:
    return ["tune", "--model", str(tiny_bert_dir), "--data", str(reviews_csv), "--space", str(space), "--out", str(out),
            "--workspace", str(out.parent), *FIXED, *extra]


def write_space(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load(out: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def test_trials_pruning_resume_and_report(tiny_bert_dir, reviews_csv, tmp_path, capsys):
    """Two good trials, then on a re-run a third whose validation accuracy trails: pruned; nothing re-runs."""
    import optuna

    from fmkit.bundle import read_manifest
    from fmkit.recipe.registry_db import RunRegistry

    out = tmp_path / "study"
    out.mkdir()
    space = write_space(tmp_path / "space.yaml", "learning_rate: {low: 1.0e-6, high: 2.0e-2, log: true}\n")
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{out / 'study.db'}", direction="maximize")
    for rate in (5e-3, 3e-3, 1e-6):  # the order the trials run in: two that learn, then one that cannot
        study.enqueue_trial({"learning_rate": rate})
    args = tune_args(tiny_bert_dir, reviews_csv, out, space, "--study-name", "s", "--startup-trials", "2",
                     "--warmup-evaluations", "1")
    assert cli(args + ["--trials", "2"]) == 0
    first = {t.number: t.datetime_start for t in load(out, "s").trials if t.state.name == "COMPLETE"}
    assert sorted(first) == [0, 1]  # the third enqueued trial waits
    for number in (0, 1):
        manifest = read_manifest(out / "trials" / str(number))
        assert manifest.lineage[-1].stage == "finetune"
        assert manifest.lineage[-1].config["train"]["learning_rate"] == study.trials[number].params["learning_rate"]
        assert manifest.metrics["validation"]["accuracy"] > 0.75

    capsys.readouterr()
    assert cli(args + ["--trials", "3"]) == 0  # continues: runs trial 2 only
    resumed = load(out, "s")
    states = {t.number: t.state.name for t in resumed.trials}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "PRUNED"}, states
    assert {t.number: t.datetime_start for t in resumed.trials if t.number < 2} == first  # not re-run
    pruned = resumed.trials[2]
    assert pruned.intermediate_values and max(pruned.intermediate_values.values()) < 0.7
    assert not (out / "trials" / "2").exists() and not (out / "trials" / "2.checkpoints").exists()
    printed = capsys.readouterr().out
    assert "this worker ran 1" in printed, printed

    assert cli(args + ["--trials", "3"]) == 0  # everything finished: nothing runs
    assert len(load(out, "s").trials) == 3
    summary = json.loads((out / "study.json").read_text())
    assert summary["counts"] == {"COMPLETE": 2, "PRUNED": 1}
    assert summary["best"] == [resumed.best_trial.number]
    assert (out / "study.html").is_file() and (out / "study.png").is_file()

    recorded = RunRegistry(tmp_path).trials("s")
    assert [(r["name"], r["status"]) for r in recorded] == [("trial-0", "complete"), ("trial-1", "complete"),
                                                            ("trial-2", "pruned")]
    assert recorded[0]["output"] == str(out / "trials" / "0")

    capsys.readouterr()
    assert cli(["report", str(out), "--no-measure", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["bundles"]
    assert sorted(r["name"] for r in rows) == ["trial 0", "trial 1"]
    best = [r for r in rows if r.get("search_chosen")]
    assert [r["name"] for r in best] == [f"trial {resumed.best_trial.number}"]
    assert "Search (fmkit tune)" in (out / "report" / "index.html").read_text()


def test_multi_objective_with_compression_stages(tiny_bert_dir, reviews_csv, tmp_path):
    """NSGA-II over accuracy and latency; each trial fine-tunes, distils to one layer and quantizes to int8."""
    from fmkit.bundle import read_manifest

    out = tmp_path / "multi"
    space = write_space(tmp_path / "space.yaml", "learning_rate: {low: 2.0e-3, high: 5.0e-3}\n"
                        "distill_layers: {choices: [1]}\nquantize: {choices: [true]}\n")
    assert cli(tune_args(tiny_bert_dir, reviews_csv, out, space, "--trials", "2", "--objectives",
                         "accuracy:max,latency_p95_ms:min", "--latency-samples", "20", "--pruner", "none")) == 0
    summary = json.loads((out / "study.json").read_text())
    assert summary["directions"] == ["maximize", "minimize"] and summary["counts"] == {"COMPLETE": 2}
    assert summary["front"] and set(summary["front"]) <= {0, 1}
    for trial in summary["trials"]:
        bundle = Path(trial["bundle"])
        manifest = read_manifest(bundle)
        assert [e.stage for e in manifest.lineage] == ["finetune", "distill", "quantize-dynamic"]
        assert manifest.runtime == "onnx"
        assert Path(manifest.lineage[-1].parent) == out / "trials" / f"{trial['number']}.stages" / "distill"
        assert trial["values"] == [manifest.metrics["validation"]["accuracy"],
                                   manifest.benchmarks["onnx"]["latency_p95_ms"]]


def test_two_worker_processes_share_one_sqlite_study(tiny_bert_dir, reviews_csv, tmp_path):
    out = tmp_path / "shared"
    out.mkdir()
    space = write_space(tmp_path / "space.yaml", "learning_rate: {low: 2.0e-3, high: 1.0e-2, log: true}\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "fmkit", *tune_args(
        tiny_bert_dir, reviews_csv, out, space, "--trials", "6", "--sampler-seed", str(seed),
        "--json")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for seed in (1, 2)]
    results = [worker.communicate(timeout=240) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, results):
        assert worker.returncode == 0, stderr[-3000:]
    summaries = [json.loads(stdout) for stdout, _ in results]
    study = load(out, "shared")
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert 6 <= len(finished) <= 7  # a worker may start one trial just before the other reaches 6
    ran = [summary["worker"]["ran"] for summary in summaries]
    assert all(count >= 1 for count in ran), ran  # both took part
    assert sum(ran) == len(study.trials)
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            assert (out / "trials" / str(trial.number) / "fmkit.json").is_file()


@pytest.mark.parametrize("space, extra, expected", [
    ("learning_rte: {low: 1.0e-4, high: 1.0e-3}\nepochs: {low: 4, high: 2}\nbatch_size: {low: 8, high: 8}\n"
     "lora_rank: {choices: []}\ndropout: {choices: [0.1, 0.1]}\nweight_decay: {low: 0, high: 1, log: true}\n",
     ["--method", "lora"],
     ["unknown parameter 'learning_rte'", "Did you mean 'learning_rate'?", "epochs: low=4 > high=2",
      "batch_size: the range [8, 8] is empty", "lora_rank: choices is empty", "dropout: choices [0.1, 0.1] repeat",
      "weight_decay: log=true needs low > 0"]),
    ("lora_rank: {choices: [4, 8]}\nlearning_rate: {low: 1.0e-4, high: 3.0}\n", [],
     ["lora_rank is a lora option but the trials fine-tune with --method full", "learning_rate=3.0: learning_rate"]),
    ("learning_rate: {low: 1.0e-4, high: 1.0e-3}\n", ["--objectives", "accuracy,latency_p99"],
     ["objective 'latency_p99' names no manifest measurement", "valid objectives: accuracy (max)", "latency_p95_ms"]),
    ("learning_rate: {low: 1.0e-4, high: 1.0e-3}\n", ["--objectives", "accuracy,epsilon"],
     ["objective epsilon: the trials train without DP-SGD", "--privacy dp"]),
    ("learning_rate: {low: 1.0e-4, high: 1.0e-3}\n", ["--objectives", "accuracy,size_mb", "--pruner", "asha"],
     ["--pruner asha needs a single objective"]),
    ("learning_rate: {low: 1.0e-4, high: 1.0e-3}\n", ["--storage", "postgresql+psycopg://fm:secret@127.0.0.1:{port}/x"],
     ["is unreachable", "postgresql+psycopg://fm:***@127.0.0.1", "Check the URL"]),
    ("learning_rate: {low: 1.0e-4, high: 1.0e-3}\n", ["--storage", "sqlite:////nonexistent-fmkit/dir/study.db"],
     ["the folder /nonexistent-fmkit/dir does not exist"]),
    ("learning_rate: {low: 1.0e-4, high: 1.0e-3}\n", ["--storage", "study.db"], ["is not a database URL"]),
])
def test_bad_input_is_reported_before_any_trial(tiny_bert_dir, reviews_csv, tmp_path, capsys, space, extra, expected):
    from conftest import free_port

    extra = [part.replace("{port}", str(free_port())) for part in extra]
    out = tmp_path / "bad"
    assert cli(tune_args(tiny_bert_dir, reviews_csv, out, write_space(tmp_path / "s.yaml", space), *extra)) == 2
    error = capsys.readouterr().err
    for text in expected:
        assert text in error, error
    assert "secret" not in error
    assert not (out / "trials").exists()
