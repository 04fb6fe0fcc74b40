"""fmkit: a pretrained foundation model + your data -> a measured, trustworthy deployment.

``import fmkit`` stays cheap: torch, transformers and friends load inside the stage
that needs them (see tests/test_import_cost.py).

Example::

    import fmkit
    model = fmkit.load("models/reviews-lora")
    model.predict(["a warm, funny, beautifully acted film"])
"""

from fmkit._version import __version__
from fmkit.errors import BadInputError, CheckFailedError, FmkitError

__all__ = ["__version__", "load", "FmkitError", "BadInputError", "CheckFailedError"]


def load(path, *, device: str = "auto", backend: str | None = None, verify: bool = True, **options):
    """Open a bundle for prediction: ``fmkit.load(path).predict(["text"])``.

    The runtime is the one the bundle was made for (PyTorch, or ONNX Runtime for exported and
    quantized variants); ``options`` go to it (``batch_size``, ``threads``, ``precision``).
    The bundle is verified first: files that differ from its content digest, or a manifest edited
    outside fmkit, raise BadInputError. ``verify=False`` loads it anyway (with a warning).
    """
    from fmkit.runtime import load_runtime

    return load_runtime(path, device=device, backend=backend, verify=verify, **options)
