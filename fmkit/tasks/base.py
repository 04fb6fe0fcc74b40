"""The task seam: :class:`TaskAdapter` (what a task is to every stage) and the ``TASKS`` registry.

A task is one file in this package that builds a ``TaskAdapter`` and registers it. The stages
(finetune, evaluate, compress, the runtimes, serve, audit) look the task up once and call its
functions; nothing outside this package branches on a task's name. An adapter file imports no
torch: its functions import what they need when called, and references into other modules are
``"module:attribute"`` strings resolved by :meth:`TaskAdapter.get`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from fmkit.errors import BadInputError
from fmkit.registry import Registry


@dataclass(frozen=True)
class Capabilities:
    """What a bundle of the task can do; serve, audit, compress and the CLI ask this, not the name."""

    finetune_methods: tuple[str, ...] = ()  # FINETUNE_METHODS it trains with ("lora" in it: LoRA)
    dp: bool = False  # DP-SGD fine-tuning (fmkit.privacy.dp.DPHooks)
    serves: str | None = None  # request field a served model takes: "texts", "images"; None: not servable
    explanations: bool = False  # per-token attributions (fmkit.audit.explain)
    labelled: bool = True  # has labels to evaluate, compress against and serve


@dataclass
class TrainingSetup:
    """What a task's ``prepare`` hands the finetune stage: the model to train and every split's inputs."""

    model: Any  # the network to train (already wrapped by the finetune method, e.g. LoRA)
    inputs: dict[str, Any]  # split name -> what ``batches`` and ``split_metrics`` take (token ids, pixels)
    base: dict  # the starting point's record for manifest.base_model: name, path, digest
    parent: str  # the lineage entry's parent name
    parent_lineage: list  # the lineage of the bundle it continues; [] from a base model
    default_learning_rate: float  # when the TrainConfig leaves learning_rate unset
    tools: Any = None  # what batches, metrics and save need besides the model: a tokenizer, a network config
    manifest_fields: dict = field(default_factory=dict)  # extra Manifest fields (text: max_length)
    facts: dict = field(default_factory=dict)  # recorded in manifest.training (image: architecture, input size)


@dataclass(frozen=True)
class TaskAdapter:
    """Everything task-specific, as plain functions. ``None``: the task does not do that stage.

    Finetune: ``load_data(data config) -> dataset`` (``.labels``, ``.label_names``, ``.splits``,
    ``.split(name)``, ``.fingerprint``, ``.summary()``); ``prepare(cfg, data) -> TrainingSetup``;
    ``batches(setup, cfg, train inputs, label ids) -> BatchSource``; ``loss(model, batch)``;
    ``split_metrics(setup, model, inputs, label ids, label names, device) -> metrics``;
    ``save(setup, model, cfg, directory) -> facts for manifest.training``;
    ``dp_hooks(setup, cfg, train inputs, label ids) -> TrainHooks`` (with ``capabilities.dp``).
    Evaluate: ``data_config(manifest.data, EvaluateConfig) -> data config``;
    ``evaluation_inputs(runtime, data, rows) -> (runtime inputs, extra metrics)``.
    """

    name: str
    description: str
    capabilities: Capabilities
    examples: str = "examples"  # what one row is called in messages: "texts", "images"
    finetune_config: str | None = None  # "module:Class": the pydantic config of `fmkit finetune`
    claims: Callable[[dict], bool] | None = None  # is this task meant by finetune settings without a `task` key?
    load_data: Callable | None = None
    # ``resolve_config(cfg, data) -> (cfg, choice)``: the config with its "auto" choices that depend on the data made
    # (images: model auto -> an architecture by the training split's size), and the record of why ({} when nothing was
    # chosen). None: the task's config is used as given.
    resolve_config: Callable | None = None
    prepare: Callable | None = None
    batches: Callable | None = None
    loss: Callable | None = None
    split_metrics: Callable | None = None
    save: Callable | None = None
    dp_hooks: Callable | None = None
    data_config: Callable | None = None
    evaluation_inputs: Callable | None = None
    # Baseline: ``frozen_features(finetune cfg, data, rows: split -> row indices) -> (encoder description,
    # split -> (n, d) float32 features)`` of the *frozen* base model (fmkit/evaluate/baseline.py fits a
    # logistic regression on them); None: the task has no frozen base to probe, so no baseline.
    frozen_features: Callable | None = None
    # What the task's split metrics lead with: logged and early-stopped on during training (``selection_metric``,
    # higher is better) and printed by `fmkit finetune`/`fmkit evaluate`. Classifiers: accuracy, macro-F1, log-loss.
    headline_metrics: tuple[str, ...] = ("accuracy", "macro_f1", "log_loss")
    selection_metric: str = "macro_f1"
    # Evaluate: ``evaluate(bundle path, manifest, data, rows, EvaluateConfig) -> metrics`` for a task whose
    # metrics are not a classifier's logits (text retrieval ranks an index); None: the shared classifier path.
    evaluate: Callable | None = None
    compress: str | None = None  # "module:object": its CompressHooks (fmkit/compress/tasks.py)
    runtime_inputs: str | None = None  # "module:Class": its runtime input preparation (fmkit/runtime/text.py)
    refusal: str = ""  # why an unlabelled bundle cannot be evaluated, compressed or served ({path})
    opens_with: str = ""  # for a task fmkit.load cannot predict with (no runtime_inputs): what opens its bundles

    def get(self, name: str):
        """The object a ``"module:attribute"`` field names, imported now."""
        reference = getattr(self, name)
        if reference is None:
            raise BadInputError(f"the {self.name} task has no {name.replace('_', ' ')}")
        module, _, attribute = reference.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def require_labels(self, path) -> None:
        """Refuse a bundle with no labels (a masked-LM base model) with the task's own message."""
        if not self.capabilities.labelled:
            raise BadInputError(self.refusal.format(path=path))


