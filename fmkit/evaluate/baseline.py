"""The baseline every run reports: a logistic regression on the frozen base model's features, same split.

Fine-tuning only earns its cost if it beats what a few seconds of scikit-learn on the untouched base
model gets (issue 15 measured default fine-tunes losing to exactly that, silently). So the finetune
stage and ``fmkit evaluate`` fit this probe on the training split and score it on the same held-out
rows as the model; the manifest keeps it (``training["baseline"]``, which compressed variants inherit),
the card and the frontier report show the gain, and the gate rule ``min_gain_over_baseline`` can fail
a pipeline. The features come from the task adapter's ``frozen_features`` (text: the base encoder's
pooled embeddings; images: the base network's penultimate features), so every task shares this code.
"""

from __future__ import annotations

import time
import warnings

METHOD = "logistic regression on frozen base-model features"
REGULARISATION = (0.01, 0.1, 1.0, 10.0)  # inverse L2 strengths tried; the best on validation accuracy is kept
# A probe on 384-d embeddings has learned what it can by a few thousand rows; past this the training split is
# sampled (class-proportional) so that the baseline costs seconds, not a minute, on a 10k-row set (the full
# Rotten Tomatoes demo: ~35 s instead of ~75 s on 2 cores). Validation and test are always scored whole.
MAX_PROBE_TRAIN_ROWS = 4000
MAX_ITERATIONS = 2000  # lbfgs on standardised features converges well within this on these sizes


def fit_probe(train_features, train_labels, held_out: dict, label_names: list[str], seed: int = 0) -> dict:
    """Fit the probe on ``train_features`` and score every ``held_out`` split ({name: (features, label ids)}).

    Features are standardised (fitted on train only); C is chosen on the validation split when there is
    one, else 1.0. Scores use fmkit's own metric definitions (macro-F1 over every label, as the model's).
    """
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from fmkit.evaluate.metrics import StreamingClassificationMetrics

    scaler = StandardScaler().fit(train_features)
    train_x, train_y = scaler.transform(train_features), np.asarray(train_labels)

    def probabilities(probe, features):
        full = np.zeros((len(features), len(label_names)))
        full[:, probe.classes_] = probe.predict_proba(scaler.transform(features))
        return full  # a class absent from the training split gets probability 0, as a model never predicting it

    def score(probe, name):
        features, labels = held_out[name]
        metrics = StreamingClassificationMetrics(label_names)
        metrics.update(probabilities(probe, features), np.asarray(labels))
        computed = metrics.compute()
        return {"accuracy": computed["accuracy"], "macro_f1": computed["macro_f1"], "count": computed["count"]}

    def fit(strength):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a near-separable probe stops at the cap: fine
            return LogisticRegression(C=strength, max_iter=MAX_ITERATIONS, random_state=seed).fit(train_x, train_y)

    candidates = REGULARISATION if len(held_out.get("validation", ((), ()))[1]) else (1.0,)
    fitted = {strength: fit(strength) for strength in candidates}
    if len(fitted) > 1:
        best = max(fitted, key=lambda strength: score(fitted[strength], "validation")["accuracy"])
    else:
        best = candidates[0]
    return {"C": best, **{name: score(fitted[best], name) for name in held_out if len(held_out[name][1])}}


def frozen_baseline(task, cfg, data, label_ids: dict) -> dict | None:
    """The probe on ``data``'s own split (finetune: the rows the model trained and was scored on).

    ``label_ids``: split name -> label ids aligned with ``data.splits``. Returns ``{"method", "encoder",
    "C", "train_rows", "validation": {accuracy, macro_f1, count}, "test": {...}, "seconds"}``, or None when
    the task has no frozen features or the training split has a single class (no probe to fit).
    """
    if task.frozen_features is None:
        return None
    rows = {name: list(data.splits[name]) for name in ("train", "validation", "test") if label_ids.get(name)}
    if len(set(label_ids.get("train", ()))) < 2:
        return None
    started = time.perf_counter()
    kept = probe_sample(label_ids["train"], cfg.train.seed)
    rows["train"] = [rows["train"][i] for i in kept]
    encoder, features = task.frozen_features(cfg, data, rows)
    held_out = {name: (features[name], label_ids[name]) for name in rows if name != "train"}
    scores = fit_probe(features["train"], [label_ids["train"][i] for i in kept], held_out, data.label_names,
                       cfg.train.seed)
    return {"method": METHOD, "encoder": encoder, "train_rows": len(kept), "train_rows_available":
            len(label_ids["train"]), **scores, "seconds": round(time.perf_counter() - started, 1)}


def probe_sample(train_label_ids: list[int], seed: int) -> list[int]:
    """Positions in the training split the probe learns from: all, or a class-proportional sample past the cap."""
    from fmkit.data.split import stratified_sample

    return stratified_sample([str(label) for label in train_label_ids], MAX_PROBE_TRAIN_ROWS, seed)


