"""A logistic-regression probe on the vector a classifier's head reads, written into that head.

Two uses: LP-FT (Kumar et al. 2022: start fine-tuning from a linear probe, so the first steps do
not tear the pretrained features apart to fit a random head) and the few-shot mode's final head
(the SetFit recipe: logistic regression on the contrastively tuned embeddings). The probe is fit on
standardized features (it converges in a few iterations) and the scaling is folded back into the
head's weights, so the head computes exactly the probe's logits from the raw features.
"""

from __future__ import annotations

import numpy as np

PROBE_C = 1.0  # sklearn's default L2 strength; on standardized features it needs no tuning at these sizes
PROBE_MAX_ITER = 2000
EMBED_BATCH = 64
ABSENT_CLASS_BIAS = -20.0  # a label with no training row: never predicted by the probe


def embed(model, encoded, pad_id: int, device, batch_size: int = EMBED_BATCH) -> np.ndarray:
    """(rows, dim) float32: what the head reads for each encoded text, in the encoded order (eval mode, no grad)."""
    import torch

    from fmkit.data.batching import pad_batch, sorted_batches
    from fmkit.models.text_classifier import head_features

    was_training = model.training
    model.eval()
    features = None
    with torch.no_grad():
        for indices in sorted_batches(encoded.lengths, batch_size):
            batch = {k: v.to(device) for k, v in pad_batch([encoded.input_ids[i] for i in indices], pad_id).items()}
            out = head_features(model, batch).float().cpu().numpy()
            if features is None:
                features = np.zeros((len(encoded.lengths), out.shape[1]), dtype=np.float32)
            features[np.asarray(indices)] = out
    model.train(was_training)
    return features


def fit_probe(features: np.ndarray, label_ids, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(weight (classes, dim), bias (classes,), facts): multinomial logistic regression as a linear head."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(label_ids)
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-6
    probe = LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER, random_state=seed)
    probe.fit((features - mean) / scale, labels)
    coefficients, intercepts = probe.coef_, probe.intercept_
    if len(probe.classes_) == 2 and coefficients.shape[0] == 1:  # binary: one logit z -> softmax([-z/2, z/2])
        coefficients = np.vstack([-coefficients / 2, coefficients / 2])
        intercepts = np.array([-intercepts[0] / 2, intercepts[0] / 2])
    weight = np.zeros((num_classes, features.shape[1]), dtype=np.float64)
    bias = np.full(num_classes, ABSENT_CLASS_BIAS, dtype=np.float64)
    for row, label in enumerate(probe.classes_):
        weight[label] = coefficients[row] / scale  # fold the standardization into the head
        bias[label] = intercepts[row] - float(coefficients[row] @ (mean / scale))
    facts = {"train_accuracy": round(float(probe.score((features - mean) / scale, labels)), 4),
             "iterations": int(np.max(probe.n_iter_)), "C": PROBE_C}
    return weight.astype(np.float32), bias.astype(np.float32), facts


def probe_head_(model, encoded, label_ids, num_classes: int, pad_id: int, device, seed: int) -> dict:
    """Fit the probe on ``encoded`` (the training split) and write it into ``model``'s head; returns its facts."""
    from fmkit.models.text_classifier import set_head_

    model.to(device)
    weight, bias, facts = fit_probe(embed(model, encoded, pad_id, device), label_ids, num_classes, seed)
    set_head_(model, weight, bias)
    return facts
