"""Tasks: what a bundle does (``manifest.task``) and the adapter every stage asks about it.

Each task is one file here that registers a :class:`TaskAdapter` (fmkit/tasks/base.py): text
classification, image classification, masked-LM (the base models `fmkit pretrain` makes). A new
task is a new file here (found and imported below), never a branch inside a stage. Importing this package loads
no torch: adapters import their heavy pieces when a stage calls them.
"""

import importlib
import pkgutil

from fmkit.tasks.base import (DEFAULT_TASK, TASKS, Capabilities, TaskAdapter, TrainingSetup, bundle_task,
                              finetune_config, register_task, task_of_bundle, task_of_config, task_of_settings)

for _task_file in pkgutil.iter_modules(__path__):  # each task file registers its adapter when imported
    if _task_file.name != "base":
        importlib.import_module(f"{__name__}.{_task_file.name}")

__all__ = ["DEFAULT_TASK", "TASKS", "Capabilities", "TaskAdapter", "TrainingSetup", "bundle_task",
           "finetune_config", "register_task", "task_of_bundle", "task_of_config", "task_of_settings"]
