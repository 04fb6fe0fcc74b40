"""Compression methods. Each file registers one; a new method is a new file here.

A method gets the parent bundle (``CompressContext``) and a temporary directory, writes the
variant's model files there and returns facts for the manifest (sparsity, excluded layers, ...).
"""

from fmkit.compress.methods.base import COMPRESS_METHODS, CompressContext, CompressMethod
from fmkit.compress.methods import (  # noqa: F401  (register themselves)
    bf16,
    distill,
    export_onnx,
    prune_magnitude,
    prune_structured,
    quantize_dynamic,
    quantize_static,
)

__all__ = ["COMPRESS_METHODS", "CompressContext", "CompressMethod"]
