"""What compression needs from a task: its data, its test, and the hooks methods need (its ONNX
graph, calibration inputs, a transformers model to edit).

Methods are written once against :class:`CompressHooks`. A method declares the hooks it needs
(``CompressMethod.needs``); a task's adapter (``fmkit.tasks``, its ``compress``) names the hooks
it has: text here, images in fmkit/compress/images.py. A method applies to a task when the task
has every hook it needs, so a new task or method never edits a list of the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

_LAYER = re.compile(r"layer\.(\d+)/")


@dataclass(frozen=True)
class CompressHooks:
    # Every task that can be compressed has these: the stage tests and measures each variant with them.
    load_data: Callable  # (context) -> the parent's training data, fingerprint-checked
    test_inputs: Callable  # (context) -> (inputs, labels) of the parent's own test split
    measure: Callable  # (bundle path, inputs, MeasureConfig) -> figures for manifest.benchmarks
    # What methods need (CompressMethod.needs); a task without one has None, and the methods needing it
    # do not apply to that task.
    export_fp32: Callable | None = None  # (context, directory, opset) -> fp32 ONNX path, parity-checked
    calibration_feeds: Callable | None = None  # (context, samples) -> [ONNX Runtime feed dicts] from the training split
    validation_feeds: Callable | None = None  # (context, samples) -> ([feeds], label ids) from the validation split
    group_of: Callable[[str], str] | None = None  # ONNX node name -> its block (static INT8's fallback unit)
    static_op_types: tuple[str, ...] = ()  # what static INT8 quantizes
    transformers_model: Callable | None = None  # (context) -> (tokenizer, BERT-family classifier) to edit or train
    # (variant path, context) -> test metrics with "accuracy", for a task that is not scored from a classifier's
    # logits (text retrieval ranks its index); None: the stage's shared classifier evaluation.
    evaluate: Callable | None = None

    def has(self, needs) -> bool:
        return all(getattr(self, name) is not None for name in needs)


def task_hooks(task: str) -> CompressHooks | None:
    """The compression hooks a task's adapter names (``adapter.compress``); None: it is not compressed."""
    from fmkit.tasks import TASKS

    adapter = TASKS.get(task)
    return adapter.get("compress") if adapter.compress else None


def compress_hooks(manifest) -> CompressHooks:
    """The hooks of the bundle's task (its adapter's ``compress``)."""
    from fmkit.tasks import TASKS

    return TASKS.get(manifest.task).get("compress")


def tasks_with(needs) -> list[str]:
    """The registered tasks whose hooks have everything in ``needs`` (the tasks a method compresses)."""
    from fmkit.tasks import TASKS

    return [name for name in TASKS if task_hooks(name) is not None and task_hooks(name).has(needs)]


def methods_for(task: str) -> list[str]:
    """The registered compression methods that apply to ``task`` (its hooks have all they need)."""
    from fmkit.compress.methods import COMPRESS_METHODS

    hooks = task_hooks(task)
    return [] if hooks is None else [name for name in COMPRESS_METHODS if hooks.has(COMPRESS_METHODS.get(name).needs)]


# -- text ----------------------------------------------------------------------------------------

def recorded_data(context, load: Callable, config_model):
    """The parent's training data as its manifest records it (``--data`` may move the file), loaded by the task's
    ``load`` from a ``config_model`` and fingerprint-checked: compression scores on the parent's own split."""
    from fmkit.errors import BadInputError

    config = context.manifest.data.get("config")
    if not config:
        raise BadInputError(f"{context.parent} does not record its training data; compression needs it")
    if context.data_source is not None:
        config = {**config, "source": context.data_source}
    data = load(config_model.model_validate(config))
    check_fingerprint(context, data, config["source"])
    return data


def _text_data(context):
    from fmkit.data import DataConfig, load_text_classification

    return recorded_data(context, load_text_classification, DataConfig)


def check_fingerprint(context, data, source: str) -> None:
    from fmkit.errors import BadInputError

    expected = context.manifest.data.get("fingerprint")
    if expected and data.fingerprint != expected:
        raise BadInputError(
            f"{source} is not the data {context.parent} was trained on (fingerprint "
            f"{data.fingerprint[:19]}... vs {expected[:19]}...); compression calibrates, distils and "
            "tests on the parent's own splits, so pass that data (or omit --data)")


def _text_export(context, directory: Path, opset: int) -> Path:
    from fmkit.compress.methods.quantize_dynamic import export_fp32

    return export_fp32(context, directory, opset)


def _text_calibration(context, samples: int):
    from transformers import AutoTokenizer

    from fmkit.compress.files import calibration_batches

    tokenizer = AutoTokenizer.from_pretrained(str(context.parent))
    return [{k: v.numpy() for k, v in b.items()} for b in calibration_batches(context, tokenizer, samples)]


def _text_validation(context, samples: int):
    import numpy as np
    from transformers import AutoTokenizer

    from fmkit.compress.methods.quantize_static import _numpy_batches

    tokenizer = AutoTokenizer.from_pretrained(str(context.parent))
    texts, labels = context.data.split("validation")
    chosen = np.random.default_rng(context.seed).permutation(len(texts))[:samples]
    order, batches = _numpy_batches(context, tokenizer, [texts[i] for i in chosen])
    return batches, np.array([context.manifest.labels.index(labels[chosen[i]]) for i in order])


def _text_model(context):
    from fmkit.runtime.text import load_hf_classifier

    return load_hf_classifier(context.parent)


def _text_group(node_name: str) -> str:
    match = _LAYER.search(node_name)
    return f"layer.{match.group(1)}" if match else ("embeddings" if "embeddings" in node_name else "head")


def _text_test(context):
    from fmkit.compress.stage import test_texts

    return test_texts(context)


def _text_measure(path, texts, measure):
    from fmkit.runtime.measure import measure_bundle

    return measure_bundle(path, texts, threads=measure.threads, latency_samples=measure.latency_samples,
                          throughput_batch=measure.throughput_batch)


TEXT_HOOKS = CompressHooks(
    load_data=_text_data, test_inputs=_text_test, measure=_text_measure,
    export_fp32=_text_export, calibration_feeds=_text_calibration, validation_feeds=_text_validation,
    static_op_types=("MatMul", "Gemm", "Gather"), group_of=_text_group, transformers_model=_text_model)


# -- text retrieval (fmkit/retrieval/export.py): an encoder graph, scored by ranking its index ----------------

def _retrieval(name: str):
    def call(*args):
        from fmkit.retrieval import export

        return getattr(export, name)(*args)
    return call


RETRIEVAL_HOOKS = CompressHooks(
    load_data=_retrieval("parent_data"), test_inputs=_retrieval("test_queries"), measure=_retrieval("measure_encoder"),
    export_fp32=_retrieval("export_fp32"), evaluate=_retrieval("evaluate_variant"))
