"""Verify a bundle before trusting it: its files match the content digest, its manifest its seal.

Every path that opens a bundle's weights (``fmkit.load``, the runtimes, fine-tuning or pretraining
from a bundle, compression's parent) calls :func:`open_bundle` first. Files are hashed once per
process and cached by (path, size, mtime, ctime, inode), so reopening an unchanged bundle costs a
``stat`` per file. :func:`loading_weights` turns a damaged file that still gets opened (verification
off, or a plain Hugging Face directory) into a clear :class:`BadInputError` instead of a traceback.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from pathlib import Path
from typing import Iterator

from fmkit.errors import BadInputError, BundleIntegrityError

# (resolved path, size, mtime_ns, ctime_ns, inode) -> sha256 hex. ctime cannot be set by hand, so a
# patch that restores the mtime still misses the cache.
_DIGESTS: dict[tuple, str] = {}
_DIGESTS_LOCK = threading.Lock()
# A file changed within this many seconds may change again inside one timestamp tick (racy-git
# problem): it is hashed every time rather than cached.
RACY_SECONDS = 2.0
_TRUST_UNVERIFIED = {"depth": 0}  # > 0 inside trust_unverified(): the CLI's --no-verify
NO_VERIFY_HINT = "--no-verify (CLI) or verify=False (Python)"


def cached_sha256(path: Path) -> str:
    from fmkit.fileio import sha256_file

    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(key)
    if known is not None:
        return known
    digest = sha256_file(path)
    if time.time() - max(stat.st_mtime_ns, stat.st_ctime_ns) / 1e9 > RACY_SECONDS:
        with _DIGESTS_LOCK:
            _DIGESTS[key] = digest
    return digest


def content_problems(path: Path, manifest) -> list[str]:
    """Files that differ from the manifest's record: "missing X", "changed X", "unexpected X"."""
    from fmkit.bundle.store import bundle_files

    actual = bundle_files(path)
    problems = [f"missing {name}" for name in manifest.files if name not in actual]
    problems += [f"changed {name}" for name, digest in manifest.files.items()
                 if name in actual and cached_sha256(actual[name]) != digest]
    problems += [f"unexpected {name}" for name in actual if name not in manifest.files]
    return problems


@contextlib.contextmanager
def trust_unverified() -> Iterator[None]:
    """Open bundles without verifying them inside this block (the CLI's ``--no-verify``)."""
    warnings.warn("bundle verification is OFF (--no-verify): changed weights or edited metrics will be loaded and "
                  "reported as they are", stacklevel=3)
    _TRUST_UNVERIFIED["depth"] += 1
    try:
        yield
    finally:
        _TRUST_UNVERIFIED["depth"] -= 1


def open_bundle(path, *, verify: bool = True):
    """The manifest of bundle ``path`` once its seal and content digest verify; else BundleIntegrityError.

    ``verify=False`` (or inside :func:`trust_unverified`) skips both, with a loud warning.
    """
    from fmkit.bundle.seal import check_seal
    from fmkit.bundle.store import read_manifest_data

    path = Path(path)
    manifest, data = read_manifest_data(path)
    if not verify or _TRUST_UNVERIFIED["depth"]:
        if not verify:
            warnings.warn(f"{path}: loaded WITHOUT verification (verify=False): its files and manifest may have "
                          "been changed since fmkit wrote them", stacklevel=2)
        return manifest
    seal = check_seal(data)
    if seal.edited:
        raise BundleIntegrityError(
            f"{path}: {seal.message}, so its metrics and digests cannot be trusted. Re-create the bundle with fmkit "
            f"(or restore it from where it was made); to load it anyway, knowing why it changed, pass {NO_VERIFY_HINT}")
    problems = content_problems(path, manifest)
    if problems:
        raise BundleIntegrityError(
            f"{path}: its files do not match the content digest fmkit recorded ({'; '.join(problems)}), so it is not "
            f"the model its manifest describes. Restore the bundle from where it was made, or re-create it; to load "
            f"it anyway, knowing why it changed, pass {NO_VERIFY_HINT}")
    return manifest


def verify_model_directory(path) -> None:
    """Verify ``path`` if it is a bundle (a plain Hugging Face directory has no digest to check)."""
    from fmkit.bundle.store import is_bundle

    if is_bundle(path):
        open_bundle(path)


@contextlib.contextmanager
def loading_weights(path) -> Iterator[None]:
    """Turn a truncated or corrupt weights file into a BadInputError naming it, never a traceback."""
    try:
        yield
    except BadInputError:  # already clear
        raise
    except (OSError, RuntimeError, ValueError, EOFError) as error:
        raise BadInputError(_damaged(path, error)) from None
    except Exception as error:  # safetensors' SafetensorError, onnxruntime's InvalidProtobuf/Fail...
        if type(error).__module__.split(".")[0] in ("safetensors", "onnxruntime", "onnx", "google", "tokenizers"):
            raise BadInputError(_damaged(path, error)) from None
        raise


def _damaged(path, error: BaseException) -> str:
    reason = " ".join(str(error).split())[:300] or type(error).__name__
    directory = Path(path)
    if directory.is_dir() and not any(directory.glob("*.safetensors")) and not any(directory.glob("*.onnx")):
        return (f"{path} has no weights fmkit can load (no *.safetensors or *.onnx; {type(error).__name__}: "
                f"{reason}). fmkit never loads pickled weights (.bin/.pt): convert them with "
                "model.save_pretrained(dir, safe_serialization=True)")
    return (f"{path}: its model files cannot be read ({type(error).__name__}: {reason}); they are truncated or "
            f"damaged. Restore the bundle from where it was made, or re-create it (`fmkit info {path}` lists what "
            "changed)")


