"""The ``fmkit.json`` manifest: what a bundle is, where it came from and how it measured.

Fields other stages fill in (compression, privacy, audits, benchmarks) are open dicts keyed
by stage, documented in docs/bundle.md. Unknown top-level keys from a newer fmkit are kept
and warned about, never a crash (PEFT's forward-compatibility habit).
"""

from __future__ import annotations

import datetime as _dt
import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fmkit._version import __version__

MANIFEST_NAME = "fmkit.json"
SCHEMA_VERSION = 2  # 2: the manifest carries a seal (fmkit/bundle/seal.py)


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class LineageEntry(BaseModel):
    """One stage that produced (or changed) this bundle."""

    model_config = ConfigDict(extra="forbid")

    stage: str  # e.g. "finetune", "quantize-dynamic", "merge-lora"
    config: dict[str, Any]  # the full, resolved stage config
    parent_digest: str | None  # content digest of the input bundle; None for a hub-less base model
    parent: str | None = None  # human-readable name/path of the parent
    data_fingerprint: str | None = None
    fmkit_version: str = __version__
    time: str = Field(default_factory=utc_now)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    fmkit_version: str = __version__
    task: str  # "text-classification" (images, masked-lm come with their stages)
    labels: list[str]
    max_length: int = 128  # tokens per text at training and prediction time
    runtime: str = "torch"  # the runtime that runs this bundle: "torch" (safetensors) or "onnx" (model.onnx)
    base_model: dict[str, Any]  # {"name": "minilm", "path": "...", "digest": "..."}
    lineage: list[LineageEntry] = Field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)  # split -> metrics
    data: dict[str, Any] = Field(default_factory=dict)  # source, columns, fingerprint, split sizes
    training: dict[str, Any] = Field(default_factory=dict)  # steps, time, best epoch, precision
    # Filled by later stages; each is keyed by what measured it (see docs/bundle.md).
    privacy: dict[str, Any] = Field(default_factory=dict)
    compression: dict[str, Any] = Field(default_factory=dict)
    benchmarks: dict[str, Any] = Field(default_factory=dict)
    audits: dict[str, Any] = Field(default_factory=dict)
    # A decision rule applied after the model (e.g. per-group thresholds from fairness mitigation).
    # Non-empty means plain runtimes refuse the bundle: its decisions need inputs beyond the text.
    postprocess: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)  # relative path -> sha256
    content_digest: str = ""
    # digest of every other field (canonical JSON) + HMAC with the workspace key; written by write_manifest
    seal: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "Manifest":
        if self.schema_version > SCHEMA_VERSION:
            warnings.warn(
                f"bundle manifest schema {self.schema_version} is newer than this fmkit "
                f"understands ({SCHEMA_VERSION}); upgrade fmkit to read every field",
                stacklevel=2,
            )
        if self.model_extra:
            warnings.warn(
                f"manifest has fields this fmkit does not know: {sorted(self.model_extra)}; "
                "they are kept as they are",
                stacklevel=2,
            )
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"manifest labels must be unique, got {self.labels}")
        return self

    @property
    def label2id(self) -> dict[str, int]:
        return {label: index for index, label in enumerate(self.labels)}
