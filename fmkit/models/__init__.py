"""Model resolution: names, local Hugging Face directories and bundles -> a local path."""

from fmkit.models.resolve import BUILTIN_MODELS, ResolvedModel, resolve_model

__all__ = ["BUILTIN_MODELS", "ResolvedModel", "resolve_model"]
