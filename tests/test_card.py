"""Model cards carry the lineage and no number absent from the manifest."""

import json
import re
import subprocess
import sys

import pytest


def manifest_numbers(value) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in manifest_numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in manifest_numbers(v)]
    return []


def visible_numbers(markdown: str) -> list[str]:
    """Numbers outside code (configs, digests, times and paths are in backticks or code blocks)."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"^#.*$", "", text, flags=re.M)  # headings: section numbers and the bundle name
    return re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])", text)


def test_card_has_the_lineage_and_only_manifest_numbers(tiny_bundle, tmp_path):
    from fmkit.compress import CompressConfig
    from fmkit.compress.stage import run_compress

    variant = tmp_path / "int8"
    run_compress(tiny_bundle, CompressConfig(method="quantize-dynamic", max_accuracy_drop=100,
                                             measure={"latency_samples": 10, "threads": 1}), variant)
    result = subprocess.run([sys.executable, "-m", "fmkit", "card", variant, "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    paths = json.loads(result.stdout)
    markdown = open(paths["markdown"]).read()
    manifest = json.loads((variant / "fmkit.json").read_text())
    assert "### 1. `finetune`" in markdown and "### 2. `quantize-dynamic`" in markdown
    assert manifest["data"]["fingerprint"] in markdown and manifest["content_digest"] in markdown
    assert "## Privacy" in markdown and "_not measured_ (trained without DP-SGD)" in markdown
    assert "## Fairness\n_not measured_" in markdown
    known = manifest_numbers(manifest)
    numbers = visible_numbers(markdown)
    assert len(numbers) > 10
    for token in numbers:
        decimals = len(token.split(".")[1]) if "." in token else 0
        tolerance = 0.5 * 10 ** -decimals + 1e-12
        assert any(abs(float(token) - value) <= tolerance for value in known), f"{token} is not in the manifest"
    page = open(paths["html"]).read()
    assert "<table>" in page and "quantize-dynamic" in page and "<pre>" in page


def test_card_of_a_missing_bundle_is_bad_input(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fmkit", "card", tmp_path / "nope"], capture_output=True, text=True)
    assert result.returncode == 2 and "does not exist" in result.stderr
