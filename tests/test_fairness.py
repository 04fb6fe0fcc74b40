"""Group fairness: metrics against hand-computed values, the bundle audit, and threshold mitigation."""

import csv
import shutil

import numpy as np
import pytest

from fmkit.audit.fairness import FairnessSettings, group_fairness
from fmkit.errors import BadInputError


def test_group_metrics_match_hand_computed_values():
    # group a: 4 rows, y_true 1 1 0 0, y_pred 1 0 1 0 -> sel 0.5, tpr 0.5, fpr 0.5, acc 0.5
    # group b: 4 rows, y_true 1 1 0 0, y_pred 1 1 1 0 -> sel 0.75, tpr 1.0, fpr 0.5, acc 0.75
    y_true = [1, 1, 0, 0, 1, 1, 0, 0]
    y_pred = [1, 0, 1, 0, 1, 1, 1, 0]
    groups = ["a"] * 4 + ["b"] * 4
    report = group_fairness(y_true, y_pred, groups, FairnessSettings("yes", n_bootstrap=0, min_group_size=1))
    a, b = report["groups"]["a"], report["groups"]["b"]
    assert (a["count"], a["selection_rate"], a["tpr"], a["fpr"], a["accuracy"]) == (4, 0.5, 0.5, 0.5, 0.5)
    assert (b["count"], b["selection_rate"], b["tpr"], b["fpr"], b["accuracy"]) == (4, 0.75, 1.0, 0.5, 0.75)
    assert report["demographic_parity_difference"] == pytest.approx(0.25)
    assert report["demographic_parity_ratio"] == pytest.approx(0.5 / 0.75)
    assert report["equalized_odds_difference"] == pytest.approx(0.5)  # max(|0.5-1.0|, |0.5-0.5|)
    assert report["accuracy_difference"] == pytest.approx(0.25)


def test_fairlearn_functions_agree_on_random_data():
    from fairlearn.metrics import demographic_parity_difference, demographic_parity_ratio, equalized_odds_difference

    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 2, 600), rng.integers(0, 2, 600)
    groups = rng.choice(["x", "y", "z"], 600)
    report = group_fairness(y_true, y_pred, groups, FairnessSettings("1", n_bootstrap=50, min_group_size=1))
    assert report["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=groups))
    assert report["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(y_true, y_pred, sensitive_features=groups))
    assert report["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=groups))
    # A planted, large gap: its bootstrap interval holds the point estimate and excludes zero.
    y_pred = np.where(groups == "z", rng.random(600) < 0.8, rng.random(600) < 0.3).astype(int)
    report = group_fairness(y_true, y_pred, groups, FairnessSettings("1", n_bootstrap=100, min_group_size=1))
    low, high = report["confidence_intervals"]["demographic_parity_difference"]
    assert 0.2 < low <= report["demographic_parity_difference"] <= high < 0.8


def test_small_groups_are_reported_but_left_out_of_the_gaps():
    y = [1, 0] * 60 + [1, 1, 1]
    groups = ["big1"] * 60 + ["big2"] * 60 + ["tiny"] * 3
    report = group_fairness(y, y, groups, FairnessSettings("1", n_bootstrap=0, min_group_size=50))
    assert report["excluded_small_groups"] == ["tiny"]
    assert report["groups"]["tiny"]["in_gaps"] is False
    assert report["demographic_parity_difference"] == pytest.approx(0.0)  # tiny (all positive) would make it 0.5


@pytest.fixture
def grouped(tiny_bundle, tmp_path):
    """A copy of the tiny bundle, and its data with a group column whose base rates differ (a: 80% pos, b: 20%)."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    from fmkit.bundle import read_manifest

    source = read_manifest(bundle).data["source"]
    with open(source, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rng = np.random.default_rng(0)
    for row in rows:
        row["group"] = ("a" if rng.random() < 0.8 else "b") if row["label"] == "pos" else ("b" if rng.random() < 0.8 else "a")
    path = tmp_path / "grouped.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label", "group"])
        writer.writeheader()
        writer.writerows(rows)
    return bundle, path


def test_bundle_audit_writes_the_manifest_and_the_gate_reads_it(grouped):
    from fmkit.audit.fairness_audit import FairnessAuditConfig, audit_fairness
    from fmkit.audit.gate import Policy, check_policy
    from fmkit.bundle import read_manifest

    bundle, data = grouped
    report = audit_fairness(bundle, FairnessAuditConfig(data=str(data), sensitive=["group"], split="all",
                                                        positive_label="pos", n_bootstrap=20, min_group_size=10))
    gap = report["group"]["demographic_parity_difference"]
    assert gap > 0.3  # the near-perfect model reproduces the planted base-rate gap
    manifest = read_manifest(bundle)
    assert manifest.audits["fairness"]["group"]["demographic_parity_difference"] == gap
    assert manifest.audits["fairness"]["group"]["split"] == "all"
    assert (bundle / "reports" / "fairness.json").is_file()
    from fmkit.audit.card import render_markdown
    from test_card import manifest_numbers, visible_numbers

    card = render_markdown(manifest, bundle)
    assert "**group**" in card and "bootstrap interval" in card
    known = manifest_numbers(manifest.model_dump(mode="json"))
    for token in visible_numbers(card):
        decimals = len(token.split(".")[1]) if "." in token else 0
        assert any(abs(float(token) - v) <= 0.5 * 10 ** -decimals + 1e-12 for v in known), token
    [rule] = check_policy(manifest, Policy(max_fairness_gap=0.1))
    assert not rule.passed and rule.measured == pytest.approx(max(gap, report["group"]["equalized_odds_difference"],
                                                                   report["group"]["accuracy_difference"]))


def test_threshold_mitigation_makes_a_bundle_that_closes_the_gap(grouped, tmp_path):
    from fmkit.audit.fairness_audit import FairnessAuditConfig, audit_fairness
    from fmkit.audit.mitigate import GroupThresholdClassifier, MitigateConfig, mitigate_fairness
    from fmkit.bundle import read_manifest
    from fmkit.bundle.store import verify_bundle
    from fmkit.runtime import load_runtime

    bundle, data = grouped
    out = tmp_path / "mitigated"
    rule = mitigate_fairness(bundle, out, MitigateConfig(data=str(data), attribute="group", fit_split="train",
                                                         positive_label="pos"))
    assert set(rule["thresholds"]) == {"a", "b"}
    manifest = read_manifest(out)
    assert manifest.lineage[-1].stage == "mitigate-fairness" and verify_bundle(out) == []
    with pytest.raises(BadInputError, match="group"):
        load_runtime(out)  # a text-only runtime would silently skip the thresholds
    cfg = FairnessAuditConfig(data=str(data), sensitive=["group"], split="all", positive_label="pos",
                              n_bootstrap=0, min_group_size=10)
    before = audit_fairness(bundle, cfg)["group"]["demographic_parity_difference"]
    after = audit_fairness(out, cfg)["group"]["demographic_parity_difference"]
    assert after < before / 2
    classifier = GroupThresholdClassifier(out)
    with pytest.raises(BadInputError, match="not seen"):
        classifier.positive_proba(["a great film"], {"group": ["c"]})
