"""One ``predict`` for every task and backend: a bundle opened on PyTorch eager or ONNX Runtime.

``fmkit/runtime/base.py`` is the one classifier runtime; the bundle's task adapter supplies its
input preparation (text.py, images.py); a backend (torch_runtime.py, onnx_runtime.py) only runs
the network, and its name is the bundle manifest's ``runtime``.
"""

from __future__ import annotations

import importlib

from fmkit.registry import Registry, did_you_mean

RUNTIMES: Registry = Registry("runtime backend")

# backend -> module that registers it (imported only when used: each pulls in a heavy library)
BACKEND_MODULES = {"torch": "fmkit.runtime.torch_runtime", "onnx": "fmkit.runtime.onnx_runtime"}


def load_runtime(path, *, device: str = "auto", backend: str | None = None, verify: bool = True, **options):
    """Open a bundle on a backend (``backend=None``: the one its manifest names); its task comes
    from its manifest, so "torch" runs a text bundle and an image bundle alike.

    The bundle is verified first (content digest and manifest seal, see fmkit.bundle.verify);
    ``verify=False`` skips that, with a warning, for people who know why the bundle changed."""
    if backend is None:
        from fmkit.bundle import read_manifest

        backend = read_manifest(path).runtime
    if backend not in BACKEND_MODULES:
        from fmkit.errors import BadInputError

        raise BadInputError(f"unknown runtime backend {backend!r}; use one of {', '.join(BACKEND_MODULES)}."
                            + did_you_mean(backend, BACKEND_MODULES))
    importlib.import_module(BACKEND_MODULES[backend])
    return RUNTIMES.get(backend)(path, device=device, verify=verify, **options)


__all__ = ["RUNTIMES", "load_runtime"]
