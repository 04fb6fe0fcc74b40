"""``compress``: a bundle -> a variant, evaluated and measured on the runtime it deploys on.

The variant is checked against ``max_accuracy_drop``: test-accuracy points lost vs the lineage's
task model (the last ancestor that is not a compression, carried in ``compression.reference``), so
a chain distill -> prune -> int8 cannot spend the budget once per step; ``accuracy_budget: step``
measures against the immediate parent instead. A variant that breaks it is written with
``compression.status = "failed"`` and the stage raises :class:`CheckFailedError` (exit 1) — it is
never silently kept as if it were fine.

The variant is evaluated and benchmarked inside its temporary directory, before the rename: the
bundle that appears under ``out`` always holds its metrics (a kill leaves nothing, or all of it).
"""

from __future__ import annotations

import time
from pathlib import Path

from fmkit.bundle import LineageEntry, Manifest, open_bundle, read_manifest, update_manifest, write_bundle
from fmkit.bundle.lineage import is_compression
from fmkit.compress.config import CompressConfig
from fmkit.compress.methods import COMPRESS_METHODS, CompressContext
from fmkit.compress.tasks import compress_hooks, methods_for, tasks_with
from fmkit.errors import BadInputError, CheckFailedError


def check_parent(parent: Manifest, method, method_name: str, path: Path) -> None:
    if not compress_hooks(parent).has(method.needs):
        able = methods_for(parent.task)
        raise BadInputError(f"{path} is an {parent.task} bundle; {method_name} compresses "
                            f"{', '.join(tasks_with(method.needs))} bundles. For {parent.task}: "
                            f"{', '.join(able) or 'no method yet'}")
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
    from fmkit.bundle.split import split_rows

    data = context.data
    rows = split_rows(context.parent, data, "test")
    return [data.texts[i] for i in rows], [data.labels[i] for i in rows]


def evaluate_variant(path: Path, inputs, labels: list[str], label_names: list[str]) -> dict:
    """Test metrics of the variant at ``path`` on its deployment runtime; ``inputs`` are the task's (texts, images)."""
    import fmkit
    from fmkit.evaluate.metrics import metrics_from_logits

    runtime = fmkit.load(path, device="cpu")
    encoded = runtime.encode(inputs, warn=False)
    label_ids = [label_names.index(label) for label in labels]
    return metrics_from_logits(runtime.iter_logits(encoded, 64), label_ids, label_names)


def task_model_reference(parent: Manifest, path: Path) -> dict | None:
    """The lineage's task model as ``{digest, name, test_accuracy}``: the parent itself unless it is a compression.

    A variant carries its reference forward, so no ancestor has to be on disk. None when a variant
    made before references were recorded cannot tell (a chain of compressions without one).
    """
    if not parent.lineage or not is_compression(parent.lineage[-1]):
        return {"digest": parent.content_digest, "name": str(path), "test_accuracy": parent.metrics["test"]["accuracy"]}
    if parent.compression.get("reference"):
        return dict(parent.compression["reference"])
    legacy = parent.compression
    if (len(parent.lineage) >= 2 and not is_compression(parent.lineage[-2])
            and legacy.get("parent_test_accuracy") is not None):  # a one-step variant: its parent was the task model
        return {"digest": legacy.get("parent_digest"), "name": legacy.get("parent"),
                "test_accuracy": legacy["parent_test_accuracy"]}
    return None


def accuracy_drops(parent_accuracy: float, reference: dict | None, accuracy: float) -> tuple[float, float | None]:
    """(step, total) test-accuracy points lost vs the parent and vs the task model."""
    step = round(100 * (parent_accuracy - accuracy), 4)
    total = None if reference is None else round(100 * (reference["test_accuracy"] - accuracy), 4)
    return step, total


