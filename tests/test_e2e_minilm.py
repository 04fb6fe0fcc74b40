"""End to end on the real MiniLM and the real Rotten Tomatoes data, through the CLI.

A stratified 1,500-row sample keeps this to a few minutes on 2 cores.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

COMMON = ["--model", "minilm", "--data", "rotten-tomatoes", "--max-rows", "1500", "--epochs", "1",
          "--batch-size", "32", "--learning-rate", "1e-4", "--checkpoint-every", "5", "--no-progress"]


def fmkit_command(*args):
    return [sys.executable, "-m", "fmkit", *map(str, args)]


@pytest.fixture(scope="module")
def full_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "reviews-full"
    result = subprocess.run(fmkit_command("finetune", *COMMON, "--out", out, "--json"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_accuracy_well_above_chance(full_bundle):
    from fmkit.bundle import read_manifest

    manifest = read_manifest(full_bundle)
    assert manifest.data["split_sizes"] == {"train": 1200, "validation": 150, "test": 150}
    assert manifest.metrics["test"]["accuracy"] > 0.68  # chance is 0.58 (the majority class)
    assert manifest.training["precision"] in ("bf16", "fp32")


def test_bundle_loads_in_sentence_transformers_with_identical_logits(full_bundle):
    """MiniLM declares mean pooling, so the default head reads it; sentence-transformers opens the bundle
    (docs/bundle.md) and computes fmkit's logits."""
    from sentence_transformers import SentenceTransformer

    import fmkit

    texts = ["a warm, funny, beautifully acted film", "the plot is thin and the acting is wooden",
             "an overlong, self-indulgent mess that nonetheless has a few moments of real grace"]
    model = SentenceTransformer(str(full_bundle), device="cpu")
    reference = model.encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(fmkit.load(full_bundle, device="cpu").logits(texts), reference, atol=1e-5)
    assert model[0].auto_model.config.id2label == {0: "fresh", 1: "rotten"}
    prediction = subprocess.run(fmkit_command("predict", full_bundle, texts[0], "--json"), capture_output=True,
                                text=True, check=True)
    assert json.loads(prediction.stdout)[0]["label"] == "fresh"


def test_resume_after_kill_9_reaches_the_same_metrics(full_bundle, tmp_path):
    from fmkit.bundle import read_manifest

    out = tmp_path / "resumed"
    state = tmp_path / "resumed.checkpoints" / "latest" / "state.json"
    process = subprocess.Popen(fmkit_command("finetune", *COMMON, "--out", out), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if state.is_file() and json.loads(state.read_text())["step"] >= 10:
            break
        time.sleep(0.2)
    assert process.poll() is None, "training ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists()
    result = subprocess.run(fmkit_command("finetune", *COMMON, "--out", out, "--resume"), capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    clean, resumed = read_manifest(full_bundle), read_manifest(out)
    for split in ("validation", "test"):
        assert resumed.metrics[split]["accuracy"] == clean.metrics[split]["accuracy"]
        assert resumed.metrics[split]["log_loss"] == pytest.approx(clean.metrics[split]["log_loss"], abs=1e-6)


def test_lora_on_minilm_learns(tmp_path):
    from fmkit.bundle import read_manifest

    out = tmp_path / "reviews-lora"
    args = [{"1e-4": "2e-3", "1": "2"}.get(a, a) for a in COMMON]  # LoRA: higher LR, 2 epochs
    result = subprocess.run(fmkit_command("finetune", *args, "--method", "lora", "--out", out), capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = read_manifest(out)
    assert manifest.metrics["test"]["accuracy"] > 0.7  # 0.79 when measured
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_compress_minilm_to_int8_and_compare(full_bundle, tmp_path):
    from fmkit.bundle import read_manifest

    out = tmp_path / "reviews-int8"
    result = subprocess.run(fmkit_command("compress", full_bundle, "--method", "quantize-dynamic", "--out", out,
                                          "--max-accuracy-drop", "3", "--json"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = read_manifest(out)
    assert manifest.runtime == "onnx" and manifest.compression["status"] == "ok"
    figures = manifest.benchmarks["onnx"]
    parent_size = (full_bundle / "model.safetensors").stat().st_size
    assert figures["size_bytes"] < parent_size / 3  # int8 weights: about a quarter of fp32
    assert figures["latency_p50_ms"] > 0 and figures["throughput_per_second"] > 0
    compared = subprocess.run(fmkit_command("compare", full_bundle, out, "--plot", tmp_path / "p.png", "--json"),
                              capture_output=True, text=True)
    assert compared.returncode == 0, compared.stderr[-3000:]
    rows = json.loads(compared.stdout)["rows"]
    assert [r["runtime"] for r in rows] == ["torch", "onnx"]
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_audits_explain_and_report_on_the_real_model(full_bundle, tmp_path):
    """The audit checks on real MiniLM + real reviews: counterfactual, robustness, explanations, privacy."""
    import shutil

    bundle = tmp_path / "reviews"
    shutil.copytree(full_bundle, bundle)
    result = subprocess.run(fmkit_command("audit", "all", bundle, "--max-rows", "150", "--explain-rows", "12",
                                          "--steps", "16", "--bootstrap", "50", "--no-progress", "--json"),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout)
    assert "fairness" not in results and "fairness skipped" in result.stderr  # no group column in the reviews
    assert results["robustness"]["perturbations"]["lowercase"]["stability_rate"] == 1.0  # MiniLM is uncased
    assert results["explanations"]["faithfulness"]["faithfulness_gap"] > 0  # top words matter more than random ones
    assert results["explanations"]["mean_abs_convergence_delta"] < 0.05
    assert 0.4 < results["privacy"]["auc"] < 0.8
    explained = subprocess.run(fmkit_command("explain", bundle, "a warm, funny, beautifully acted film", "--json"),
                               capture_output=True, text=True, check=True)
    words = json.loads(explained.stdout)[0]["words"]
    assert max(words, key=lambda w: w["attribution"])["word"].strip(",") in ("warm", "funny", "beautifully")


def test_dp_lora_on_real_data_spends_its_budget(tmp_path):
    out = tmp_path / "reviews-dp"
    result = subprocess.run(fmkit_command("finetune", "--model", "minilm", "--data", "rotten-tomatoes", "--max-rows",
                                          "1000", "--epochs", "1", "--batch-size", "32", "--method", "lora",
                                          "--learning-rate", "3e-3", "--no-progress", "--privacy", "dp",
                                          "--target-epsilon", "8", "--delta", "1e-4", "--out", out, "--json"),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    from fmkit.bundle import read_manifest

    manifest = read_manifest(out)
    dp = manifest.privacy["dp"]
    assert dp["epsilon"] == pytest.approx(8.0, abs=0.05) and dp["grad_sample_mode"] == "hooks"
    assert manifest.metrics["test"]["accuracy"] > 0.55
