"""Readable config errors: every problem at once, with a did-you-mean for unknown keys."""

from __future__ import annotations

from fmkit.registry import did_you_mean


def _allowed_keys(model_cls, location: tuple) -> list[str]:
    """Field names of the (nested) pydantic model at ``location``, for did-you-mean hints."""
    current = model_cls
    for part in location[:-1]:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if hasattr(a, "model_fields")]
        if not candidates:
            return []
        current = candidates[0]
    return list(getattr(current, "model_fields", {}))


def format_validation_error(error, model_cls=None, prefix: str = "") -> str:
    lines = []
    for item in error.errors():
        location = tuple(item["loc"])
        where = prefix + ".".join(str(p) for p in location) if location else (prefix.rstrip(".") or "config")
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            hint = did_you_mean(location[-1], _allowed_keys(model_cls, location)) if model_cls else ""
            message = f"unknown key.{hint}"
        lines.append(f"  {where}: {message}")
    return f"{len(lines)} error(s) in the configuration:\n" + "\n".join(lines)
