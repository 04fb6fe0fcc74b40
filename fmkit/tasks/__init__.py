"""Tasks: what a bundle does (``manifest.task``) and the adapter every stage asks about it.

Each task is one file here that registers a :class:`TaskAdapter` (fmkit/tasks/base.py): text
classification, image classification, masked-LM (the base models `fmkit pretrain` makes). A new
task is a new file imported below, never a branch inside a stage. Importing this package loads
no torch: adapters import their heavy pieces when a stage calls them.
"""

from fmkit.tasks.base import (DEFAULT_TASK, TASKS, Capabilities, TaskAdapter, TrainingSetup, bundle_task,
                              finetune_config, register_task, task_of_bundle, task_of_config, task_of_settings)
from fmkit.tasks import image_classification, masked_lm, text_classification  # noqa: E402  (register themselves)

TEXT = text_classification.NAME
IMAGE = image_classification.NAME

__all__ = ["DEFAULT_TASK", "IMAGE", "TASKS", "TEXT", "Capabilities", "TaskAdapter", "TrainingSetup", "bundle_task",
           "finetune_config", "register_task", "task_of_bundle", "task_of_config", "task_of_settings"]
