"""The assistant directory: written atomically, its files digested, its manifest sealed like a bundle's.

    assistant.json        what it is: config, encoder, FAQ summary, retrieval choice, calibration, digests
    index/embeddings.npy  one L2-normalised row per entry
    index/entries.json    the entries: id, text, kind (faq/document), source, category, questions
    encoder/              a copy of the fine-tuned encoder bundle (absent for a zero-shot base)
    intent/               a copy of the intent bundle (when there is one)
    reports/              what `fmkit assistant evaluate` wrote (not part of the digest)
"""

from __future__ import annotations

import json
from pathlib import Path

from fmkit.errors import BadInputError, BundleIntegrityError

MANIFEST = "assistant.json"
EMBEDDINGS = "index/embeddings.npy"
ENTRIES = "index/entries.json"
ENCODER_DIR = "encoder"
INTENT_DIR = "intent"
REPORTS_DIR = "reports"
SCHEMA = 2  # schema_version >= 2: a manifest without its seal reads as edited (fmkit.bundle.seal)


def digested_files(directory: Path) -> dict[str, str]:
    """relative path -> sha256 of every file but the manifest and reports/."""
    from fmkit.bundle.verify import cached_sha256

    directory = Path(directory)
    return {path.relative_to(directory).as_posix(): cached_sha256(path) for path in sorted(directory.rglob("*"))
            if path.is_file() and path.relative_to(directory).as_posix() != MANIFEST
            and path.relative_to(directory).parts[0] != REPORTS_DIR}


def write_manifest(directory: Path, manifest: dict) -> dict:
    from fmkit.bundle.seal import make_seal
    from fmkit.bundle.store import content_digest, refuse_pickles
    from fmkit.fileio import write_json_atomic

    refuse_pickles(directory)
    manifest["files"] = digested_files(directory)
    manifest["content_digest"] = content_digest(manifest["files"])
    manifest.pop("seal", None)
    manifest["seal"] = make_seal(manifest)
    write_json_atomic(Path(directory) / MANIFEST, manifest)
    return manifest


def open_manifest(path: Path) -> dict:
    """The manifest of assistant ``path`` once its seal and file digests verify."""
    from fmkit.bundle.seal import check_seal
    from fmkit.bundle.store import content_digest

    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        hint = (" (it is a model bundle: build an assistant from it with `fmkit assistant build --encoder "
                f"{path} ...`)") if (path / "fmkit.json").is_file() else ""
        raise BadInputError(f"{path} is not an assistant directory: it has no {MANIFEST}{hint}")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleIntegrityError(f"{file}: unreadable ({error}); rebuild the assistant") from None
    seal = check_seal(manifest)
    if seal.edited:
        raise BundleIntegrityError(f"{path}: {seal.message}; rebuild it with `fmkit assistant build`")
    recorded = manifest.get("files", {})
    found = digested_files(path)
    problems = [f"{name} changed" for name in recorded if name in found and found[name] != recorded[name]]
    problems += [f"{name} missing" for name in recorded if name not in found]
    problems += [f"{name} added" for name in found if name not in recorded]
    if problems or content_digest(recorded) != manifest.get("content_digest"):
        shown = "; ".join(problems[:5]) or "content digest differs"
        raise BundleIntegrityError(f"{path}: its files do not match what fmkit recorded ({shown}); rebuild it "
                                   "with `fmkit assistant build` or restore it from where it was made")
    return manifest
