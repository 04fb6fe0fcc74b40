"""The drift reference a bundle carries: how the model behaved on its own test split.

``fmkit serve --watch`` compares served traffic with it (fmkit/serve/drift.py): the predicted-label shares
(PSI), the mean confidence, and a seeded sample of the model's penultimate features (what its last linear
layer reads: the pooled text embedding, the image network's features) for an input two-sample test.

It is written at fine-tune time, by the bundle's own runtime on the test split, before the bundle is
published (fmkit/finetune/stage.py), and can be added to an existing bundle with
``fmkit evaluate BUNDLE --write-reference``. The arrays live in ``reports/drift_reference.safetensors``:
``reports/`` is outside the content digest, so adding a reference does not change the model's identity,
and the file's SHA-256 is recorded in the sealed manifest (``audits.drift_reference``), so an edited
reference is refused like an edited manifest. Adapter-neutral: any task whose adapter has runtime and
evaluation inputs gets one; a task without them (text retrieval) is skipped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from fmkit.errors import BadInputError, BundleIntegrityError

REFERENCE_FILE = "reports/drift_reference.safetensors"
RECORD_KEY = "drift_reference"  # manifest.audits[RECORD_KEY]
FEATURE_ROWS = 1000  # penultimate-feature rows kept: enough for a two-sample test, ~1.5 MB at 384 dims
HOW_TO_ADD = "add one with `fmkit evaluate {bundle} --write-reference` (fine-tuning writes it by itself)"


@dataclass(frozen=True)
class Reference:
    probabilities: np.ndarray  # (test rows, labels) float32, in row order
    features: np.ndarray | None  # (<= FEATURE_ROWS, dim) float32, or None when the runtime exposes none
    record: dict  # what the manifest says about it (labels, rows, runtime, sha256, ...)

    @property
    def labels(self) -> list[str]:
        return list(self.record["labels"])


def feature_layer(model, classes: int):
    """The classifier's output layer: the last ``Linear`` with one output per label (None if it has none)."""
    from torch import nn

    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == classes]
    return heads[-1] if heads else None


def attach_feature_hook(runtime, receive: Callable[[np.ndarray], None]):
    """Call ``receive(features)`` with what the output layer reads, on every forward of ``runtime``.

    Returns the hook handle (``.remove()`` it), or None when the runtime has no PyTorch model to hook (ONNX):
    input drift then has no features. The features cost nothing extra: they are captured in the forward
    pass that computes the logits.
    """
    model = getattr(runtime, "model", None)
    if model is None or not hasattr(model, "modules"):
        return None
    layer = feature_layer(model, len(runtime.labels))
    if layer is None:
        return None

    def hook(_module, args):
        receive(args[0].detach().float().cpu().numpy().reshape(len(args[0]), -1))

    return layer.register_forward_pre_hook(hook)


@contextlib.contextmanager
def captured_features(runtime) -> Iterator[list[np.ndarray] | None]:
    """A list that fills with feature batches while the block runs (None when the runtime has none)."""
    batches: list[np.ndarray] = []
    handle = attach_feature_hook(runtime, batches.append)
    try:
        yield batches if handle is not None else None
    finally:
        if handle is not None:
            handle.remove()


