"""Compression methods, ONNX export and the runtime interface on the tiny BERT."""

import json

import numpy as np
import pytest
import torch

from fmkit.compress import CompressConfig
from fmkit.compress.stage import run_compress
from fmkit.errors import BadInputError, CheckFailedError

NO_MEASURE = {"enabled": False}


@pytest.fixture(scope="module")
def parent(tiny_bundle):
    return tiny_bundle


def compress(parent, out, method, **kwargs):
    return run_compress(parent, CompressConfig(method=method, measure=NO_MEASURE, **kwargs), out)


def test_prune_magnitude_mask_is_exact():
    from fmkit.compress.methods.prune_magnitude import prune_magnitude_

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    before = torch.cat([model[0].weight.flatten(), model[2].weight.flatten()]).detach().clone()
    facts = prune_magnitude_(model, 0.4, include_classifier=True)
    after = torch.cat([model[0].weight.flatten(), model[2].weight.flatten()])
    expected = before.clone()
    expected[torch.argsort(before.abs())[:14]] = 0  # 40% of 35 weights, the globally smallest
    assert torch.equal(after, expected)
    assert facts["pruned_weights"] == 14 and facts["sparsity"] == pytest.approx(14 / 35)


def test_prune_magnitude_variant_reports_real_sparsity(parent, tmp_path):
    manifest = compress(parent, tmp_path / "pruned", {"name": "prune-magnitude", "sparsity": 0.3},
                        max_accuracy_drop=100)
    assert manifest.compression["sparsity"] == pytest.approx(0.3, abs=1e-3)
    assert "no speed-up" in manifest.compression["note"]
    assert [e.stage for e in manifest.lineage] == ["finetune", "prune-magnitude"]


def test_sparsity_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="sparsity"):
        CompressConfig(method={"name": "prune-magnitude", "sparsity": 1.5})


def test_unknown_method_lists_registered_ones():
    with pytest.raises(ValueError, match=r"unknown method 'quantise-dynamic'; registered: .*quantize-dynamic.*"
                                         r"Did you mean 'quantize-dynamic'"):
        CompressConfig(method="quantise-dynamic")


def test_onnx_export_matches_pytorch_and_predicts_identically(parent, tmp_path):
    import fmkit

    manifest = compress(parent, tmp_path / "onnx", "export-onnx")
    assert manifest.runtime == "onnx" and (tmp_path / "onnx" / "model.onnx").is_file()
    texts = ["the film was great and warm", "a dull and tedious plot", "movie " * 40]
    torch_logits = fmkit.load(parent, device="cpu").logits(texts)
    onnx_runtime = fmkit.load(tmp_path / "onnx")
    assert onnx_runtime.backend == "onnx"
    np.testing.assert_allclose(onnx_runtime.logits(texts), torch_logits, atol=1e-4)
    assert [p.label for p in onnx_runtime.predict(texts)] == [p.label for p in fmkit.load(parent).predict(texts)]


def test_dynamic_quantization_runs_and_stays_close(parent, tmp_path):
    import fmkit

    manifest = compress(parent, tmp_path / "int8", "quantize-dynamic", max_accuracy_drop=5)
    assert manifest.compression["status"] == "ok"
    assert manifest.metrics["test"]["accuracy"] >= 0.9
    texts = ["the film was great and warm", "a dull and tedious plot"]
    reference = fmkit.load(parent).predict_proba(texts)
    quantized = fmkit.load(tmp_path / "int8").predict_proba(texts)
    np.testing.assert_allclose(quantized, reference, atol=0.05)
    with pytest.raises(BadInputError, match=r"is already quantized \(quantize-dynamic\)"):
        compress(tmp_path / "int8", tmp_path / "twice", "quantize-dynamic")


def test_accuracy_budget_failure_is_recorded_and_raised(parent, tmp_path):
    from fmkit.bundle import read_manifest

    with pytest.raises(CheckFailedError, match="more than --max-accuracy-drop 0.0"):
        compress(parent, tmp_path / "wrecked", {"name": "prune-magnitude", "sparsity": 0.95}, max_accuracy_drop=0.0)
    assert read_manifest(tmp_path / "wrecked").compression["status"] == "failed"


