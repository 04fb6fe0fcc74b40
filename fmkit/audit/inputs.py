"""The rows an audit looks at: a bundle's saved split (or a new file), with any group columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fmkit.errors import BadInputError


@dataclass
class AuditRows:
    texts: list[str]
    labels: list[str]
    source: str
    split: str
    data_fingerprint: str
    groups: dict[str, list[str]] = field(default_factory=dict)


def load_audit_rows(bundle: Path, *, data: str | None = None, split: str = "test", group_columns=(),
                    text_column: str | None = None, label_column: str | None = None,
                    max_rows: int | None = None, seed: int = 0) -> AuditRows:
    """The bundle's own ``split`` rows when ``data`` is its training data (same fingerprint), else ``data``'s."""
    import numpy as np

    from fmkit.bundle import read_manifest
    from fmkit.data import load_text_classification
    from fmkit.data.config import DataConfig
    from fmkit.evaluate.stage import EvaluateConfig, data_config_for, resolve_split_indices

    manifest = read_manifest(bundle)
    base = data_config_for(manifest.data, EvaluateConfig(data=data, split=split, text_column=text_column,
                                                         label_column=label_column))
    data_cfg = DataConfig.model_validate({**base.model_dump(), "group_columns": list(group_columns)})
    loaded = load_text_classification(data_cfg)
    rows = resolve_split_indices(Path(bundle), loaded, split)
    rows = list(range(len(loaded.texts))) if rows is None else list(rows)
    if not rows:
        raise BadInputError(f"the {split!r} split of {data_cfg.source} is empty; use --split all or more data")
    if max_rows is not None and len(rows) > max_rows:
        rows = sorted(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False).tolist())
    return AuditRows(
        texts=[loaded.texts[i] for i in rows], labels=[loaded.labels[i] for i in rows], source=data_cfg.source,
        split=split, data_fingerprint=loaded.fingerprint,
        groups={column: [values[i] for i in rows] for column, values in loaded.groups.items()},
    )


def default_sensitive_columns(source: str) -> list[str]:
    from fmkit.data.builtin import BUILTIN_DATASETS

    if source in BUILTIN_DATASETS:
        return list(BUILTIN_DATASETS.get(source).sensitive_columns)
    return []