def compute_reference(runtime, encoded, *, batch_size: int = 64, feature_rows: int = FEATURE_ROWS,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities in row order, a seeded sample of at most ``feature_rows`` feature rows) of ``encoded``."""
    from fmkit.runtime.base import softmax

    rows = runtime.inputs.count(encoded)
    probabilities = np.zeros((rows, len(runtime.labels)), dtype=np.float32)
    with captured_features(runtime) as batches:
        for indices, logits in runtime.iter_logits(encoded, batch_size):
            probabilities[indices] = softmax(logits)
    features = None
    if batches:
        features = np.concatenate(batches).astype(np.float32)
        if len(features) > feature_rows:
            keep = np.sort(np.random.default_rng(seed).choice(len(features), feature_rows, replace=False))
            features = features[keep]
    return probabilities, features


def write_reference(bundle: Path, *, data=None, rows: list[int] | None = None, manifest=None,
                    log: Callable[[str], None] | None = None) -> dict | None:
    """Compute the reference on the bundle's test split and record it; the record, or None when not applicable.

    ``data``/``rows``: the already loaded dataset and its test rows (fine-tuning has them); otherwise the
    bundle's own training data is loaded and its saved split read. ``manifest``: the sealed manifest object
    to update and re-write (fine-tuning's, before publishing); otherwise the one on disk is updated.
    """
    from fmkit.bundle import read_manifest, update_manifest, write_manifest
    from fmkit.bundle.manifest import utc_now
    from fmkit.fileio import atomic_file, sha256_file
    from fmkit.runtime import load_runtime
    from fmkit.tasks import task_of_bundle

    bundle = Path(bundle)
    stored = read_manifest(bundle)
    task = task_of_bundle(bundle, stored.task)
    if task.runtime_inputs is None or task.evaluation_inputs is None:
        return None  # a task that predicts no labels has no prediction distribution to watch
    if data is None:
        from fmkit.bundle.split import split_rows
        from fmkit.evaluate.stage import EvaluateConfig

        data = task.load_data(task.data_config(stored.data, EvaluateConfig()))
        rows = split_rows(bundle, data, "test", warn=True)
    rows = list(rows or [])
    if not rows:
        if log:
            log(f"no drift reference for {bundle.name}: its test split is empty")
        return None
    runtime = load_runtime(bundle, device="cpu")
    encoded, _ = task.evaluation_inputs(runtime, data, rows)
    probabilities, features = compute_reference(runtime, encoded)
    arrays = {"probabilities": probabilities}
    if features is not None:
        arrays["features"] = features
    from safetensors.numpy import save_file

    target = bundle / REFERENCE_FILE
    with atomic_file(target) as tmp:
        save_file(arrays, str(tmp), metadata={"split": "test", "labels": ",".join(runtime.labels)})
    record = {
        "file": REFERENCE_FILE, "sha256": sha256_file(target), "split": "test", "rows": len(rows),
        "feature_rows": 0 if features is None else int(len(features)),
        "feature_dim": 0 if features is None else int(features.shape[1]),
        "runtime": runtime.backend, "labels": list(runtime.labels),
        "mean_confidence": round(float(probabilities.max(axis=1).mean()), 6),
        "label_shares": {label: round(float(share), 6) for label, share in
                         zip(runtime.labels, np.bincount(probabilities.argmax(axis=1), minlength=len(runtime.labels))
                             / len(rows))},
        "data_fingerprint": getattr(data, "fingerprint", None), "created_at": utc_now(),
    }
    if manifest is not None:
        manifest.audits[RECORD_KEY] = record
        write_manifest(bundle, manifest)
    else:
        update_manifest(bundle, lambda m: m.audits.__setitem__(RECORD_KEY, record))
    if log:
        log(f"drift reference: {len(rows)} test rows, "
            f"{record['feature_rows']} feature rows{'' if features is not None else ' (runtime has no features)'}")
    return record


def read_reference(bundle: Path, manifest) -> Reference:
    """The reference of a verified bundle (``manifest`` from open_bundle); refused when absent or edited."""
    from fmkit.fileio import sha256_file

    bundle = Path(bundle)
    record = manifest.audits.get(RECORD_KEY)
    path = bundle / REFERENCE_FILE
    if not isinstance(record, dict):
        raise BadInputError(f"{bundle} has no drift reference, which --watch compares traffic with; "
                            + HOW_TO_ADD.format(bundle=bundle))
    if not path.is_file():
        raise BadInputError(f"{bundle}: its manifest records a drift reference but {REFERENCE_FILE} is missing; "
                            + HOW_TO_ADD.format(bundle=bundle))
    if sha256_file(path) != record.get("sha256"):
        raise BundleIntegrityError(f"{bundle}/{REFERENCE_FILE} changed since it was recorded (SHA-256 differs from "
                                   "the sealed manifest); re-create it with `fmkit evaluate "
                                   f"{bundle} --write-reference`")
    from safetensors.numpy import load_file

    arrays = load_file(str(path))
    return Reference(arrays["probabilities"], arrays.get("features"), record)
