"""A directory sealed like a bundle, for what an application builds (an assistant, a recommender).

Every file but the manifest and ``reports/`` is digested; the manifest records the digests, the content
digest and a seal (fmkit.bundle.seal), so a changed, missing or added file and an edited manifest are
refused before anything in the directory is used. What is inside stays the application's business.
"""

from __future__ import annotations

import json
from pathlib import Path

from fmkit.errors import BundleIntegrityError

REPORTS_DIR = "reports"  # what evaluation writes later: outside the digest, it does not change what was built


def digested_files(directory: Path, manifest_name: str) -> dict[str, str]:
    """relative path -> sha256 of every file but the manifest and reports/."""
    from fmkit.bundle.verify import cached_sha256

    directory = Path(directory)
    files = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and relative.as_posix() != manifest_name and relative.parts[0] != REPORTS_DIR:
            files[relative.as_posix()] = cached_sha256(path)
    return files


def write_sealed_manifest(directory: Path, manifest_name: str, manifest: dict) -> dict:
    """Record every file's digest, the content digest and the seal; refuses a directory holding a pickle."""
    from fmkit.bundle.seal import make_seal
    from fmkit.bundle.store import content_digest, refuse_pickles
    from fmkit.fileio import write_json_atomic

    refuse_pickles(directory)
    manifest["files"] = digested_files(directory, manifest_name)
    manifest["content_digest"] = content_digest(manifest["files"])
    manifest.pop("seal", None)
    manifest["seal"] = make_seal(manifest)
    write_json_atomic(Path(directory) / manifest_name, manifest)
    return manifest


def read_sealed_manifest(directory: Path, manifest_name: str, *, remake: str) -> dict:
    """The manifest once its seal and every file digest verify; ``remake`` says how to rebuild it
    (e.g. "rebuild it with `fmkit assistant build`"). The caller checks first that the file exists."""
    from fmkit.bundle.seal import check_seal
    from fmkit.bundle.store import content_digest

    directory = Path(directory)
    file = directory / manifest_name
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleIntegrityError(f"{file}: unreadable ({error}); {remake}") from None
    seal = check_seal(manifest)
    if seal.edited:
        raise BundleIntegrityError(f"{directory}: {seal.message}; {remake}")
    recorded = manifest.get("files", {})
    found = digested_files(directory, manifest_name)
    problems = [f"{name} changed" for name in recorded if name in found and found[name] != recorded[name]]
    problems += [f"{name} missing" for name in recorded if name not in found]
    problems += [f"{name} added" for name in found if name not in recorded]
    if problems or content_digest(recorded) != manifest.get("content_digest"):
        shown = "; ".join(problems[:5]) or "content digest differs"
        raise BundleIntegrityError(f"{directory}: its files do not match what fmkit recorded ({shown}); {remake} "
                                   "or restore it from where it was made")
    return manifest
