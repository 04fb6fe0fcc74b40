"""Compression: a task bundle -> smaller/faster variants, each measured on its deployment runtime."""

from fmkit.compress.config import CompressConfig
from fmkit.compress.methods import COMPRESS_METHODS

__all__ = ["COMPRESS_METHODS", "CompressConfig"]