def test_distillation_loss_matches_hand_computation():
    from fmkit.compress.methods.distill import distillation_loss

    student = torch.tensor([[1.0, 0.0]])
    teacher = torch.tensor([[0.0, 2.0]])
    labels = torch.tensor([1])
    t = 2.0
    p = torch.softmax(teacher / t, dim=-1)  # teacher's soft targets
    q = torch.softmax(student / t, dim=-1)
    kl = float((p * (p.log() - q.log())).sum()) * t * t
    ce = -float(torch.log_softmax(student, dim=-1)[0, 1])
    assert float(distillation_loss(student, teacher, labels, 0.3, t)) == pytest.approx(0.3 * kl + 0.7 * ce, rel=1e-6)


def test_distill_makes_a_smaller_student(parent, tmp_path):
    from fmkit.compress.methods.distill import chosen_layers

    assert chosen_layers(6, 3) == [1, 3, 5] and chosen_layers(2, 1) == [1]
    manifest = compress(parent, tmp_path / "student",
                        {"name": "distill", "student_layers": 1,
                         "train": {"epochs": 2, "batch_size": 16, "learning_rate": 5e-3, "progress": False,
                                   "precision": "fp32"}}, max_accuracy_drop=100)
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    assert manifest.compression["layers_kept"] == [1]
    with pytest.raises(BadInputError, match="not smaller than the teacher's 2 layers"):
        compress(parent, tmp_path / "big", {"name": "distill", "student_layers": 2})


def test_bf16_variant_halves_the_weights(parent, tmp_path):
    compress(parent, tmp_path / "bf16", "bf16", max_accuracy_drop=100)
    parent_size = (parent / "model.safetensors").stat().st_size
    assert (tmp_path / "bf16" / "model.safetensors").stat().st_size < 0.6 * parent_size


def test_torch_runtime_precision_casts_weights_once_and_keeps_stored_types(parent, tmp_path):
    import fmkit

    texts = ["a great and warm film", "dull, slow and far too long", "fine"]
    stored = fmkit.load(parent)
    assert stored.precision == "fp32" and stored.model.dtype == torch.float32
    cast = fmkit.load(parent, precision="bf16")
    assert cast.model.dtype == torch.bfloat16 and all(p.dtype == torch.bfloat16 for p in cast.model.parameters())
    reference, fast = stored.logits(texts), cast.logits(texts)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, reference, atol=0.1)  # bf16 keeps ~3 significant digits
    assert (fast.argmax(1) == reference.argmax(1)).all()

    compress(parent, tmp_path / "bf16", "bf16", max_accuracy_drop=100)
    as_stored = fmkit.load(tmp_path / "bf16")  # a bf16 variant runs in bf16 unless told otherwise
    assert as_stored.precision == "bf16" and as_stored.model.dtype == torch.bfloat16
    assert fmkit.load(tmp_path / "bf16", precision="fp32").model.dtype == torch.float32
    with pytest.raises(BadInputError, match="precision='int3'.*fp32, bf16"):
        fmkit.load(parent, precision="int3")


def test_measure_and_compare(parent, tmp_path):
    from fmkit.compress.compare import compare_bundles, format_table, pareto_plot
    from fmkit.runtime.measure import measure_bundle

    compress(parent, tmp_path / "int8", "quantize-dynamic", max_accuracy_drop=100)
    figures = measure_bundle(tmp_path / "int8", ["a great film"] * 40, threads=1, latency_samples=10,
                             throughput_batch=8)
    assert figures["runtime"] == "onnx" and figures["latency_p50_ms"] > 0 and figures["throughput_per_second"] > 0
    assert figures["peak_rss_mb"] > 10 and figures["size_bytes"] > 0 and figures["parameters"] > 1000
    rows = compare_bundles([parent, tmp_path / "int8"], measure=True, threads=1)
    assert all(r["latency_p50_ms"] for r in rows)
    assert any(r["pareto"] for r in rows)
    assert "int8" in format_table(rows)
    assert pareto_plot(rows, tmp_path / "pareto.png").stat().st_size > 1000


def test_structured_pruning_nothing_changes_nothing(parent):
    from fmkit.compress.methods.prune_structured import importance_scores, prune_structured_
    from fmkit.runtime.text import load_hf_classifier

    tokenizer, model = load_hf_classifier(parent)
    batch = tokenizer(["the film was great", "a dull plot and bland cast"], padding=True, return_tensors="pt")
    model.eval()
    with torch.inference_mode():
        before = model(**batch).logits
    labelled = {**batch, "labels": torch.tensor([1, 0])}
    heads, neurons = importance_scores(model, [labelled])
    prune_structured_(model, heads, neurons, 0.0, 0.0)
    with torch.inference_mode():
        torch.testing.assert_close(model(**batch).logits, before)


