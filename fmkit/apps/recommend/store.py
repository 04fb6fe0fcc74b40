"""The recommender directory: written atomically, every file digested, its manifest sealed like a bundle's.

    recommender.json          what it is: config, data summary and drops, models, evaluation, digests, seal
    catalog/items.json        item ids (score-column order), titles, texts, genres, year; items added later too
    catalog/users.json        user ids known at training (row order of the interaction arrays)
    catalog/interactions.npz  the split as index arrays: user, item, time, split code (0 train, 1 valid, 2 test)
    models/<name>/            each scorer's own files (JSON, .npy, LightGBM text model; the text model's
                              encoder bundles): popularity, item-knn, als, bpr, text, hybrid
    reports/                  evaluation.json/html, ndcg.png, the card (outside the digest: re-evaluating
                              does not change what the recommender is)

Nothing in it is a pickle (``refuse_pickles``); ``np.load(..., allow_pickle=False)`` reads the arrays.
"""

from __future__ import annotations

import json
from pathlib import Path

from fmkit.errors import BadInputError, BundleIntegrityError

MANIFEST = "recommender.json"
KIND = "fmkit-recommender"
ITEMS = "catalog/items.json"
USERS = "catalog/users.json"
INTERACTIONS = "catalog/interactions.npz"
MODELS_DIR = "models"
REPORTS_DIR = "reports"
SCHEMA = 2  # schema_version >= 2: a manifest without its seal reads as edited (fmkit.bundle.seal)
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}


def digested_files(directory: Path) -> dict[str, str]:
    """relative path -> sha256 of every file but the manifest and reports/."""
    from fmkit.bundle.verify import cached_sha256

    directory = Path(directory)
    files = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and relative.as_posix() != MANIFEST and relative.parts[0] != REPORTS_DIR:
            files[relative.as_posix()] = cached_sha256(path)
    return files


def write_manifest(directory: Path, manifest: dict) -> dict:
    """Record every file's digest, the content digest and the seal; refuses a directory holding a pickle."""
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
    """The manifest of recommender ``path`` once its seal and every file digest verify."""
    from fmkit.bundle.seal import check_seal
    from fmkit.bundle.store import content_digest

    path = Path(path)
    file = path / MANIFEST
    if not path.is_dir():
        raise BadInputError(f"{path}: no such directory; make one with `fmkit recommend train --out {path}`")
    if not file.is_file():
        hint = " (it is a model bundle, not a recommender)" if (path / "fmkit.json").is_file() else ""
        raise BadInputError(f"{path} is not a recommender directory: it has no {MANIFEST}{hint}; make one with "
                            "`fmkit recommend train`")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleIntegrityError(f"{file}: unreadable ({error}); retrain the recommender") from None
    if manifest.get("kind") != KIND:
        raise BadInputError(f"{path}: {MANIFEST} says kind={manifest.get('kind')!r}, not {KIND!r}")
    seal = check_seal(manifest)
    if seal.edited:
        raise BundleIntegrityError(f"{path}: {seal.message}; retrain it with `fmkit recommend train`")
    recorded = manifest.get("files", {})
    found = digested_files(path)
    problems = [f"{name} changed" for name in recorded if name in found and found[name] != recorded[name]]
    problems += [f"{name} missing" for name in recorded if name not in found]
    problems += [f"{name} added" for name in found if name not in recorded]
    if problems or content_digest(recorded) != manifest.get("content_digest"):
        shown = "; ".join(problems[:5]) or "content digest differs"
        raise BundleIntegrityError(f"{path}: its files do not match what fmkit recorded ({shown}); retrain it with "
                                   "`fmkit recommend train` or restore it from where it was made")
    return manifest
