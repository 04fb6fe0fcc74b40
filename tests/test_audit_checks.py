"""The audit-check registry: each check one file with its own config, reachable from AuditConfig;
a bundle that cannot take a check is refused, with the reason, before any check runs."""

from pathlib import Path

import pytest

from fmkit.audit.checks import AUDIT_CHECKS
from fmkit.audit.checks.base import check_capabilities
from fmkit.audit.run import CHECKS, AuditConfig, check_options, run_audit
from fmkit.bundle.manifest import Manifest
from fmkit.errors import BadInputError


def test_every_registered_check_is_a_valid_name_and_its_settings_are_reachable():
    assert set(CHECKS) == set(AUDIT_CHECKS) == {"counterfactual", "explanations", "fairness", "pii", "privacy",
                                                  "robustness"}
    assert AuditConfig().checks == list(CHECKS)
    for name in CHECKS:
        check = AUDIT_CHECKS.get(name)
        assert set(check.options.model_fields) <= set(AuditConfig.model_fields), name
        assert check.description and check.requires


def test_each_check_gets_its_own_config_from_the_flat_one():
    cfg = AuditConfig(checks=["explanations"], n_steps=8, faithfulness_k=2, terms="pairs.json")
    assert check_options(cfg, "explanations").model_dump() == {"explain_rows": 100, "n_steps": 8,
                                                               "internal_batch_size": 64, "faithfulness_k": 2}
    assert check_options(cfg, "counterfactual").terms == "pairs.json"


def test_every_check_config_error_is_reported_at_once():
    with pytest.raises(ValueError) as caught:
        AuditConfig(checks=[], perturbations=["typo"])
    assert "checks is empty" in str(caught.value) and "perturbations ['typo'] unknown; use" in str(caught.value)
    with pytest.raises(ValueError, match="Input should be 'counterfactual', 'explanations'"):
        AuditConfig(checks=["spelling"])


def manifest(**fields) -> Manifest:
    return Manifest(**{"task": "text-classification", "labels": ["neg", "pos"], "base_model": {}, **fields})


def test_a_thresholded_bundle_is_refused_text_only_checks_before_any_runs():
    thresholded = manifest(postprocess={"method": "threshold", "attribute": "group"})
    with pytest.raises(BadInputError, match="decisions need group columns; run the counterfactual check on its "
                                            "parent"):
        check_capabilities(Path("b"), thresholded, ["fairness", "counterfactual"])
    check_capabilities(Path("b"), thresholded, ["fairness", "pii", "explanations"])  # these take it


def test_an_image_bundle_is_refused_text_checks_naming_what_is_missing(tiny_image_bundle):
    with pytest.raises(BadInputError) as caught:
        run_audit(tiny_image_bundle, AuditConfig(checks=["robustness", "explanations"]), record=False)
    message = str(caught.value)
    assert "image-classification bundle: the robustness check needs text-input" in message
    assert "the explanations check needs explanations" in message


def test_a_base_model_without_labels_is_told_to_fine_tune_first():
    with pytest.raises(BadInputError, match="masked-LM base model .* Fine-tune it first"):
        check_capabilities(Path("base"), manifest(task="masked-lm", labels=[]), ["pii"])