def test_structured_pruning_shrinks_shapes_and_keeps_outputs_of_kept_units(parent):
    from fmkit.compress.methods.prune_structured import importance_scores, prune_structured_
    from fmkit.runtime.text import load_hf_classifier

    tokenizer, model = load_hf_classifier(parent)
    batch = {**tokenizer(["the film was great", "a dull plot"], padding=True, return_tensors="pt"),
             "labels": torch.tensor([1, 0])}
    heads, neurons = importance_scores(model, [batch])
    assert [len(h) for h in heads] == [2, 2] and [len(n) for n in neurons] == [64, 64]
    facts = prune_structured_(model, heads, neurons, 0.5, 0.25)
    assert facts["heads_kept_per_layer"] == [1, 1]  # 2 of 4 heads removed, at least one kept per layer
    assert facts["ffn_kept_per_layer"] == [48, 48]
    layer = model.bert.encoder.layer[0]
    assert layer.attention.self.query.weight.shape == (16, 32)
    assert layer.attention.output.dense.weight.shape == (32, 16)
    assert layer.intermediate.dense.weight.shape == (48, 32) and layer.output.dense.weight.shape == (32, 48)
    model.eval()
    with torch.inference_mode():
        assert torch.isfinite(model(**{k: v for k, v in batch.items() if k != "labels"}).logits).all()


def test_structured_pruning_variant_runs_on_onnx_and_chains_into_quantization(parent, tmp_path):
    manifest = compress(parent, tmp_path / "pruned",
                        {"name": "prune-structured", "heads_fraction": 0.25, "ffn_fraction": 0.25,
                         "calibration_samples": 32,
                         "recovery": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "progress": False,
                                      "precision": "fp32"}}, max_accuracy_drop=100)
    assert manifest.runtime == "onnx"
    assert manifest.compression["parameters_after"] < manifest.compression["parameters_before"]
    quantized = compress(tmp_path / "pruned", tmp_path / "pruned-int8", "quantize-dynamic", max_accuracy_drop=100)
    assert [e.stage for e in quantized.lineage] == ["finetune", "prune-structured", "quantize-dynamic"]
    with pytest.raises(BadInputError, match="bf16 needs a PyTorch bundle"):
        compress(tmp_path / "pruned", tmp_path / "x", "bf16")


def test_too_few_calibration_samples_is_bad_input(parent, tmp_path):
    with pytest.raises(BadInputError, match="calibration needs 5000 samples"):
        compress(parent, tmp_path / "p", {"name": "prune-structured", "calibration_samples": 5000})


def test_static_quantization_with_fallback(parent, tmp_path):
    import onnx

    manifest = compress(parent, tmp_path / "static",
                        {"name": "quantize-static", "calibration_samples": 32, "validation_samples": 50},
                        max_accuracy_drop=0.0)
    facts = manifest.compression
    assert facts["format"] == "QDQ" and manifest.runtime == "onnx"
    assert {"layer.0", "layer.1"} <= set(facts["groups"])
    # A zero budget: the fallback goes on until validation accuracy matches fp32, or everything is float.
    held = facts["validation_accuracy"] >= facts["validation_fp32_accuracy"]
    assert held or sorted(facts["float_groups"]) == facts["groups"]
    assert facts["fallback_trials"][0]["float_groups"] == []
    ops = {node.op_type for node in onnx.load(str(tmp_path / "static" / "model.onnx")).graph.node}
    if len(facts["float_groups"]) < len(facts["groups"]):
        assert "QuantizeLinear" in ops and "DequantizeLinear" in ops


def test_other_data_than_the_parents_is_refused(parent, tmp_path):
    from conftest import synthetic_reviews, write_csv

    other = write_csv(tmp_path / "other.csv", synthetic_reviews(100, seed=5))
    with pytest.raises(BadInputError, match="is not the data .* was trained on"):
        compress(parent, tmp_path / "x", "quantize-dynamic", data=str(other))


def test_export_of_an_unsupported_architecture_is_refused(tmp_path):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from fmkit.export.onnx import export_onnx

    model = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=50, num_labels=2))
    with pytest.raises(BadInputError, match="ONNX export of model type 'gpt2' is not supported; supported: bert"):
        export_onnx(model, tmp_path / "m.onnx")


DISTILL_ONE_LAYER = {"name": "distill", "student_layers": 1,
                     "train": {"epochs": 1, "batch_size": 16, "learning_rate": 5e-3, "progress": False,
                               "precision": "fp32"}}


