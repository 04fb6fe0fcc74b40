"""MLflow tracking: `fmkit runs export --mlflow` and the live `--mlflow` callback, read back with MLflow's own client.

Every test writes a real MLflow store (file store or SQLite) and reads it with ``mlflow.tracking.MlflowClient``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fmkit.cli.main import main as cli
from fmkit.errors import BadInputError

TRAIN = {"epochs": 3, "batch_size": 16, "learning_rate": 0.005, "progress": False, "precision": "fp32"}


def client_for(uri: str, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # what docs/tracking.md tells a user to set for the UI
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def run_recipe_in(workspace: Path, tiny_bert_dir: Path, reviews_csv: Path, directory: Path) -> None:
    from fmkit.recipe import load_recipe
    from fmkit.recipe.runner import run_recipe

    path = directory / "recipe.yaml"
    path.write_text(textwrap.dedent(f"""
        name: tiny
        stages:
          - name: ft
            stage: finetune
            model: {tiny_bert_dir}
            data: {{source: {reviews_csv}}}
            train: {json.dumps(TRAIN)}
          - name: q
            stage: compress
            bundle: ft
            method: quantize-dynamic
          - name: ev
            stage: evaluate
            bundle: ft
            split: test
        """))
    run_recipe(load_recipe(path), workspace=workspace, echo=lambda line: None)


@pytest.fixture(scope="module")
def workspace(tiny_bert_dir, reviews_csv, tmp_path_factory) -> Path:
    """A workspace whose registry holds one recipe run: finetune the tiny BERT, quantize it, evaluate it."""
    directory = tmp_path_factory.mktemp("tracking-ws")
    run_recipe_in(directory / "ws", tiny_bert_dir, reviews_csv, directory)
    return directory / "ws"


def export(args: list[str], capsys) -> dict:
    capsys.readouterr()
    assert cli(["runs", "export", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def points(history) -> tuple[list[int], list[float]]:
    """An MLflow metric history as (steps, values)."""
    return [point.step for point in history], [point.value for point in history]


def steps_of(history: list[dict]) -> list[int]:
    return [entry["step"] for entry in history]


def all_runs(client, experiment: str) -> list:
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)


def test_export_writes_runs_stages_params_metrics_and_artifacts(workspace, tmp_path, capsys, monkeypatch):
    store = tmp_path / "mlruns"
    result = export(["--mlflow", str(store), "--workspace", str(workspace)], capsys)
    assert result["tracking_uri"] == store.resolve().as_uri()
    assert [run["action"] for run in result["runs"]] == ["created"]
    client = client_for(result["tracking_uri"], monkeypatch)
    runs = all_runs(client, "tiny")  # one experiment per recipe name
    parents = [run for run in runs if run.data.tags["fmkit.kind"] == "recipe-run"]
    children = {run.data.tags["fmkit.stage_name"]: run for run in runs if run.data.tags["fmkit.kind"] == "stage"}
    assert len(parents) == 1 and set(children) == {"ft", "q", "ev"}
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["fmkit.run_id"] == "1"
    assert all(child.data.tags["mlflow.parentRunId"] == parent.info.run_id for child in children.values())

    ft = children["ft"]
    bundle = Path(ft.data.tags["fmkit.bundle_path"])
    manifest = json.loads((bundle / "fmkit.json").read_text())
    resolved = json.loads((workspace / "runs" / Path(parent.data.tags["fmkit.run_dir"]).name / "resolved.json").read_text())
    ft_config = resolved["stages"][0]["config"]
    # params: the stage's resolved config, flattened
    assert ft.data.params["train.epochs"] == str(ft_config["train"]["epochs"]) == "3"
    assert ft.data.params["train.learning_rate"] == str(ft_config["train"]["learning_rate"])
    assert ft.data.params["data.source"] == ft_config["data"]["source"]
    assert parent.data.params["ft.train.epochs"] == "3"  # the parent compares recipe runs side by side
    # metrics per split from the bundle's manifest, and the validation curve by step
    for split in ("validation", "test"):
        assert ft.data.metrics[f"{split}.accuracy"] == pytest.approx(manifest["metrics"][split]["accuracy"])
        assert ft.data.metrics[f"{split}.macro_f1"] == pytest.approx(manifest["metrics"][split]["macro_f1"])
    assert parent.data.metrics["ft.test.accuracy"] == pytest.approx(manifest["metrics"]["test"]["accuracy"])
    assert ft.data.metrics["training.steps"] == manifest["training"]["steps"]
    history = manifest["training"]["history"]
    curve = client.get_metric_history(ft.info.run_id, "eval.accuracy")
    assert points(curve) == (steps_of(history), pytest.approx([entry["accuracy"] for entry in history]))
    # tags: fmkit run id, bundle digest, lineage
    assert ft.data.tags["fmkit.bundle_digest"] == manifest["content_digest"]
    assert ft.data.tags["fmkit.lineage"] == "finetune" and ft.data.tags["fmkit.stage"] == "finetune"
    assert children["ev"].data.tags["fmkit.bundle_digest"] == manifest["content_digest"]
    assert children["ev"].data.tags["fmkit.bundle_run"] == ft.info.run_id  # evaluate measured the bundle ft made
    quantized = children["q"].data.tags
    assert quantized["fmkit.lineage"] == "finetune > quantize-dynamic" and quantized["fmkit.parent_run"] == ft.info.run_id
    assert quantized["fmkit.parent_digest"] == manifest["content_digest"]
    assert children["q"].data.params["method.name"] == "quantize-dynamic"
    # artifacts: manifest and reports, no weights without --weights; the manifest is the bundle's own file
    listed = {item.path for item in client.list_artifacts(ft.info.run_id, "bundle")}
    assert listed == {"bundle/fmkit.json", "bundle/reports"}
    reports = {item.path for item in client.list_artifacts(ft.info.run_id, "bundle/reports")}
    assert {f"bundle/reports/{path.name}" for path in (bundle / "reports").iterdir()} == reports
    downloaded = Path(client.download_artifacts(ft.info.run_id, "bundle/fmkit.json", str(tmp_path / "dl")))
    assert downloaded.read_bytes() == (bundle / "fmkit.json").read_bytes()
    assert {item.path for item in client.list_artifacts(parent.info.run_id, "run")} >= {
        "run/recipe.yaml", "run/resolved.json", "run/outputs.json", "run/run.log"}


def test_reexport_is_idempotent_and_adds_only_new_runs(workspace, tiny_bert_dir, reviews_csv, tmp_path, capsys,
                                                      monkeypatch):
    store = tmp_path / "mlruns"
    first = export(["--mlflow", str(store), "--workspace", str(workspace)], capsys)
    client = client_for(first["tracking_uri"], monkeypatch)
    before = {run.info.run_id for run in all_runs(client, "tiny")}
    second = export(["--mlflow", str(store), "--workspace", str(workspace)], capsys)
    assert [run["action"] for run in second["runs"]] == ["unchanged"]
    assert {run.info.run_id for run in all_runs(client, "tiny")} == before
    ft = next(run for run in all_runs(client, "tiny") if run.data.tags.get("fmkit.stage_name") == "ft")
    assert len(client.get_metric_history(ft.info.run_id, "test.accuracy")) == 1  # not logged twice

    # an export interrupted half-way (its run lacks the completion tag) is written again, not duplicated
    client.delete_tag(ft.info.run_id, "fmkit.export")
    third = export(["--mlflow", str(store), "--workspace", str(workspace)], capsys)
    assert third["runs"][0]["stages"] == {"ft": "unchanged", "q": "unchanged", "ev": "unchanged"}  # the parent was complete
    parent = next(run for run in all_runs(client, "tiny") if run.data.tags["fmkit.kind"] == "recipe-run")
    client.delete_tag(parent.info.run_id, "fmkit.export")
    fourth = export(["--mlflow", str(store), "--workspace", str(workspace)], capsys)
    assert fourth["runs"][0]["action"] == "updated"
    assert fourth["runs"][0]["stages"] == {"ft": "rewritten", "q": "unchanged", "ev": "unchanged"}
    active = all_runs(client, "tiny")
    assert len(active) == 4
    new_ft = next(run for run in active if run.data.tags.get("fmkit.stage_name") == "ft")
    assert new_ft.info.run_id != ft.info.run_id and len(client.get_metric_history(new_ft.info.run_id, "test.accuracy")) == 1
    assert len(client.get_metric_history(parent.info.run_id, "ft.test.accuracy")) == 1

    # a second recipe run (every stage reused from the cache) is exported next to the first, which stays as it is
    run_recipe_in(workspace, tiny_bert_dir, reviews_csv, tmp_path)
    fifth = export(["--mlflow", str(store), "--workspace", str(workspace)], capsys)
    assert [run["action"] for run in fifth["runs"]] == ["unchanged", "created"]
    runs = all_runs(client, "tiny")
    assert len(runs) == 8
    cached = [run for run in runs if run.data.tags.get("fmkit.run_id") == "2" and run.data.tags["fmkit.kind"] == "stage"]
    assert {run.data.tags["fmkit.cached"] for run in cached} == {"true"}


def test_export_to_sqlite_keeps_artifacts_beside_the_database(workspace, tmp_path, capsys, monkeypatch):
    database = tmp_path / "store" / "mlflow.db"
    database.parent.mkdir()
    uri = f"sqlite:///{database}"
    result = export(["--mlflow", uri, "--workspace", str(workspace), "--run", "1", "--experiment", "team", "--weights"],
                    capsys)
    assert result["tracking_uri"] == uri
    client = client_for(uri, monkeypatch)
    runs = all_runs(client, "team")
    assert len(runs) == 4 and all(run.info.status == "FINISHED" for run in runs)
    stages = {run.data.tags.get("fmkit.stage_name"): run for run in runs}
    assert stages["ft"].info.artifact_uri.startswith((database.parent / "mlartifacts").as_uri())
    # --weights: each bundle's model files once, with the stage that made it (not again for evaluate)
    bundle = Path(stages["ft"].data.tags["fmkit.bundle_path"])
    model_files = {f"bundle/{path.name}" for path in bundle.iterdir() if path.name not in ("fmkit.json", "reports")}
    assert "bundle/model.safetensors" in model_files
    assert {item.path for item in client.list_artifacts(stages["ft"].info.run_id, "bundle")} >= model_files
    assert "bundle/model.onnx" in {item.path for item in client.list_artifacts(stages["q"].info.run_id, "bundle")}
    assert {item.path for item in client.list_artifacts(stages["ev"].info.run_id, "bundle")} == {
        "bundle/fmkit.json", "bundle/reports"}


def test_live_callback_logs_params_steps_evaluations_and_the_bundle(tiny_bert_dir, reviews_csv, tmp_path, capsys,
                                                                    monkeypatch):
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune
    from fmkit.tracking.live import MlflowLiveCallback

    cfg = FinetuneConfig(model=str(tiny_bert_dir), data={"source": str(reviews_csv)}, train=TRAIN)
    out = tmp_path / "bundle"
    store = tmp_path / "mlruns"
    callback = MlflowLiveCallback(str(store), stage="finetune", config=cfg.model_dump(mode="json"),
                                  experiment="live", run_name="reviews", bundle_dir=out, min_interval_seconds=0)
    manifest = run_finetune(cfg, out, callbacks=[callback])
    callback.finish(manifest)
    client = client_for(store.resolve().as_uri(), monkeypatch)
    [run] = all_runs(client, "live")
    assert run.info.status == "FINISHED" and run.info.run_name == "reviews"
    assert run.data.params["train.epochs"] == "3" and run.data.params["data.source"] == str(reviews_csv)
    steps = manifest.training["steps"]
    loss = client.get_metric_history(run.info.run_id, "train.loss")
    assert [point.step for point in loss] == list(range(1, steps + 1))  # min_interval_seconds=0: every step
    assert all(point.value > 0 for point in loss)
    rate = client.get_metric_history(run.info.run_id, "train.learning_rate")
    assert max(point.value for point in rate) == pytest.approx(TRAIN["learning_rate"], rel=1e-6)
    evaluations = client.get_metric_history(run.info.run_id, "eval.accuracy")
    history = manifest.training["history"]
    assert points(evaluations) == (steps_of(history), pytest.approx([entry["accuracy"] for entry in history]))
    assert run.data.metrics["test.accuracy"] == pytest.approx(manifest.metrics["test"]["accuracy"])
    assert run.data.metrics["training.steps"] == steps
    assert run.data.tags["fmkit.bundle_digest"] == manifest.content_digest
    assert {item.path for item in client.list_artifacts(run.info.run_id, "bundle")} == {"bundle/fmkit.json", "bundle/reports"}

    # the same bundle exported afterwards (no recipe made it) is one run, found again by its digest
    first = export(["--mlflow", str(store), "--bundle", str(out), "--workspace", str(tmp_path)], capsys)
    second = export(["--mlflow", str(store), "--bundle", str(out), "--workspace", str(tmp_path)], capsys)
    assert [r["action"] for r in first["runs"]] == ["created"] and [r["action"] for r in second["runs"]] == ["unchanged"]
    [exported] = all_runs(client, "fmkit")
    assert exported.data.metrics["test.accuracy"] == run.data.metrics["test.accuracy"]
    assert exported.data.params["train.epochs"] == "3"


def test_live_logging_is_throttled_and_a_failure_is_recorded(tmp_path, monkeypatch):
    from fmkit.tracking.live import MlflowLiveCallback

    store = tmp_path / "mlruns"
    callback = MlflowLiveCallback(str(store), stage="pretrain", config={"train": {"epochs": 1}}, experiment="throttle")
    started = time.monotonic()
    for step in range(1, 2001):
        callback.on_step(step, 1.0 / step, 1e-3)
    callback.on_evaluate(2000, 1.0, {"accuracy": 0.5})
    elapsed = time.monotonic() - started
    callback.finish(error=RuntimeError("rank 1 died"))
    client = client_for(store.resolve().as_uri(), monkeypatch)
    [run] = all_runs(client, "throttle")
    steps = [point.step for point in client.get_metric_history(run.info.run_id, "train.loss")]
    assert steps[0] == 1 and steps[-1] == 2000  # the first step, and the evaluated step caught up
    assert len(steps) <= 2 + elapsed / callback.min_interval_seconds  # one point per 0.5 s, not 2000
    assert run.info.status == "FAILED" and run.data.tags["fmkit.error"] == "RuntimeError: rank 1 died"


def test_tracking_arguments_and_bad_uris_fail_clearly(tmp_path, capsys):
    import argparse

    from fmkit.tracking.cli import add_tracking_arguments, callbacks_from_args
    from fmkit.tracking.live import MlflowLiveCallback

    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    add_tracking_arguments(parser)
    assert callbacks_from_args(parser.parse_args([]), stage="finetune", config={}) == []
    [callback] = callbacks_from_args(parser.parse_args(["--mlflow", str(tmp_path / "mlruns"), "--out", "m"]),
                                     stage="finetune", config={"seed": 1})
    assert isinstance(callback, MlflowLiveCallback) and callback.uri == (tmp_path / "mlruns").resolve().as_uri()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(BadInputError, match="is a file, not a directory"):
        callbacks_from_args(parser.parse_args(["--mlflow", str(a_file)]), stage="finetune", config={})

    with socket_closed_port() as port:
        cases = {f"http://127.0.0.1:{port}": "cannot reach the MLflow tracking server",
                 "ftp://host/store": "unsupported scheme 'ftp'", "sqlite://mlflow.db": "three slashes"}
        for uri, expected in cases.items():
            capsys.readouterr()
            started = time.monotonic()
            assert cli(["runs", "export", "--mlflow", uri, "--workspace", str(tmp_path)]) == 2
            assert expected in capsys.readouterr().err and time.monotonic() - started < 10
    assert cli(["runs", "export", "--mlflow", str(tmp_path / "s"), "--workspace", str(tmp_path / "none")]) == 2
    assert "no run registry" in capsys.readouterr().err


class socket_closed_port:
    """A loopback port nobody listens on (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        return None


def test_mlflow_is_not_imported_by_fmkit_or_the_cli():
    probe = ("import sys\nfrom fmkit.cli.main import build_parser\nimport fmkit.tracking.cli, fmkit.tracking.live\n"
             "build_parser().parse_args(['runs', 'export', '--mlflow', 'x'])\nprint('mlflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_finetune_command_tracks_live_with_the_mlflow_flag(tiny_bert_dir, reviews_csv, tmp_path, monkeypatch):
    store = tmp_path / "mlruns"
    out = tmp_path / "reviews"
    assert cli(["finetune", "--model", str(tiny_bert_dir), "--data", str(reviews_csv), "--out", str(out),
                "--epochs", "1", "--batch-size", "16", "--learning-rate", "0.005", "--precision", "fp32",
                "--no-progress", "--mlflow", str(store), "--mlflow-experiment", "cli"]) == 0
    manifest = json.loads((out / "fmkit.json").read_text())
    client = client_for(store.resolve().as_uri(), monkeypatch)
    [run] = all_runs(client, "cli")
    assert run.info.status == "FINISHED" and run.info.run_name == "reviews"
    assert run.data.tags["fmkit.out"] == str(out.resolve()) and run.data.tags["fmkit.stage"] == "finetune"
    assert run.data.metrics["test.accuracy"] == pytest.approx(manifest["metrics"]["test"]["accuracy"])
    steps = [point.step for point in client.get_metric_history(run.info.run_id, "train.loss")]
    assert steps[0] == 1 and steps[-1] == manifest["training"]["steps"]
