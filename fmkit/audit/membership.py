"""Membership-inference audit: can an attacker tell training rows (members) from held-out rows?

Two attacks on the bundle's per-example loss, both black-box (they only need probabilities):

* ``loss``: the classic loss-threshold attack (Yeom et al. 2018): lower loss -> "member".
* ``calibrated``: difficulty calibration (Watson et al. 2022). An example's loss is compared with
  what a model that never saw it would give: with ``reference`` (a bundle trained without these
  rows, e.g. on other data), score = loss_reference - loss_target; without one, the population
  of held-out losses of the same class (the validation split) gives the per-class mean and spread
  the loss is standardised against.

Members are a seeded sample of the training split, non-members the test split (same size).
Reported per attack: ROC AUC and TPR at 1% and 0.1% FPR, each with a bootstrap interval; the
manifest's ``privacy.membership_inference.auc`` is the stronger attack's AUC (the worst case).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError

FPR_POINTS = (0.01, 0.001)


def per_example_loss(probabilities: np.ndarray, label_index: np.ndarray) -> np.ndarray:
    picked = probabilities[np.arange(len(label_index)), label_index]
    return -np.log(np.clip(picked, 1e-12, 1.0))


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """Highest TPR whose FPR is at most ``fpr`` (scores: higher = more likely a member)."""
    from sklearn.metrics import roc_curve

    fprs, tprs, _ = roc_curve(labels, scores)
    allowed = tprs[fprs <= fpr]
    return float(allowed.max()) if len(allowed) else 0.0


def attack_metrics(labels: np.ndarray, scores: np.ndarray, n_bootstrap: int = 200, seed: int = 0,
                   confidence: float = 0.95) -> dict:
    from sklearn.metrics import roc_auc_score

    result = {"auc": float(roc_auc_score(labels, scores))}
    for fpr in FPR_POINTS:
        result[f"tpr_at_{fpr:g}_fpr"] = tpr_at_fpr(labels, scores, fpr)
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        members, others = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
        samples: dict[str, list[float]] = {key: [] for key in result}
        for _ in range(n_bootstrap):
            rows = np.concatenate([rng.choice(members, len(members)), rng.choice(others, len(others))])
            samples["auc"].append(roc_auc_score(labels[rows], scores[rows]))
            for fpr in FPR_POINTS:
                samples[f"tpr_at_{fpr:g}_fpr"].append(tpr_at_fpr(labels[rows], scores[rows], fpr))
        tail = (1 - confidence) / 2 * 100
        result["confidence_intervals"] = {key: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))]
                                          for key, v in samples.items()}
    return result


def population_calibrated_scores(loss: np.ndarray, label_index: np.ndarray, population_loss: np.ndarray,
                                 population_label_index: np.ndarray) -> np.ndarray:
    """-(loss - mean of the class's held-out losses) / their standard deviation: high = suspiciously easy."""
    scores = np.empty_like(loss)
    for cls in np.unique(label_index):
        reference = population_loss[population_label_index == cls]
        if len(reference) < 2:
            reference = population_loss
        mean, spread = reference.mean(), reference.std() + 1e-12
        rows = label_index == cls
        scores[rows] = -(loss[rows] - mean) / spread
    return scores


def membership_audit(bundle: Path, *, reference: Path | None = None, max_members: int | None = None,
                     n_bootstrap: int = 200, seed: int = 0, device: str = "auto", record: bool = True) -> dict:
    from fmkit.audit.inputs import load_audit_rows
    from fmkit.bundle import read_manifest, update_manifest
    from fmkit.runtime import load_runtime

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    if not manifest.data.get("config"):
        raise BadInputError(f"{bundle} does not record its training data; a membership audit needs the rows it "
                            "was trained on")
    non_members = load_audit_rows(bundle, split="test", max_rows=max_members, seed=seed)
    members = load_audit_rows(bundle, split="train", max_rows=len(non_members.texts), seed=seed)
    population = load_audit_rows(bundle, split="validation")
    if members.data_fingerprint != manifest.data.get("fingerprint"):
        raise BadInputError(f"the training data of {bundle} has changed since training (fingerprint "
                            f"{members.data_fingerprint[:19]}... vs {manifest.data.get('fingerprint', '?')[:19]}...); "
                            "the members are unknown, so the audit cannot run")
    index = manifest.label2id
    runtime = load_runtime(bundle, device=device)

    def losses(model, rows):
        return per_example_loss(model.predict_proba(rows.texts), np.array([index[l] for l in rows.labels]))

    texts_labels = np.concatenate([np.array([index[l] for l in members.labels]),
                                   np.array([index[l] for l in non_members.labels])])
    target_loss = np.concatenate([losses(runtime, members), losses(runtime, non_members)])
    is_member = np.concatenate([np.ones(len(members.texts), int), np.zeros(len(non_members.texts), int)])
    attacks = {"loss": attack_metrics(is_member, -target_loss, n_bootstrap, seed)}
    if reference is not None:
        reference_runtime = load_runtime(reference, device=device)
        if reference_runtime.labels != manifest.labels:
            raise BadInputError(f"reference {reference} has labels {reference_runtime.labels}, the bundle "
                                f"{manifest.labels}; use a reference trained on the same labels")
        reference_loss = np.concatenate([losses(reference_runtime, members), losses(reference_runtime, non_members)])
        attacks["calibrated"] = attack_metrics(is_member, reference_loss - target_loss, n_bootstrap, seed)
        calibration = f"reference model {reference}"
    else:
        population_loss = losses(runtime, population)
        scores = population_calibrated_scores(target_loss, texts_labels, population_loss,
                                              np.array([index[l] for l in population.labels]))
        attacks["calibrated"] = attack_metrics(is_member, scores, n_bootstrap, seed)
        calibration = f"per-class population of {len(population.texts)} held-out validation rows"
    strongest = max(attacks, key=lambda name: attacks[name]["auc"])
    result = {
        "auc": attacks[strongest]["auc"], "strongest_attack": strongest,
        "tpr_at_0.01_fpr": attacks[strongest]["tpr_at_0.01_fpr"],
        "members": len(members.texts), "non_members": len(non_members.texts), "calibration": calibration,
        "mean_member_loss": float(target_loss[is_member == 1].mean()),
        "mean_non_member_loss": float(target_loss[is_member == 0].mean()),
        "attacks": attacks, "data_fingerprint": members.data_fingerprint, "seed": seed,
    }
    if record:
        update_manifest(bundle, lambda m: m.privacy.__setitem__("membership_inference", result))
    return result
