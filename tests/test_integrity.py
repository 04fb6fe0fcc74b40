"""A bundle is verified before it is trusted: changed weights, edited manifests, damaged files, NaN outputs."""

import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import fmkit
from fmkit.bundle import read_manifest, update_manifest
from fmkit.bundle.seal import canonical_bytes, check_seal
from fmkit.errors import BadInputError, BundleIntegrityError, CheckFailedError, NonFiniteOutputError


def fmkit_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fmkit", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    copy = tmp_path / "reviews"
    shutil.copytree(tiny_bundle, copy)
    return copy


def patch_tensor(weights, name, value=float("nan")):
    """Overwrite every element of one float32 tensor in place: a valid file with the wrong digest."""
    raw = bytearray(weights.read_bytes())
    (header_size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_size])
    start, end = header[name]["data_offsets"]
    assert header[name]["dtype"] == "F32"
    base = 8 + header_size
    raw[base + start:base + end] = struct.pack("<f", value) * ((end - start) // 4)
    weights.write_bytes(bytes(raw))


def edit_manifest(path, change, *, recompute_digest=False):
    manifest_path = path / "fmkit.json"
    data = json.loads(manifest_path.read_text())
    change(data)
    if recompute_digest:  # an editor who read seal.py: the plain digest matches again, the HMAC cannot
        data["seal"]["digest"] = "sha256:" + hashlib.sha256(canonical_bytes(data)).hexdigest()
    manifest_path.write_text(json.dumps(data, indent=2))


def set_accuracy(data):
    data["metrics"]["test"]["accuracy"] = 0.99


# -- defect 3: changed weights are refused ----------------------------------------------------------------------

def test_patched_weights_are_refused_naming_the_file(bundle):
    patch_tensor(bundle / "model.safetensors", "classifier.bias")
    with pytest.raises(BundleIntegrityError, match=r"changed model\.safetensors.*--no-verify"):
        fmkit.load(bundle, device="cpu")
    (bundle / "extra.txt").write_text("x")
    (bundle / "split.json").unlink()
    with pytest.raises(BadInputError, match=r"missing split\.json.*changed model\.safetensors.*unexpected extra\.txt"):
        fmkit.load(bundle, device="cpu")


def test_non_finite_logits_are_an_error_never_nan(bundle):
    patch_tensor(bundle / "model.safetensors", "classifier.bias")
    with pytest.warns(UserWarning, match="WITHOUT verification"):
        model = fmkit.load(bundle, device="cpu", verify=False)
    with pytest.raises(NonFiniteOutputError, match="non-finite logits"):
        model.predict(["a warm film"])


def test_cli_refuses_changed_weights_and_no_verify_never_prints_nan(bundle):
    patch_tensor(bundle / "model.safetensors", "classifier.bias")
    refused = fmkit_cli("predict", bundle, "a warm film")
    assert refused.returncode == 2 and "changed model.safetensors" in refused.stderr, refused.stderr
    unverified = fmkit_cli("predict", bundle, "a warm film", "--no-verify", "--json")
    assert unverified.returncode == 1, unverified.stderr
    assert "non-finite" in unverified.stderr and "verification is OFF" in unverified.stderr
    assert "nan" not in unverified.stdout.lower() and "Traceback" not in unverified.stderr


def test_truncated_weights_give_a_clear_error_not_a_traceback(bundle):
    weights = bundle / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(BundleIntegrityError, match=r"changed model\.safetensors"):
        fmkit.load(bundle, device="cpu")
    with pytest.warns(UserWarning), pytest.raises(BadInputError, match="truncated or damaged"):
        fmkit.load(bundle, device="cpu", verify=False)
    result = fmkit_cli("predict", bundle, "a warm film", "--no-verify")
    assert result.returncode == 2 and "truncated or damaged" in result.stderr
    assert "Traceback" not in result.stderr


def test_training_and_compressing_from_a_changed_bundle_are_refused(bundle, reviews_csv, tmp_path):
    from fmkit.compress import CompressConfig
    from fmkit.compress.stage import run_compress
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    patch_tensor(bundle / "model.safetensors", "classifier.bias", 3.0)
    with pytest.raises(BundleIntegrityError, match="changed model.safetensors"):
        run_finetune(FinetuneConfig(model=str(bundle), data={"source": str(reviews_csv)}), tmp_path / "child")
    with pytest.raises(BundleIntegrityError, match="changed model.safetensors"):
        run_compress(bundle, CompressConfig(method={"name": "bf16"}), tmp_path / "variant")
    assert not (tmp_path / "child").exists() and not (tmp_path / "variant").exists()


def test_files_are_hashed_once_and_a_patch_that_restores_mtime_is_still_seen(bundle, monkeypatch):
    from fmkit.bundle import verify

    import fmkit.fileio

    monkeypatch.setattr(verify, "RACY_SECONDS", 0.0)  # the copy is fresh; cache it anyway
    calls = []
    original = fmkit.fileio.sha256_file
    monkeypatch.setattr(fmkit.fileio, "sha256_file", lambda path: calls.append(path) or original(path))
    manifest = read_manifest(bundle)
    assert verify.content_problems(bundle, manifest) == []
    first = len(calls)
    assert first == len(manifest.files)
    assert verify.content_problems(bundle, manifest) == []
    assert len(calls) == first  # the second check only stats the files
    weights = bundle / "model.safetensors"
    before = weights.stat()
    time.sleep(0.05)  # past the timestamp tick, so the ctime moves
    patch_tensor(weights, "classifier.bias", 3.0)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert weights.stat().st_size == before.st_size and weights.stat().st_mtime_ns == before.st_mtime_ns
    assert verify.content_problems(bundle, manifest) == ["changed model.safetensors"]


# -- defect 4: edited manifests are caught --------------------------------------------------------------------------

def test_edited_metrics_are_caught_by_info_gate_and_load(bundle, tmp_path):
    edit_manifest(bundle, set_accuracy)
    info = fmkit_cli("info", bundle)
    assert info.returncode == 1 and "manifest edited outside fmkit" in info.stdout
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_accuracy: 0.95\n")
    gate = fmkit_cli("gate", bundle, "--policy", policy)
    assert gate.returncode == 1 and "manifest edited outside fmkit" in gate.stderr and "passed" not in gate.stdout
    with pytest.raises(BundleIntegrityError, match="manifest edited outside fmkit"):
        fmkit.load(bundle, device="cpu")
    with pytest.raises(BundleIntegrityError, match="will not re-seal"):
        update_manifest(bundle, lambda m: m.metrics.__setitem__("extra", {}))


def test_a_recomputed_plain_digest_is_caught_by_the_signature(bundle):
    edit_manifest(bundle, set_accuracy, recompute_digest=True)
    check = check_seal(json.loads((bundle / "fmkit.json").read_text()))
    assert check.state == "edited" and "recomputed by hand" in check.message
    info = fmkit_cli("info", bundle, "--json")
    assert info.returncode == 1 and json.loads(info.stdout)["manifest_seal"]["state"] == "edited"


def test_every_measured_section_is_covered(bundle):
    for section in ("benchmarks", "privacy", "audits", "compression", "training", "data", "labels", "files",
                    "content_digest", "postprocess", "task", "lineage"):
        copy = bundle.with_name(f"edited-{section}")
        shutil.copytree(bundle, copy)

        def change(data, section=section):
            value = data[section]
            data[section] = (value + "x" if isinstance(value, str) else
                             value + [value[0]] if isinstance(value, list) and value and section != "labels" else
                             list(reversed(value)) if isinstance(value, list) else {**value, "edited": 1})

        edit_manifest(copy, change)
        assert check_seal(json.loads((copy / "fmkit.json").read_text())).state == "edited", section


def test_fmkit_writers_keep_the_seal(bundle):
    update_manifest(bundle, lambda m: m.metrics.__setitem__("validation", {"accuracy": 1.0}))
    assert check_seal(json.loads((bundle / "fmkit.json").read_text())).state == "ok"
    assert fmkit_cli("info", bundle).returncode == 0


def test_unknown_key_is_reported_and_its_digest_still_checked(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("FMKIT_SIGNING_KEY", "another-workspace-key-0123456789")
    check = check_seal(json.loads((bundle / "fmkit.json").read_text()))
    assert check.state == "unknown-key" and "digest ok" in check.message
    fmkit.load(bundle, device="cpu")  # loads: digests verified, signature not checkable here
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_accuracy: 0.5\n")
    gate = fmkit_cli("gate", bundle, "--policy", policy, env={"FMKIT_SIGNING_KEY": "another-workspace-key-0123456789"})
    assert gate.returncode == 1 and "unknown key" in gate.stderr
    edit_manifest(bundle, set_accuracy)
    assert check_seal(json.loads((bundle / "fmkit.json").read_text())).state == "edited"


def test_unsealed_bundles_from_an_older_fmkit(bundle, tmp_path):
    def older(data):
        data["schema_version"] = 1
        del data["seal"]

    edit_manifest(bundle, older)
    info = fmkit_cli("info", bundle)
    assert info.returncode == 0 and "unsealed (made by an older fmkit" in info.stdout
    fmkit.load(bundle, device="cpu")
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_accuracy: 0.5\n")
    gate = fmkit_cli("gate", bundle, "--policy", policy)
    assert gate.returncode == 1 and "fmkit evaluate" in gate.stderr
    evaluate = fmkit_cli("evaluate", bundle, "--split", "test")  # re-measures and seals
    assert evaluate.returncode == 0, evaluate.stderr
    assert fmkit_cli("gate", bundle, "--policy", policy).returncode == 0
    stripped = bundle.with_name("stripped")
    shutil.copytree(bundle, stripped)
    edit_manifest(stripped, lambda data: data.pop("seal"))  # schema 2 without a seal: removed by hand
    assert check_seal(json.loads((stripped / "fmkit.json").read_text())).state == "edited"


def test_signing_key_is_created_owner_only(tmp_path, monkeypatch):
    from fmkit.bundle.seal import key_id, signing_key

    monkeypatch.delenv("FMKIT_SIGNING_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert signing_key(create=False) is None
    key = signing_key(create=True)
    path = tmp_path / ".fmkit" / "signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 64
    assert signing_key(create=True) == key and len(key_id(key)) == 16
    monkeypatch.setenv("FMKIT_SIGNING_KEY", "short")
    with pytest.raises(BadInputError, match="16 or more"):
        signing_key(create=True)


def test_gate_refuses_changed_weights(bundle, tmp_path):
    from fmkit.audit.gate import read_gated_manifest

    patch_tensor(bundle / "model.safetensors", "classifier.bias", 3.0)
    with pytest.raises(CheckFailedError, match="changed model.safetensors"):
        read_gated_manifest(bundle)


# -- image runtimes ---------------------------------------------------------------------------------------------

@pytest.fixture
def image_bundle(tmp_path):
    from safetensors.torch import save_model

    from fmkit.bundle import Manifest, write_bundle
    from fmkit.fileio import write_json_atomic
    from fmkit.models.images import CONFIG_FILE, IMAGE_MODELS, WEIGHTS_FILE

    config = {"architecture": "cnn", "num_classes": 2, "labels": ["a", "b"], "channels": 1, "image_size": [8, 8],
              "input_size": 8, "normalisation": {"mean": 127.5, "std": 127.5}, "dropout": 0.0}
    model = IMAGE_MODELS.get("cnn").load().build(config)

    def files(directory):
        write_json_atomic(directory / CONFIG_FILE, config)
        save_model(model, str(directory / WEIGHTS_FILE))

    out = tmp_path / "image"
    write_bundle(out, Manifest(task="image-classification", labels=["a", "b"], base_model={"name": "cnn"}), files)
    return out


def test_image_runtime_verifies_and_refuses_nan(image_bundle):
    from safetensors import safe_open

    pixels = np.zeros((2, 8, 8), np.uint8)
    assert len(fmkit.load(image_bundle, device="cpu").predict(pixels)) == 2
    with safe_open(str(image_bundle / "model.safetensors"), "pt") as handle:
        name = next(k for k in handle.keys() if k.endswith("bias") and "classifier" in k)
    patch_tensor(image_bundle / "model.safetensors", name)
    with pytest.raises(BundleIntegrityError, match="changed model.safetensors"):
        fmkit.load(image_bundle, device="cpu")
    with pytest.warns(UserWarning):
        model = fmkit.load(image_bundle, device="cpu", verify=False)
    with pytest.raises(NonFiniteOutputError):
        model.predict(pixels)
    weights = image_bundle / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.warns(UserWarning), pytest.raises(BadInputError, match="truncated or damaged"):
        fmkit.load(image_bundle, device="cpu", verify=False)


# -- defect 11: identical LoRA runs give identical bundles ---------------------------------------------------------

def test_identical_lora_runs_have_the_same_content_digest(tiny_bert_dir, reviews_csv, tmp_path):
    digests, configs = [], []
    for seed in ("1", "2"):  # string-hash seeds under which PEFT's set of target modules iterates differently
        out = tmp_path / f"lora-{seed}"
        result = fmkit_cli("finetune", "--model", tiny_bert_dir, "--data", reviews_csv, "--method", "lora",
                           "--epochs", 1, "--batch-size", 32, "--precision", "fp32", "--no-progress", "--out", out,
                           env={"PYTHONHASHSEED": seed})
        assert result.returncode == 0, result.stderr
        configs.append((out / "adapter" / "adapter_config.json").read_bytes())
        digests.append(read_manifest(out).content_digest)
    assert json.loads(configs[0])["target_modules"] == ["dense", "key", "query", "value"]
    assert configs[0] == configs[1]
    assert digests[0] == digests[1]


def test_a_damaged_onnx_file_is_bad_input(tmp_path):
    import onnxruntime as ort

    from fmkit.bundle import loading_weights

    (tmp_path / "model.onnx").write_bytes(b"\x08\x07not a protobuf" * 8)
    with pytest.raises(BadInputError, match="truncated or damaged"), loading_weights(tmp_path):
        ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