def gain_points(model_metrics: dict, baseline_metrics: dict | None) -> float | None:
    """Accuracy points the model is above the baseline on the same split (negative: below), or None."""
    if not baseline_metrics or "accuracy" not in model_metrics or "accuracy" not in baseline_metrics:
        return None
    return round(100.0 * (model_metrics["accuracy"] - baseline_metrics["accuracy"]), 2)


def baseline_test_metrics(manifest) -> dict | None:
    """The baseline's test metrics for ``manifest``: what ``fmkit evaluate`` recorded beside the test metrics,
    else what fine-tuning recorded (a compressed variant inherits its task model's)."""
    recorded = manifest.metrics.get("test", {}).get("baseline")
    if recorded:
        return recorded
    return (manifest.training.get("baseline") or {}).get("test")


def gain_over_baseline(manifest) -> float | None:
    """Test-accuracy points over the frozen-feature baseline (the card, the report and the gate read this)."""
    return gain_points(manifest.metrics.get("test", {}), baseline_test_metrics(manifest))


def baseline_warning(model_metrics: dict, baseline: dict | None, split: str = "test") -> str | None:
    """The loud message when the model does not beat the baseline on ``split`` (None when it does)."""
    measured = (baseline or {}).get(split)
    gain = gain_points(model_metrics, measured)
    if gain is None or gain > 0:
        return None
    return (f"the model does NOT beat the baseline: {split} accuracy {model_metrics['accuracy']:.4f} vs "
            f"{measured['accuracy']:.4f} for a {baseline.get('method', METHOD)} ({baseline.get('encoder')}), "
            f"{gain:+.2f} points. Fine-tuning did not pay off: likely too few optimizer steps or a learning rate "
            "unsuited to the method (LoRA needs a far larger one), or a collapsed run; check the training log, "
            "try --learning-rate auto or more --epochs, or use the frozen embeddings with a linear head")


def evaluation_baseline(bundle, manifest, task, data, split: str, rows: list[int], device: str = "auto") -> dict | None:
    """The baseline on the rows ``fmkit evaluate`` scores (``rows`` of ``data``, split ``split``).

    On the bundle's own data and a split fine-tuning scored, the figure fine-tuning recorded (the same fit on
    the same rows); otherwise the probe is fitted now on the bundle's training split, with the base model and
    settings its finetune lineage entry names, and scored on ``rows``. None (with a warning saying why) when
    that cannot be done: no frozen features for the task, no finetune entry, the base or training data gone.
    """
    from fmkit.errors import BadInputError

    stored = manifest.training.get("baseline") or {}
    same_data = data.fingerprint == manifest.data.get("fingerprint")
    if same_data and split in stored:
        return {**stored[split], "method": stored.get("method"), "encoder": stored.get("encoder"),
                "C": stored.get("C"), "train_rows": stored.get("train_rows"), "measured": "at fine-tuning"}
    if task.frozen_features is None:
        return None
    try:
        return _fit_for_evaluation(bundle, manifest, task, data, rows, device)
    except (BadInputError, ValueError, OSError) as error:
        warnings.warn(f"baseline not measured: {error}", stacklevel=2)
        return None


def _fit_for_evaluation(bundle, manifest, task, data, rows: list[int], device: str) -> dict:
    from fmkit.bundle.split import split_rows
    from fmkit.errors import BadInputError
    from fmkit.tasks import finetune_config

    entry = next((e for e in reversed(manifest.lineage) if e.stage == "finetune"), None)
    if entry is None:
        raise BadInputError("the bundle's lineage has no finetune entry naming its base model")
    cfg = finetune_config(entry.config)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"device": device})})
    started = time.perf_counter()
    if data.fingerprint == manifest.data.get("fingerprint"):
        training = data
    else:  # another file: the probe still learns from the bundle's own training rows only
        from fmkit.evaluate.stage import EvaluateConfig

        training = task.load_data(task.data_config(manifest.data, EvaluateConfig()))
    fit_rows = {name: split_rows(bundle, training, name) for name in ("train", "validation")}
    label2id = manifest.label2id
    available = len(fit_rows["train"])
    kept = probe_sample([label2id[training.labels[i]] for i in fit_rows["train"]], cfg.train.seed)
    fit_rows["train"] = [fit_rows["train"][i] for i in kept]
    fit_labels = {name: [label2id[training.labels[i]] for i in r] for name, r in fit_rows.items()}
    if training is data:
        encoder, features = task.frozen_features(cfg, data, {**fit_rows, "evaluated": rows})
    else:
        encoder, features = task.frozen_features(cfg, training, fit_rows)
        features.update(task.frozen_features(cfg, data, {"evaluated": rows})[1])
    held_out = {"validation": (features["validation"], fit_labels["validation"]),
                "evaluated": (features["evaluated"], [label2id[data.labels[i]] for i in rows])}
    scores = fit_probe(features["train"], fit_labels["train"], held_out, manifest.labels, cfg.train.seed)
    return {**scores["evaluated"], "method": METHOD, "encoder": encoder, "C": scores["C"],
            "train_rows": len(fit_rows["train"]), "train_rows_available": available,
            "seconds": round(time.perf_counter() - started, 1), "measured": "now"}
