"""What a compression method is (``CompressMethod``), what it is handed (``CompressContext``), and
the registry every method file joins (``COMPRESS_METHODS``).

Kept apart from ``methods/__init__.py`` so that the method files import this module, not the
package that imports them: no import loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pydantic import BaseModel

from fmkit.registry import Registry


@dataclass
class CompressContext:
    parent: Path
    manifest: object  # the parent's Manifest
    max_accuracy_drop: float
    seed: int = 0
    log: Callable[[str], None] = print
    data_source: str | None = None  # overrides the parent's recorded data path (same rows required)
    _data: object = field(default=None, repr=False)

    @property
    def data(self):
        """The parent's training data (calibration samples, distillation), loaded once."""
        if self._data is None:
            self._data = self.hooks.load_data(self)  # texts or images, by the bundle's task
        return self._data

    @property
    def hooks(self):
        """The parent's task's compression hooks (fmkit/compress/tasks.py)."""
        from fmkit.compress.tasks import compress_hooks

        return compress_hooks(self.manifest)

    def load_torch_model(self):
        """(tokenizer, model): the parent as a transformers classifier (methods needing "transformers_model")."""
        return self.hooks.transformers_model(self)


@dataclass(frozen=True)
class CompressMethod:
    options: type[BaseModel]
    apply: Callable[[CompressContext, BaseModel, Path], dict]
    runtime: str  # the runtime the variant is deployed on: "torch" or "onnx"
    description: str
    accepts_onnx: bool = False  # can start from an fp32 ONNX parent (e.g. a structurally pruned one)
    quantizes: bool = False  # its output must not be quantized again
    # The task hooks it uses (fmkit/compress/tasks.py); it applies to the tasks that have them all.
    needs: tuple[str, ...] = ("transformers_model",)


COMPRESS_METHODS: Registry[CompressMethod] = Registry("compression method")
