"""The one classifier runtime: a bundle opened for prediction, whatever its task.

The bundle's task adapter (fmkit.tasks) says whether it can predict at all (a masked-LM base
model cannot: its error says to fine-tune it) and names its input preparation (``adapter.inputs``:
texts -> token ids, or images -> pixels, and how they batch). A backend (torch_runtime.py,
onnx_runtime.py) only implements ``forward(feed) -> logits`` (NumPy, fp32); predict, label mapping,
softmax and the finite-logits check are here, so every backend answers every task identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from fmkit.errors import BadInputError


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]

    def as_dict(self) -> dict:
        return {"label": self.label, "probabilities": self.probabilities}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def require_finite(logits: np.ndarray, path) -> np.ndarray:
    """``logits`` unless they hold NaN/inf: a probability of nan is never an answer."""
    if not np.isfinite(logits).all():
        from fmkit.errors import NonFiniteOutputError

        rows = int((~np.isfinite(logits)).any(axis=1).sum())
        raise NonFiniteOutputError(
            f"{path} produced non-finite logits (NaN or inf) for {rows} of {len(logits)} inputs: its weights are "
            f"damaged or diverged. Check them with `fmkit info {path}` and re-create the bundle")
    return logits


class ClassifierRuntime:
    backend = "base"

    def __init__(self, path, *, batch_size: int | None = None, allow_postprocess: bool = False, verify: bool = True):
        from fmkit.bundle import open_bundle
        from fmkit.bundle.store import refuse_pickles
        from fmkit.offline import enforce_offline
        from fmkit.tasks import TASKS

        enforce_offline()
        self.path = Path(path)
        self.manifest = open_bundle(self.path, verify=verify)  # changed files or an edited manifest: refused
        self.adapter = TASKS.get(self.manifest.task)
        self.adapter.require_labels(self.path)  # a masked-LM base model: "fine-tune it first"
        if self.manifest.postprocess and not allow_postprocess:
            rule = self.manifest.postprocess
            raise BadInputError(
                f"{self.path}: its decisions need {rule.get('needs_at_prediction')} at prediction time "
                f"({rule.get('method')} post-processing), which a text-only runtime cannot supply. Run it with "
                "fmkit.audit.mitigate.GroupThresholdClassifier (or `fmkit audit fairness`), or deploy its parent "
                f"{self.manifest.lineage[-1].parent if self.manifest.lineage else ''}"
            )
        refuse_pickles(self.path)
        self.labels = list(self.manifest.labels)
        if self.adapter.runtime_inputs is None:
            raise BadInputError(f"{self.path} is a {self.manifest.task} bundle: fmkit.load predicts labels and this task "
                                f"has none to predict. {self.adapter.opens_with or ''}".rstrip())
        self.inputs = self.adapter.get("runtime_inputs")(self.path, self.manifest)
        self.batch_size = batch_size or self.inputs.batch_size

    def __getattr__(self, name: str):
        """The task's own attributes (``tokenizer``; ``channels``, ``image_size``) are its inputs'."""
        inputs = self.__dict__.get("inputs")
        if inputs is None or name.startswith("_"):
            raise AttributeError(name)
        return getattr(inputs, name)

    # -- implemented by each backend -------------------------------------------------------
    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:  # the task's named inputs -> fp32 logits
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------
    def encode(self, inputs, warn: bool = True):
        """Inputs (texts, or images) -> what ``iter_logits`` batches."""
        return self.inputs.encode(inputs, warn=warn)

    prepare = encode  # the image callers' name for the same step

    def iter_logits(self, encoded, batch_size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(row indices, logits) per batch, in the order the task batches best (texts: longest first)."""
        for indices, feed in self.inputs.batches(encoded, batch_size or self.batch_size):
            yield indices, require_finite(self.forward(feed), self.path)

    def logits(self, inputs) -> np.ndarray:
        encoded = self.encode(inputs)
        output = np.empty((self.inputs.count(encoded), len(self.labels)), dtype=np.float32)
        for indices, logits in self.iter_logits(encoded):
            output[indices] = logits
        return output

    def predict_proba(self, inputs) -> np.ndarray:
        return softmax(self.logits(inputs))

    def predict(self, inputs) -> list[Prediction]:
        """``fmkit.load(path).predict(["great film"])`` (or image files) -> [Prediction(label, probabilities)]."""
        return [Prediction(self.labels[int(row.argmax())], {l: float(p) for l, p in zip(self.labels, row)})
                for row in self.predict_proba(inputs)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path}, labels={self.labels})"