def test_a_chain_of_compressions_is_budgeted_against_the_task_model(parent, tmp_path):
    import shutil

    from fmkit.audit.gate import Policy, check_policy
    from fmkit.recipe.report import render_report, report_rows
    from fmkit.bundle import read_manifest
    from fmkit.compress.compare import compare_bundles, format_table

    task = read_manifest(parent)
    reference = {"digest": task.content_digest, "name": str(parent), "test_accuracy": task.metrics["test"]["accuracy"]}
    student = compress(parent, tmp_path / "l1", DISTILL_ONE_LAYER, max_accuracy_drop=100)
    pruned = compress(tmp_path / "l1", tmp_path / "l1-pruned", {"name": "prune-magnitude", "sparsity": 0.9},
                      max_accuracy_drop=100)
    shutil.rmtree(tmp_path / "l1")  # the reference travels in the manifest: no ancestor has to stay on disk
    int8 = compress(tmp_path / "l1-pruned", tmp_path / "l1-pruned-int8", "quantize-dynamic", max_accuracy_drop=100)
    for variant, its_parent in ((student, task), (pruned, student), (int8, pruned)):
        c, accuracy = variant.compression, variant.metrics["test"]["accuracy"]
        assert c["reference"] == reference and c["accuracy_budget"] == "total"
        assert c["accuracy_drop_points"] == pytest.approx(100 * (its_parent.metrics["test"]["accuracy"] - accuracy),
                                                          abs=1e-3)
        assert c["total_accuracy_drop_points"] == pytest.approx(100 * (reference["test_accuracy"] - accuracy), abs=1e-3)
    step, total = int8.compression["accuracy_drop_points"], int8.compression["total_accuracy_drop_points"]
    assert total > step + 1  # 90% sparsity costs accuracy, so the last step alone understates the chain's loss

    budget = max(step, 0.0) + 0.5  # the last step fits, the chain does not
    with pytest.raises(CheckFailedError, match=r"lost .* in total vs the task model .*more than --max-accuracy-drop"):
        compress(tmp_path / "l1-pruned", tmp_path / "total", "quantize-dynamic", max_accuracy_drop=budget)
    assert read_manifest(tmp_path / "total").compression["status"] == "failed"
    stepwise = compress(tmp_path / "l1-pruned", tmp_path / "step", "quantize-dynamic", max_accuracy_drop=budget,
                        accuracy_budget="step")
    assert stepwise.compression["status"] == "ok" and stepwise.compression["accuracy_budget"] == "step"

    (total_rule,) = check_policy(int8, Policy(max_accuracy_drop=budget))
    assert total_rule.measured == pytest.approx(total) and not total_rule.passed
    (step_rule,) = check_policy(int8, Policy(max_step_accuracy_drop=budget))
    assert step_rule.measured == pytest.approx(step) and step_rule.passed

    bundles = [parent, tmp_path / "l1-pruned", tmp_path / "l1-pruned-int8"]
    rows = compare_bundles(bundles, measure=False)
    assert [r["total_accuracy_drop_points"] for r in rows[1:]] == [pruned.compression["total_accuracy_drop_points"],
                                                                    total]
    table = format_table(rows)
    assert "step drop" in table and "total drop" in table and f"{total:+.2f}" in table and f"{step:+.2f}" in table
    page = render_report(report_rows(bundles, measure=False), "chain", [])
    assert "total drop (pts)" in page and f">{total:+.2f}<" in page and f">{step:+.2f}<" in page


def test_a_variant_appears_only_when_measured(parent, tmp_path):
    """Watch for the name while compress runs: the first manifest seen there already holds metrics and benchmarks."""
    import json
    import threading

    out, seen, done = tmp_path / "int8", [], threading.Event()

    def watch():
        while not seen:
            finished = done.is_set()  # read once more after the run: a loaded machine may not schedule us in time
            try:
                seen.append(json.loads((out / "fmkit.json").read_text()))
            except (FileNotFoundError, json.JSONDecodeError):
                if finished:
                    return

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_compress(parent, CompressConfig(method="quantize-dynamic", max_accuracy_drop=100,
                                            measure={"latency_samples": 10, "threads": 1}), out)
    finally:
        done.set()
        watcher.join()
    assert seen, "the variant never appeared"
    assert "test" in seen[0]["metrics"] and seen[0]["benchmarks"]["onnx"]["latency_p50_ms"] > 0
    assert seen[0]["compression"]["status"] == "ok"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".int8.")]
