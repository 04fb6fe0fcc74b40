"""One ``predict`` for every runtime. PyTorch now; ONNX Runtime registers itself beside it."""

from __future__ import annotations

from fmkit.registry import Registry

RUNTIMES: Registry = Registry("runtime backend")


def load_runtime(path, *, device: str = "auto", backend: str = "torch"):
    if backend == "torch":
        import fmkit.runtime.torch_runtime  # noqa: F401  (registers itself)
    return RUNTIMES.get(backend)(path, device=device)


__all__ = ["RUNTIMES", "load_runtime"]
