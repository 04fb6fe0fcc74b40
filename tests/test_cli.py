"""The CLI end to end on the tiny model: exit codes, --json, predict from JSONL, info."""

import json
import subprocess
import sys

import pytest


def fmkit(*args, input=None):
    return subprocess.run([sys.executable, "-m", "fmkit", *map(str, args)], capture_output=True, text=True,
                          input=input)


@pytest.fixture(scope="module")
def bundle(tiny_bert_dir, reviews_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "tiny"
    result = fmkit("finetune", "--model", tiny_bert_dir, "--data", reviews_csv, "--epochs", 3, "--batch-size", 16,
                   "--learning-rate", 5e-3, "--precision", "fp32", "--no-progress", "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["metrics"]["test"]["accuracy"] >= 0.9
    return out


def test_evaluate_json_and_manifest(bundle):
    result = fmkit("evaluate", bundle, "--split", "validation", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["count"] == 40 and "expected_calibration_error" in metrics
    info = json.loads(fmkit("info", bundle, "--json").stdout)
    assert info["metrics"]["validation"]["accuracy"] == metrics["accuracy"]
    assert info["integrity"] == "ok"


def test_evaluate_on_another_file_with_unseen_labels_is_bad_input(bundle, tmp_path):
    from conftest import write_csv

    path = write_csv(tmp_path / "other.csv", [("great film", "pos"), ("dull film", "neutral"), ("bad", "neg")])
    result = fmkit("evaluate", bundle, "--data", path, "--split", "all")
    assert result.returncode == 2
    assert "labels ['neutral'] were not seen at training time" in result.stderr


def test_predict_inline_and_jsonl(bundle, tmp_path):
    result = fmkit("predict", bundle, "a superb, moving film", "--json")
    assert result.returncode == 0, result.stderr
    (prediction,) = json.loads(result.stdout)
    assert prediction["label"] == "pos" and set(prediction["probabilities"]) == {"neg", "pos"}
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "awful and dull"}\n"great warm film"\n')
    lines = fmkit("predict", bundle, "--input", path).stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["neg", "pos"]


@pytest.mark.parametrize("args, message", [
    (["finetune", "--data", "missing.csv", "--out", "x"], "missing.csv does not exist"),
    (["finetune", "--data", "rotten-tomatoes", "--model", "org/some-model", "--out", "x"], "never downloads"),
    (["finetune", "--data", "x.csv", "--epochs", "0", "--method", "lorra", "--out", "x"], "2 error(s)"),
    (["predict", "no-such-bundle", "hi"], "does not exist"),
    (["run", "no-such-recipe.yaml"], "does not exist"),
])
def test_bad_input_exits_2_with_a_message(args, message):
    result = fmkit(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_existing_output_is_refused(bundle, reviews_csv):
    result = fmkit("finetune", "--data", reviews_csv, "--out", bundle)
    assert result.returncode == 2 and "--overwrite" in result.stderr
