"""Reading a bundle's lineage: which step was a compression, and the accuracy lost since the task model.

Here, below compress and audit, because both ask (the compression budget, the policy gate, the
comparison table) and neither may import the other.
"""

from __future__ import annotations


def is_compression(entry) -> bool:
    """A compression's lineage entry records the full compression config: a method and its budget."""
    return {"method", "max_accuracy_drop"} <= set(entry.config)


def total_accuracy_drop(manifest) -> float | None:
    """Points lost vs the task model; for a variant older than that record, its step drop if its parent was the task model."""
    c = manifest.compression
    if not c:
        return None
    if "total_accuracy_drop_points" in c:
        return c["total_accuracy_drop_points"]
    one_step = len(manifest.lineage) >= 2 and not is_compression(manifest.lineage[-2])
    return c.get("accuracy_drop_points") if one_step else None