TASKS: Registry[TaskAdapter] = Registry("task")


def register_task(adapter: TaskAdapter) -> TaskAdapter:
    """Add ``adapter`` to ``TASKS`` under its name (each task file calls this once)."""
    return TASKS.register(adapter.name)(adapter)


DEFAULT_TASK = "text-classification"  # what finetune settings mean when no task claims them (fmkit's first task)


def task_of_settings(settings: dict) -> str:
    """The task a finetune config means: its ``task`` key, else the first task that claims its
    model/data (an image model, image data or an image bundle), else the default task."""
    if settings.get("task") is not None:
        return TASKS.get(settings["task"]).name  # an unknown name: the registered ones and a did-you-mean
    for name in TASKS:
        claims = TASKS.get(name).claims
        if claims is not None and claims(settings):
            return name
    return DEFAULT_TASK


def finetune_config(settings: dict):
    """Validate finetune ``settings`` with the config model of the task they mean."""
    task = TASKS.get(task_of_settings(settings))
    model = task.get("finetune_config")
    if "task" not in model.model_fields:  # the text config predates the key
        settings = {k: v for k, v in settings.items() if k != "task"}
    return model.model_validate(settings)


def task_of_config(cfg) -> str:
    """The task of a validated finetune config (configs without a ``task`` field are the default task's)."""
    return getattr(cfg, "task", DEFAULT_TASK)


def bundle_task(path) -> str | None:
    """The task of a bundle directory, or None when ``path`` is not a bundle."""
    import json
    from pathlib import Path

    from fmkit.bundle.manifest import MANIFEST_NAME

    manifest = Path(path) / MANIFEST_NAME
    if not manifest.is_file():
        return None
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError):
        raise BadInputError(f"{manifest} is not valid JSON; the bundle is damaged") from None


def task_of_bundle(path, task: str) -> TaskAdapter:
    """The adapter that evaluates, compresses or serves the bundle at ``path`` (its manifest says ``task``);
    a task without labels (a masked-LM base model) is refused with its own "fine-tune it first" message."""
    adapter = TASKS.get(task)
    adapter.require_labels(path)
    return adapter
