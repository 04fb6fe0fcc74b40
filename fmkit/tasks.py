"""Tasks: what a bundle does (``manifest.task``) and which code fine-tunes, evaluates and compresses it.

Text and image classification share the stages (``fmkit finetune/evaluate/predict/compress``),
the training loop, the bundle format and the metrics; a task entry names the task-specific
pieces by ``"module:attribute"`` so importing this registry stays cheap. A new task is a new
entry here and its modules, never a branch inside the stages.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from fmkit.errors import BadInputError
from fmkit.registry import Registry

TEXT = "text-classification"
IMAGE = "image-classification"


@dataclass(frozen=True)
class Task:
    description: str
    finetune_config: str  # pydantic model of `fmkit finetune` / the finetune recipe stage
    finetune: str  # (cfg, out, *, resume, overwrite, keep_checkpoints) -> Manifest
    evaluate: str  # (bundle, EvaluateConfig, *, record) -> metrics
    compress: str  # module:object with the compression hooks (see fmkit/compress/tasks.py)
    claims: str | None = None  # (finetune settings dict) -> bool: is this task meant without saying so?
    runtime_suffix: str = ""  # its runtimes are RUNTIMES[backend + suffix]: "torch" runs text, "torch-image" images

    def get(self, field: str):
        module, _, attribute = getattr(self, field).partition(":")
        return getattr(importlib.import_module(module), attribute)


TASKS: Registry[Task] = Registry("task")

TASKS.register(TEXT)(Task(
    "a label per text (MiniLM and other BERT-family encoders)",
    finetune_config="fmkit.finetune.config:FinetuneConfig", finetune="fmkit.finetune.stage:run_finetune",
    evaluate="fmkit.evaluate.stage:evaluate_text_bundle", compress="fmkit.compress.tasks:TEXT_HOOKS"))
TASKS.register(IMAGE)(Task(
    "a label per image (a small CNN from scratch, EfficientNet-Lite0 transfer)",
    finetune_config="fmkit.finetune.images.config:ImageFinetuneConfig",
    finetune="fmkit.finetune.images.stage:run_image_finetune", evaluate="fmkit.evaluate.images:evaluate_image_bundle",
    compress="fmkit.compress.images:IMAGE_HOOKS", claims="fmkit.finetune.images.config:claims_settings",
    runtime_suffix="-image"))


def task_of_settings(settings: dict) -> str:
    """The task a finetune config means: its ``task`` key, else the first task that claims its
    model/data (an image model, image data or an image bundle), else text classification."""
    if settings.get("task") is not None:
        name = settings["task"]
        if name not in TASKS:
            TASKS.get(name)  # raises with the registered names and a did-you-mean
        return name
    for name in TASKS:
        task = TASKS.get(name)
        if task.claims and task.get("claims")(settings):
            return name
    return TEXT


def finetune_config(settings: dict):
    """Validate finetune ``settings`` with the config model of the task they mean."""
    name = task_of_settings(settings)
    if name == TEXT and "task" in settings:
        settings = {k: v for k, v in settings.items() if k != "task"}  # the text config predates the key
    return TASKS.get(name).get("finetune_config").model_validate(settings)


def task_of_config(cfg) -> str:
    return getattr(cfg, "task", TEXT)


def bundle_task(path: str | Path) -> str | None:
    """The task of a bundle directory, or None when ``path`` is not a bundle."""
    import json

    from fmkit.bundle.manifest import MANIFEST_NAME

    manifest = Path(path) / MANIFEST_NAME
    if not manifest.is_file():
        return None
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError):
        raise BadInputError(f"{manifest} is not valid JSON; the bundle is damaged") from None


def task_of_bundle(path: str | Path, task: str) -> Task:
    """The task entry that evaluates or compresses the bundle at ``path`` (its manifest says ``task``).

    A masked-LM base model (``fmkit pretrain``) has no labels to evaluate or budget against:
    the error says to fine-tune it first.
    """
    if task == "masked-lm":
        raise BadInputError(
            f"{path} is a masked-LM base model (made by `fmkit pretrain`): it has no labels to evaluate, compress "
            f"against or serve. Fine-tune it first: fmkit finetune --model {path} --data DATA --out OUT"
        )
    return TASKS.get(task)
