"""``split.json``: the row indices of each split a bundle was trained with, and its data's fingerprint.

Finetune writes it; evaluate and compress read it through :func:`split_rows`, so a bundle is
scored on its own held-out rows whenever the data is the same (same fingerprint), and the split
is recomputed from the seed (with a warning where asked) when it is not.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

SPLIT_FILE = "split.json"


def write_split(directory: Path, fingerprint: str, seed: int, indices: dict[str, list[int]]) -> None:
    from fmkit.fileio import write_json_atomic

    write_json_atomic(Path(directory) / SPLIT_FILE, {"fingerprint": fingerprint, "seed": seed, "indices": indices})


def read_split(bundle: Path) -> dict | None:
    """``{"fingerprint", "seed", "indices"}`` of the bundle's saved split, or None when it has none."""
    saved = Path(bundle) / SPLIT_FILE
    if not saved.is_file():
        return None
    try:
        return json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        from fmkit.errors import BadInputError

        raise BadInputError(f"{saved} is not valid JSON; the bundle is damaged") from None


def split_rows(bundle: Path, data, name: str, *, warn: bool = False) -> list[int]:
    """Rows of split ``name`` of ``data`` (``.fingerprint``, ``.splits``): the saved ones when the data is the
    bundle's training data, else those recomputed from the seed (``warn``: say they may overlap training)."""
    stored = read_split(bundle)
    if stored is not None:
        if stored.get("fingerprint") == data.fingerprint:
            return stored["indices"][name]
        if warn:
            warnings.warn(
                f"the data differs from the data this bundle was trained on (fingerprint {data.fingerprint[:19]}... "
                f"vs {stored.get('fingerprint', '?')[:19]}...); the {name!r} split is recomputed from the seed and "
                "may overlap the training rows. Use --split all to evaluate on every row of a separate test file.",
                stacklevel=3,
            )
    return data.splits[name]
