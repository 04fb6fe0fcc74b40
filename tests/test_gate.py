"""Policy gates pass and fail on real manifests, list every broken rule, and stop a recipe."""

import json
import subprocess
import sys
import textwrap

import pytest

from fmkit.audit.gate import Policy, check_policy, load_policy
from fmkit.bundle import read_manifest
from fmkit.errors import BadInputError


def fmkit(*args):
    return subprocess.run([sys.executable, "-m", "fmkit", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def int8(tiny_bundle, tmp_path_factory):
    from fmkit.compress import CompressConfig
    from fmkit.compress.stage import run_compress

    out = tmp_path_factory.mktemp("gate") / "int8"
    run_compress(tiny_bundle, CompressConfig(method="quantize-dynamic", max_accuracy_drop=100,
                                             measure={"latency_samples": 10, "threads": 1}), out)
    return out


def test_rules_pass_and_fail_against_measured_values(int8):
    manifest = read_manifest(int8)
    figures = manifest.benchmarks["onnx"]
    accuracy = manifest.metrics["test"]["accuracy"]
    passing = Policy(min_accuracy=accuracy, max_p95_latency_ms=figures["latency_p95_ms"] + 1,
                     max_size_mb=figures["size_bytes"] / 1e6 + 0.01, max_accuracy_drop=100)
    assert all(r.passed for r in check_policy(manifest, passing))
    failing = Policy(min_accuracy=min(1.0, accuracy + 0.01), max_size_mb=figures["size_bytes"] / 2e6)
    results = check_policy(manifest, failing)
    assert [r.passed for r in results] == [accuracy + 0.01 > 1.0, False]
    assert results[1].measured == pytest.approx(figures["size_bytes"] / 1e6)


def test_unmeasured_quantities_fail_unless_allowed(int8):
    manifest = read_manifest(int8)
    (result,) = check_policy(manifest, Policy(max_epsilon=8))
    assert not result.passed and "not measured" in result.describe()
    (result,) = check_policy(manifest, Policy(max_epsilon=8, allow_unmeasured=True))
    assert result.passed


def test_cli_lists_every_broken_rule_and_exits_1(int8, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_accuracy: 0.5\nmax_epsilon: 8\nmax_mia_auc: 0.6\n")
    result = fmkit("gate", int8, "--policy", policy)
    assert result.returncode == 1
    assert "BROKEN max_epsilon: measured not measured, allowed ≤ 8" in result.stdout
    assert "BROKEN max_mia_auc" in result.stdout and "ok     min_accuracy" in result.stdout
    assert "2 rule(s) broken" in result.stdout
    policy.write_text("min_accuracy: 0.5\n")
    ok = fmkit("gate", int8, "--policy", policy, "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["passed"] is True


def test_bad_policies_are_bad_input(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("min_acuracy: 0.8\nmax_size_mb: -1\n")
    with pytest.raises(BadInputError) as error:
        load_policy(path)
    assert "Did you mean 'min_accuracy'" in str(error.value) and "max_size_mb" in str(error.value)
    path.write_text("allow_unmeasured: true\n")
    with pytest.raises(BadInputError, match="sets no rule"):
        check_policy(None, load_policy(path))


def test_gate_stage_stops_the_recipe(tiny_bundle, tmp_path):
    recipe = tmp_path / "gated.yaml"
    recipe.write_text(textwrap.dedent(f"""
        name: gated
        stages:
          - name: check
            stage: gate
            bundle: {tiny_bundle}
            min_accuracy: 0.5
            max_epsilon: 1.0
        """))
    result = fmkit("run", recipe, "--workspace", tmp_path / "ws")
    assert result.returncode == 1
    assert "1 rule(s) broken" in result.stderr and "max_epsilon" in result.stderr


def test_a_variant_older_than_the_total_record_counts_its_step_drop_only_after_the_task_model():
    from fmkit.bundle.lineage import total_accuracy_drop
    from fmkit.bundle.manifest import LineageEntry, Manifest
    from fmkit.compress import CompressConfig

    finetune = LineageEntry(stage="finetune", config={"model": "tiny", "method": "full"}, parent_digest=None)
    compression = LineageEntry(stage="quantize-dynamic", parent_digest="d",
                               config=CompressConfig(method="quantize-dynamic").model_dump(mode="json"))

    def variant(*lineage):
        return Manifest(task="text-classification", labels=["neg", "pos"], base_model={}, lineage=list(lineage),
                        compression={"accuracy_drop_points": 0.4})

    assert total_accuracy_drop(variant(finetune, compression)) == 0.4  # its parent was the task model
    assert total_accuracy_drop(variant(finetune, compression, compression)) is None  # a chain: unknown
