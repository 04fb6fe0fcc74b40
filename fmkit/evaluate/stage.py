"""``evaluate``: a bundle + labelled data -> metrics in the manifest and a confusion-matrix PNG."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fmkit.data.config import DataConfig
from fmkit.errors import BadInputError


class EvaluateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: str | None = Field(None, description="file or built-in dataset (default: the bundle's training data)")
    text_column: str | None = Field(None, description="text column (default: the one used in training)")
    label_column: str | None = Field(None, description="label column (default: the one used in training)")
    split: Literal["train", "validation", "test", "all"] = Field("test", description="a saved split, or all rows")
    batch_size: int = Field(64, ge=1, description="texts per inference batch")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")


def data_config_for(bundle_data: dict, cfg: EvaluateConfig) -> DataConfig:
    """The bundle's own data settings (columns, split seed, fractions), with the user's overrides."""
    stored = bundle_data.get("config")
    if not stored and cfg.data is None:
        raise BadInputError("this bundle does not record its training data; pass --data FILE")
    settings = dict(stored or {})
    if cfg.data is not None and cfg.data != settings.get("source"):
        settings.pop("max_rows", None)  # a training-time subsample applies to the training source only
    overrides = {"source": cfg.data, "text_column": cfg.text_column, "label_column": cfg.label_column}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return DataConfig.model_validate(settings)


def resolve_split_indices(bundle: Path, data, split: str) -> list[int] | None:
    """Reuse the split saved at training time when the data is the same; else recompute and say so."""
    from fmkit.finetune.stage import SPLIT_FILE

    if split == "all":
        return None
    saved = bundle / SPLIT_FILE
    if saved.is_file():
        stored = json.loads(saved.read_text())
        if stored.get("fingerprint") == data.fingerprint:
            return stored["indices"][split]
        warnings.warn(
            f"the data differs from the data this bundle was trained on (fingerprint {data.fingerprint[:19]}... "
            f"vs {stored.get('fingerprint', '?')[:19]}...); the {split!r} split is recomputed from the seed and may "
            "overlap the training rows. Use --split all to evaluate on every row of a separate test file.",
            stacklevel=2,
        )
    return data.splits[split]


def record_metrics(bundle: Path, manifest, split: str, metrics: dict) -> None:
    """Store ``metrics`` in the manifest under the split (suffixed with the data's fingerprint when it is not
    the training data) and draw its confusion matrix."""
    from fmkit.bundle import update_manifest
    from fmkit.bundle.store import REPORTS_DIR
    from fmkit.evaluate.plots import plot_confusion_matrix

    fingerprint = metrics["data_fingerprint"]
    key = split if fingerprint == manifest.data.get("fingerprint") else f"{split}@{fingerprint[7:19]}"
    update_manifest(bundle, lambda m: m.metrics.__setitem__(key, metrics))
    plot_confusion_matrix(metrics["confusion_matrix"], Path(bundle) / REPORTS_DIR / f"confusion_{key}.png",
                          f"{Path(bundle).name}: {key}")


def evaluate_bundle(bundle: Path, cfg: EvaluateConfig, *, record: bool = True) -> dict:
    """Metrics of ``bundle`` on a split, by the evaluator of the bundle's task (text, images)."""
    from fmkit.bundle import read_manifest
    from fmkit.tasks import task_of_bundle

    return task_of_bundle(bundle, read_manifest(bundle).task).get("evaluate")(bundle, cfg, record=record)


def evaluate_text_bundle(bundle: Path, cfg: EvaluateConfig, *, record: bool = True) -> dict:
    from fmkit.bundle import read_manifest
    from fmkit.data import load_text_classification
    from fmkit.runtime import load_runtime
    from fmkit.evaluate.metrics import metrics_from_logits

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    data_cfg = data_config_for(manifest.data, cfg)
    data = load_text_classification(data_cfg)
    unseen = sorted(set(data.labels) - set(manifest.labels))
    if unseen:
        raise BadInputError(
            f"{data_cfg.source}: labels {unseen} were not seen at training time; the model knows "
            f"{manifest.labels}. Drop those rows or fine-tune again with them."
        )
    indices = resolve_split_indices(bundle, data, cfg.split)
    rows = range(len(data.texts)) if indices is None else indices
    texts = [data.texts[i] for i in rows]
    if not texts:
        raise BadInputError(f"the {cfg.split!r} split is empty; use --split all or a larger file")
    label2id = manifest.label2id
    labels = [label2id[data.labels[i]] for i in rows]

    runtime = load_runtime(bundle, device=cfg.device)  # the bundle's own runtime (PyTorch or ONNX)
    encoded = runtime.encode(texts)
    metrics = metrics_from_logits(runtime.iter_logits(encoded, cfg.batch_size), labels, manifest.labels)
    metrics["data_fingerprint"] = data.fingerprint
    metrics["truncated_texts"] = encoded.truncated
    if record:
        record_metrics(bundle, manifest, cfg.split, metrics)
    return metrics
