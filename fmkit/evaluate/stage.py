"""``evaluate``: a bundle + labelled data -> metrics in the manifest and a confusion-matrix PNG, for every task.

The bundle's task adapter (fmkit/tasks/) says which data config and loader apply and how rows
become its runtime's inputs; the split is the bundle's own (fmkit/bundle/split.py), the logits
come from the bundle's runtime (PyTorch or ONNX) and the metrics are the shared streaming ones.
The frozen-feature baseline (fmkit/evaluate/baseline.py) is scored on the same rows beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fmkit.errors import BadInputError


class EvaluateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: str | None = Field(None, description="file or built-in dataset (default: the bundle's training data)")
    text_column: str | None = Field(None, description="text column (default: the one used in training)")
    label_column: str | None = Field(None, description="label column (default: the one used in training)")
    split: Literal["train", "validation", "test", "all"] = Field("test", description="a saved split, or all rows")
    batch_size: int = Field(64, ge=1, description="texts per inference batch")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    baseline: bool = Field(True, description="also score the baseline (logistic regression on the frozen base "
                                             "model's features, fitted on the bundle's training split) on these rows")


def data_config_for(bundle_data: dict, cfg: EvaluateConfig):
    """A text bundle's own data settings with the user's overrides (the audits' reader; see the text adapter)."""
    from fmkit.tasks.text_classification import data_config

    return data_config(bundle_data, cfg)


def resolve_split_indices(bundle: Path, data, split: str) -> list[int] | None:
    """Rows of ``split`` (None for all rows): the saved ones when the data is the same; else recomputed, with a warning."""
    from fmkit.bundle.split import split_rows

    return None if split == "all" else split_rows(Path(bundle), data, split, warn=True)


def record_metrics(bundle: Path, manifest, split: str, metrics: dict) -> None:
    """Store ``metrics`` in the manifest under the split (suffixed with the data's fingerprint when it is not
    the training data) and draw its confusion matrix."""
    from fmkit.bundle import update_manifest
    from fmkit.bundle.store import REPORTS_DIR
    from fmkit.evaluate.plots import plot_confusion_matrix

    fingerprint = metrics["data_fingerprint"]
    key = split if fingerprint == manifest.data.get("fingerprint") else f"{split}@{fingerprint[7:19]}"
    update_manifest(bundle, lambda m: m.metrics.__setitem__(key, metrics))
    if "confusion_matrix" in metrics:  # a ranking task (retrieval) has none
        plot_confusion_matrix(metrics["confusion_matrix"], Path(bundle) / REPORTS_DIR / f"confusion_{key}.png",
                              f"{Path(bundle).name}: {key}")


def evaluate_bundle(bundle: Path, cfg: EvaluateConfig, *, record: bool = True) -> dict:
    """Metrics of ``bundle`` on a split of its data (or ``cfg.data``), recorded in its manifest when ``record``."""
    from fmkit.bundle import read_manifest
    from fmkit.evaluate.metrics import metrics_from_logits
    from fmkit.runtime import load_runtime
    from fmkit.tasks import task_of_bundle

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    task = task_of_bundle(bundle, manifest.task)  # a masked-LM base model: "fine-tune it first"
    data_cfg = task.data_config(manifest.data, cfg)
    data = task.load_data(data_cfg)
    if task.evaluate is not None:  # a task that ranks (text retrieval) scores its own way on the bundle's split
        metrics = task.evaluate(bundle, manifest, data, resolve_split_indices(bundle, data, cfg.split), cfg)
        if record:
            record_metrics(bundle, manifest, cfg.split, metrics)
        return metrics
    unseen = sorted(set(data.labels) - set(manifest.labels))
    if unseen:
        raise BadInputError(
            f"{data_cfg.source}: labels {unseen} were not seen at training time; the model knows "
            f"{manifest.labels}. Drop those {task.examples} or fine-tune again with them."
        )
    indices = resolve_split_indices(bundle, data, cfg.split)
    rows = list(range(len(data.labels))) if indices is None else indices
    if not rows:
        raise BadInputError(f"the {cfg.split!r} split is empty; use --split all or more {task.examples}")
    label2id = manifest.label2id
    labels = [label2id[data.labels[i]] for i in rows]

    runtime = load_runtime(bundle, device=cfg.device)  # the bundle's own runtime (PyTorch or ONNX)
    inputs, extra = task.evaluation_inputs(runtime, data, rows)
    metrics = metrics_from_logits(runtime.iter_logits(inputs, cfg.batch_size), labels, manifest.labels)
    metrics["data_fingerprint"] = data.fingerprint
    metrics.update(extra)
    if cfg.baseline:
        from fmkit.evaluate.baseline import evaluation_baseline

        baseline = evaluation_baseline(bundle, manifest, task, data, cfg.split, rows, cfg.device)
        if baseline is not None:
            metrics["baseline"] = baseline  # beside the model's figures, so the gain is on the same rows
    if record:
        record_metrics(bundle, manifest, cfg.split, metrics)
    return metrics
