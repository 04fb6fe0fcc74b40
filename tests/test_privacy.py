"""Privacy: membership-inference metrics against hand-computed values, the bundle audit, PII detection."""

import shutil

import numpy as np
import pytest

from fmkit.audit.membership import attack_metrics, population_calibrated_scores, tpr_at_fpr


def test_attack_metrics_on_known_separations():
    labels = np.array([1] * 100 + [0] * 100)
    perfect = attack_metrics(labels, np.r_[np.linspace(1, 2, 100), np.linspace(-2, -1, 100)], n_bootstrap=20)
    assert perfect["auc"] == 1.0 and perfect["tpr_at_0.01_fpr"] == 1.0 and perfect["tpr_at_0.001_fpr"] == 1.0
    assert perfect["confidence_intervals"]["auc"] == pytest.approx([1.0, 1.0])
    # scores 0..199, members on the odd ranks: member 2k+1 beats k+1 non-members, AUC = 5050/10000
    interleaved = np.arange(200)
    labels = (interleaved % 2 == 1).astype(int)
    assert attack_metrics(labels, interleaved.astype(float), n_bootstrap=0)["auc"] == pytest.approx(0.505)


def test_tpr_at_fpr_picks_the_best_threshold_within_the_budget():
    # 10 non-members, 10 members; one non-member outscores everyone: at FPR <= 0.1 every member is caught
    labels = np.array([0] * 10 + [1] * 10)
    scores = np.r_[[10.0], np.zeros(9), np.full(10, 5.0)]
    assert tpr_at_fpr(labels, scores, 0.1) == 1.0
    assert tpr_at_fpr(labels, scores, 0.05) == 0.0


def test_population_calibration_standardises_per_class():
    loss = np.array([0.1, 2.0, 0.5])
    label = np.array([0, 0, 1])
    population_loss = np.array([1.0, 3.0, 0.5, 0.5, 0.7])
    population_label = np.array([0, 0, 1, 1, 1])
    scores = population_calibrated_scores(loss, label, population_loss, population_label)
    class0 = (np.mean([1.0, 3.0]), np.std([1.0, 3.0]))
    assert scores[0] == pytest.approx(-(0.1 - class0[0]) / class0[1], rel=1e-6)
    assert scores[1] == pytest.approx(-(2.0 - class0[0]) / class0[1], rel=1e-6)
    class1 = (np.mean([0.5, 0.5, 0.7]), np.std([0.5, 0.5, 0.7]))
    assert scores[2] == pytest.approx(-(0.5 - class1[0]) / class1[1], rel=1e-6)


def test_membership_audit_records_the_auc_the_gate_reads(tiny_bundle, tmp_path):
    from fmkit.audit.gate import Policy, check_policy
    from fmkit.bundle import read_manifest
    from fmkit.audit.membership import membership_audit

    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    result = membership_audit(bundle, n_bootstrap=20)
    assert result["members"] == result["non_members"] == 40
    assert set(result["attacks"]) == {"loss", "calibrated"}
    assert 0.0 <= result["auc"] <= 1.0
    assert result["auc"] == max(a["auc"] for a in result["attacks"].values())
    manifest = read_manifest(bundle)
    assert manifest.privacy["membership_inference"]["auc"] == result["auc"]
    [rule] = check_policy(manifest, Policy(max_mia_auc=1.0))
    assert rule.passed and rule.measured == result["auc"]
    with_reference = membership_audit(bundle, reference=tiny_bundle, n_bootstrap=0, record=False)
    # the model itself as its own reference: every calibrated score is 0, no signal left
    assert with_reference["attacks"]["calibrated"]["auc"] == pytest.approx(0.5)
    assert "reference model" in with_reference["calibration"]


def test_pii_finder_finds_planted_entities_offline():
    from fmkit.data.pii import find_pii

    text = "Write to jane.doe@example.com, card 4111 1111 1111 1111, from 192.168.1.20 see https://example.org/x"
    found = {(h.entity, text[h.start:h.end]) for h in find_pii([text], ["EMAIL_ADDRESS", "CREDIT_CARD",
                                                                       "IP_ADDRESS", "URL"])[0]}
    assert ("EMAIL_ADDRESS", "jane.doe@example.com") in found
    assert ("CREDIT_CARD", "4111 1111 1111 1111") in found
    assert ("IP_ADDRESS", "192.168.1.20") in found
    assert ("URL", "https://example.org/x") in found
    assert not any(entity == "URL" and "@" in value for entity, value in found)  # the URL inside the e-mail is dropped


def test_unknown_pii_entity_lists_the_supported_ones():
    from fmkit.errors import BadInputError
    from fmkit.data.pii import find_pii

    with pytest.raises(BadInputError, match="EMAIL_ADRESS.*supported: EMAIL_ADDRESS.*Did you mean 'EMAIL_ADDRESS'"):
        find_pii(["x"], ["EMAIL_ADRESS"])
