"""Compression methods. Each file registers one; a new method is a new file here.

A method gets the parent bundle (``CompressContext``) and a temporary directory, writes the
variant's model files there and returns facts for the manifest (sparsity, excluded layers, ...).
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
            from fmkit.data import DataConfig, load_text_classification

            from fmkit.errors import BadInputError

            config = self.manifest.data.get("config")
            if not config:
                raise BadInputError(f"{self.parent} does not record its training data; compression needs it")
            if self.data_source is not None:
                config = {**config, "source": self.data_source}
            data = load_text_classification(DataConfig.model_validate(config))
            expected = self.manifest.data.get("fingerprint")
            if expected and data.fingerprint != expected:
                raise BadInputError(
                    f"{config['source']} is not the data {self.parent} was trained on (fingerprint "
                    f"{data.fingerprint[:19]}... vs {expected[:19]}...); compression calibrates, distils and "
                    "tests on the parent's own splits, so pass that data (or omit --data)")
            self._data = data
        return self._data

    def load_torch_model(self):
        from fmkit.runtime.torch_runtime import load_hf_classifier

        return load_hf_classifier(self.parent)


@dataclass(frozen=True)
class CompressMethod:
    options: type[BaseModel]
    apply: Callable[[CompressContext, BaseModel, Path], dict]
    runtime: str  # the runtime the variant is deployed on: "torch" or "onnx"
    description: str
    accepts_onnx: bool = False  # can start from an fp32 ONNX parent (e.g. a structurally pruned one)
    quantizes: bool = False  # its output must not be quantized again


COMPRESS_METHODS: Registry[CompressMethod] = Registry("compression method")

from fmkit.compress.methods import (  # noqa: E402,F401  (register themselves)
    bf16,
    distill,
    export_onnx,
    prune_magnitude,
    prune_structured,
    quantize_dynamic,
    quantize_static,
)