def run_compress(bundle: Path, cfg: CompressConfig, out: Path, *, overwrite: bool = False, log=print) -> Manifest:
    from fmkit.fileio import remove_stale_leftovers

    bundle, out = Path(bundle), Path(out)
    parent = open_bundle(bundle)  # a changed parent is refused: its variant would claim its digest
    from fmkit.tasks import task_of_bundle

    task_of_bundle(bundle, parent.task)  # a masked-LM base model: "fine-tune it first"
    method = COMPRESS_METHODS.get(cfg.method_name)
    check_parent(parent, method, cfg.method_name, bundle)
    if out.exists() and not overwrite:
        raise BadInputError(f"{out} already exists; choose another --out or pass --overwrite")
    remove_stale_leftovers(out)  # what a killed earlier run left: cleaned now, not after this run's training
    reference = task_model_reference(parent, bundle)
    if reference is None and cfg.accuracy_budget == "total":
        log(f"warning: {bundle} does not record its task model's test accuracy (made by an older fmkit); "
            "the budget is checked against the parent only")
    context = CompressContext(bundle, parent, cfg.max_accuracy_drop, cfg.seed, log, data_source=cfg.data)
    started = time.time()
    facts: dict = {}
    outcome: dict = {}
    manifest = Manifest(
        task=parent.task, labels=parent.labels, max_length=parent.max_length, base_model=parent.base_model,
        runtime=method.runtime, data=parent.data, training=parent.training, privacy=parent.privacy,
        lineage=parent.lineage + [LineageEntry(stage=cfg.method_name, config=cfg.model_dump(mode="json"),
                                               parent_digest=parent.content_digest, parent=str(bundle),
                                               data_fingerprint=parent.data.get("fingerprint"))],
    )

    def write_files(directory: Path) -> None:
        facts.update(method.apply(context, cfg.method, directory))

    def measure_before_publish(directory: Path, _manifest: Manifest) -> None:
        hooks = compress_hooks(parent)
        inputs, labels = hooks.test_inputs(context)  # texts, or images for an image bundle
        metrics = (hooks.evaluate(directory, context) if hooks.evaluate is not None  # a ranking task's own metrics
                   else evaluate_variant(directory, inputs, labels, parent.labels))
        step, total = accuracy_drops(parent.metrics["test"]["accuracy"], reference, metrics["accuracy"])
        applies_to = "total" if cfg.accuracy_budget == "total" and total is not None else "step"
        drop = total if applies_to == "total" else step
        status = "ok" if drop <= cfg.max_accuracy_drop else "failed"
        figures = hooks.measure(directory, inputs, cfg.measure) if cfg.measure.enabled else {}
        outcome.update(metrics=metrics, step=step, total=total, applies_to=applies_to, status=status)

        def record(m: Manifest) -> None:
            m.metrics["test"] = metrics
            m.compression = {
                "method": cfg.method_name, "parent": str(bundle), "parent_digest": parent.content_digest,
                "parent_test_accuracy": parent.metrics["test"]["accuracy"], "accuracy_drop_points": step,
                "reference": reference, "total_accuracy_drop_points": total,
                "max_accuracy_drop_points": cfg.max_accuracy_drop, "accuracy_budget": applies_to, "status": status,
                "seconds": round(time.time() - started, 1), **facts,
            }
            if figures:
                m.benchmarks[figures["runtime"]] = figures

        update_manifest(directory, record)

    write_bundle(out, manifest, write_files, overwrite=overwrite, before_publish=measure_before_publish)
    if outcome.get("status") == "failed":  # measured on rank 0 (the only one under torchrun that publishes)
        raise CheckFailedError(budget_message(cfg, outcome, parent, reference, out))
    return read_manifest(out)


def budget_message(cfg: CompressConfig, outcome: dict, parent: Manifest, reference: dict | None, out: Path) -> str:
    accuracy = outcome["metrics"]["accuracy"]
    if outcome["applies_to"] == "total":
        lost = (f"{outcome['total']:.2f} accuracy points in total vs the task model {reference['name']} "
                f"({reference['test_accuracy']:.4f} -> {accuracy:.4f}; this step {outcome['step']:+.2f})")
    else:
        lost = f"{outcome['step']:.2f} accuracy points (parent {parent.metrics['test']['accuracy']:.4f} -> {accuracy:.4f})"
    return (f"{cfg.method_name} lost {lost}, more than --max-accuracy-drop {cfg.max_accuracy_drop}; "
            f"{out} is marked failed in its manifest")
