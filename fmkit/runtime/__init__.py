"""One ``predict`` for every runtime: PyTorch eager or ONNX Runtime, chosen by the bundle."""

from __future__ import annotations

import importlib

from fmkit.registry import Registry

RUNTIMES: Registry = Registry("runtime backend")

# backend -> module that registers it (imported only when used: each pulls in a heavy library)
BACKEND_MODULES = {"torch": "fmkit.runtime.torch_runtime", "onnx": "fmkit.runtime.onnx_runtime"}


def load_runtime(path, *, device: str = "auto", backend: str | None = None, **options):
    """Open a bundle on its runtime (``backend=None``: the one its manifest names)."""
    if backend is None:
        from fmkit.bundle import read_manifest

        backend = read_manifest(path).runtime
    if backend in BACKEND_MODULES:
        importlib.import_module(BACKEND_MODULES[backend])
    return RUNTIMES.get(backend)(path, device=device, **options)


__all__ = ["RUNTIMES", "load_runtime"]
