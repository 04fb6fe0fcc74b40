"""``evaluate`` for image bundles: the same metrics, split bookkeeping and confusion PNG as text."""

from __future__ import annotations

from pathlib import Path

from fmkit.errors import BadInputError


def image_data_config(bundle_data: dict, source: str | None):
    """The bundle's own image settings (size, channels, split seed, fractions), with another source if given."""
    from fmkit.data.images import ImageDataConfig

    stored = bundle_data.get("config")
    if not stored and source is None:
        raise BadInputError("this bundle does not record its training data; pass --data PATH")
    settings = dict(stored or {})
    if source is not None and source != settings.get("source"):
        settings.pop("max_rows", None)  # a training-time subsample applies to the training source only
        settings["source"] = source
    return ImageDataConfig.model_validate(settings)


def evaluate_image_bundle(bundle: Path, cfg, *, record: bool = True) -> dict:
    from fmkit.bundle import read_manifest
    from fmkit.data.images import load_image_classification
    from fmkit.evaluate.metrics import metrics_from_logits
    from fmkit.evaluate.stage import record_metrics, resolve_split_indices
    from fmkit.runtime import load_runtime

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    if cfg.text_column or cfg.label_column:
        raise BadInputError("--text-column/--label-column are for text tables; image labels come from class "
                            "folders, IDX label files or the .npz 'labels' array")
    data = load_image_classification(image_data_config(manifest.data, cfg.data))
    unseen = sorted(set(data.labels) - set(manifest.labels))
    if unseen:
        raise BadInputError(f"{data.config.source}: labels {unseen} were not seen at training time; the model knows "
                            f"{manifest.labels}. Drop those images or fine-tune again with them.")
    indices = resolve_split_indices(bundle, data, cfg.split)
    rows = list(range(len(data.labels))) if indices is None else indices
    if not rows:
        raise BadInputError(f"the {cfg.split!r} split is empty; use --split all or more images")
    runtime = load_runtime(bundle, device=cfg.device)  # the bundle's own runtime (PyTorch or ONNX)
    images = runtime.prepare(data.images[rows])  # to the bundle's channels and size, as at training time
    label2id = manifest.label2id
    labels = [label2id[data.labels[i]] for i in rows]
    metrics = metrics_from_logits(runtime.iter_logits(images, cfg.batch_size), labels, manifest.labels)
    metrics["data_fingerprint"] = data.fingerprint
    if record:
        record_metrics(bundle, manifest, cfg.split, metrics)
    return metrics
