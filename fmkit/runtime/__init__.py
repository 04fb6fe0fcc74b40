"""One ``predict`` for every runtime: PyTorch eager or ONNX Runtime, chosen by the bundle."""

from __future__ import annotations

import importlib

from fmkit.registry import Registry

RUNTIMES: Registry = Registry("runtime backend")

# backend -> module that registers it (imported only when used: each pulls in a heavy library)
BACKEND_MODULES = {"torch": "fmkit.runtime.torch_runtime", "onnx": "fmkit.runtime.onnx_runtime",
                   "torch-image": "fmkit.runtime.image_runtime", "onnx-image": "fmkit.runtime.image_runtime"}


def load_runtime(path, *, device: str = "auto", backend: str | None = None, verify: bool = True, **options):
    """Open a bundle on its runtime (``backend=None``: the one its manifest names, for its task:
    ``runtime: torch`` runs a text bundle on "torch" and an image bundle on "torch-image").

    The bundle is verified first (content digest and manifest seal, see fmkit.bundle.verify);
    ``verify=False`` skips that, with a warning, for people who know why the bundle changed."""
    if backend is None:
        from fmkit.bundle import read_manifest
        from fmkit.tasks import TASKS

        manifest = read_manifest(path)
        suffix = TASKS.get(manifest.task).runtime_suffix if manifest.task in TASKS else ""
        backend = manifest.runtime + suffix
    if backend in BACKEND_MODULES:
        importlib.import_module(BACKEND_MODULES[backend])
    return RUNTIMES.get(backend)(path, device=device, verify=verify, **options)


__all__ = ["RUNTIMES", "load_runtime"]
