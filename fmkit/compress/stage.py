"""``compress``: a bundle -> a variant, evaluated and measured on the runtime it deploys on.

The variant is checked against ``max_accuracy_drop`` (test-accuracy points vs the parent): a
variant that breaks it is written with ``compression.status = "failed"`` and the stage raises
:class:`CheckFailedError` (exit 1) — it is never silently kept as if it were fine.
"""

from __future__ import annotations

import time
from pathlib import Path

from fmkit.bundle import LineageEntry, Manifest, read_manifest, update_manifest, write_bundle
from fmkit.compress.config import CompressConfig
from fmkit.compress.methods import COMPRESS_METHODS, CompressContext
from fmkit.compress.tasks import compress_hooks
from fmkit.errors import BadInputError, CheckFailedError

def check_parent(parent: Manifest, method, method_name: str, path: Path) -> None:
    if parent.task not in method.tasks:
        able = [name for name in COMPRESS_METHODS if parent.task in COMPRESS_METHODS.get(name).tasks]
        raise BadInputError(f"{path} is an {parent.task} bundle; {method_name} compresses {', '.join(method.tasks)} "
                            f"bundles. For {parent.task}: {', '.join(able) or 'no method yet'}")
    parent_method = parent.compression.get("method")
    if parent_method in COMPRESS_METHODS and COMPRESS_METHODS.get(parent_method).quantizes:
        raise BadInputError(
            f"{path} is already quantized ({parent_method}); compress its fp32 parent "
            f"({parent.compression.get('parent')}) instead, and chain methods as distill -> prune -> quantize"
        )
    if parent.runtime != "torch" and not method.accepts_onnx:
        raise BadInputError(
            f"{method_name} needs a PyTorch bundle, but {path} runs on {parent.runtime}; apply {method_name} "
            f"before exporting, to {parent.compression.get('parent') or 'its parent'}"
        )
    if "test" not in parent.metrics:
        raise BadInputError(f"{path} has no test metrics to compare against; run `fmkit evaluate {path}` first")


def test_texts(context: CompressContext) -> tuple[list[str], list[str]]:
    """The parent's own held-out test rows (same fingerprint, same indices)."""
    import json

    data = context.data
    split_file = context.parent / "split.json"
    if split_file.is_file():
        stored = json.loads(split_file.read_text())
        if stored.get("fingerprint") == data.fingerprint:
            indices = stored["indices"]["test"]
            return [data.texts[i] for i in indices], [data.labels[i] for i in indices]
    return data.split("test")


def evaluate_variant(path: Path, texts: list[str], labels: list[str], label_names: list[str]) -> dict:
    import fmkit
    from fmkit.evaluate.metrics import metrics_from_logits

    runtime = fmkit.load(path, device="cpu")
    encoded = runtime.encode(texts, warn=False)
    label_ids = [label_names.index(label) for label in labels]
    return metrics_from_logits(runtime.iter_logits(encoded, 64), label_ids, label_names)


def run_compress(bundle: Path, cfg: CompressConfig, out: Path, *, overwrite: bool = False, log=print) -> Manifest:
    bundle, out = Path(bundle), Path(out)
    parent = read_manifest(bundle)
    from fmkit.tasks import task_of_bundle

    task_of_bundle(bundle, parent.task)  # a masked-LM base model: "fine-tune it first"
    method = COMPRESS_METHODS.get(cfg.method_name)
    check_parent(parent, method, cfg.method_name, bundle)
    if out.exists() and not overwrite:
        raise BadInputError(f"{out} already exists; choose another --out or pass --overwrite")
    context = CompressContext(bundle, parent, cfg.max_accuracy_drop, cfg.seed, log, data_source=cfg.data)
    started = time.time()
    facts: dict = {}
    manifest = Manifest(
        task=parent.task, labels=parent.labels, max_length=parent.max_length, base_model=parent.base_model,
        runtime=method.runtime, data=parent.data, training=parent.training, privacy=parent.privacy,
        lineage=parent.lineage + [LineageEntry(stage=cfg.method_name, config=cfg.model_dump(mode="json"),
                                               parent_digest=parent.content_digest, parent=str(bundle),
                                               data_fingerprint=parent.data.get("fingerprint"))],
    )

    def write_files(directory: Path) -> None:
        facts.update(method.apply(context, cfg.method, directory))

    write_bundle(out, manifest, write_files, overwrite=overwrite)
    hooks = compress_hooks(parent)
    texts, labels = hooks.test_inputs(context)  # texts, or images for an image bundle
    metrics = hooks.evaluate_variant(out, texts, labels, parent.labels)
    parent_accuracy = parent.metrics["test"]["accuracy"]
    drop = 100 * (parent_accuracy - metrics["accuracy"])
    status = "ok" if drop <= cfg.max_accuracy_drop else "failed"
    figures = {}
    if cfg.measure.enabled:
        figures = hooks.measure(out, texts, cfg.measure)

    def record(m: Manifest) -> None:
        m.metrics["test"] = metrics
        m.compression = {
            "method": cfg.method_name, "parent": str(bundle), "parent_digest": parent.content_digest,
            "parent_test_accuracy": parent_accuracy, "accuracy_drop_points": round(drop, 4),
            "max_accuracy_drop_points": cfg.max_accuracy_drop, "status": status, "seconds": round(time.time() - started, 1),
            **facts,
        }
        if figures:
            m.benchmarks[figures["runtime"]] = figures

    update_manifest(out, record)
    if status == "failed":
        raise CheckFailedError(
            f"{cfg.method_name} lost {drop:.2f} accuracy points (parent {parent_accuracy:.4f} -> {metrics['accuracy']:.4f}), "
            f"more than --max-accuracy-drop {cfg.max_accuracy_drop}; {out} is marked failed in its manifest"
        )
    return read_manifest(out)
