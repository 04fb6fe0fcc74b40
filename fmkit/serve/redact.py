"""What a non-admin caller may see of a model: no server filesystem path, only file names.

A manifest records where its data and parents lived (``data.source``, lineage ``parent``, stage
configs); those directories say how the server is laid out. Admin keys see them as they are.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath

# Absolute (/x, C:\x, \\host), home- or dot-relative (~/x, ./x, ../x), or two or more separators
# (runs/date/model). One slash stays: it is how hub models are named (sentence-transformers/x).
_PATH = re.compile(r"^(/|~|\.{1,2}[/\\]|[A-Za-z]:[/\\]|\\\\)|[/\\].*[/\\]")


def looks_like_path(text: str) -> bool:
    return bool(_PATH.search(text))


def redact(value):
    """``value`` (JSON-like) with every path-like string cut to its last component."""
    if isinstance(value, str):
        if not looks_like_path(value):
            return value
        name = (PureWindowsPath if "\\" in value else PurePosixPath)(value.rstrip("/\\")).name
        return name or "(path)"
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value


def public_summary(summary: dict) -> dict:
    """A model summary for a non-admin: no ``bundle`` directory, no paths in what the stages recorded."""
    return redact({key: value for key, value in summary.items() if key != "bundle"}) | {"bundle": None}


def public_manifest(manifest):
    """A copy of ``manifest`` whose paths are cut to names (for model cards shown to non-admins)."""
    fields = ("data", "base_model", "training", "privacy", "compression", "benchmarks", "audits", "postprocess")
    lineage = [entry.model_copy(update={"parent": redact(entry.parent), "config": redact(entry.config)})
               for entry in manifest.lineage]
    return manifest.model_copy(update={field: redact(getattr(manifest, field)) for field in fields}
                               | {"lineage": lineage})
