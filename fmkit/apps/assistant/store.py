"""The assistant directory: written atomically, its files digested, its manifest sealed like a bundle's.

    assistant.json        what it is: config, encoder, FAQ summary, retrieval choice, calibration, digests
    index/embeddings.npy  one L2-normalised row per entry
    index/entries.json    the entries: id, text, kind (faq/document), source, category, questions
    encoder/              a copy of the fine-tuned encoder bundle (absent for a zero-shot base)
    intent/               a copy of the intent bundle (when there is one)
    reports/              what `fmkit assistant evaluate` wrote (not part of the digest)
"""

from __future__ import annotations

from pathlib import Path

from fmkit.errors import BadInputError

MANIFEST = "assistant.json"
EMBEDDINGS = "index/embeddings.npy"
ENTRIES = "index/entries.json"
ENCODER_DIR = "encoder"
INTENT_DIR = "intent"
REPORTS_DIR = "reports"
SCHEMA = 2  # schema_version >= 2: a manifest without its seal reads as edited (fmkit.bundle.seal)


def write_manifest(directory: Path, manifest: dict) -> dict:
    """Digest every file, seal the manifest (fmkit/bundle/sealed_directory.py); refuses a pickle."""
    from fmkit.bundle.sealed_directory import write_sealed_manifest

    return write_sealed_manifest(directory, MANIFEST, manifest)


def open_manifest(path: Path) -> dict:
    """The manifest of assistant ``path`` once its seal and file digests verify."""
    from fmkit.bundle.sealed_directory import read_sealed_manifest

    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        hint = (" (it is a model bundle: build an assistant from it with `fmkit assistant build --encoder "
                f"{path} ...`)") if (path / "fmkit.json").is_file() else ""
        raise BadInputError(f"{path} is not an assistant directory: it has no {MANIFEST}{hint}")
    return read_sealed_manifest(path, MANIFEST, remake="rebuild it with `fmkit assistant build`")
