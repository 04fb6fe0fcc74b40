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

from pathlib import Path

from fmkit.errors import BadInputError

MANIFEST = "recommender.json"
KIND = "fmkit-recommender"
ITEMS = "catalog/items.json"
USERS = "catalog/users.json"
INTERACTIONS = "catalog/interactions.npz"
MODELS_DIR = "models"
REPORTS_DIR = "reports"
SCHEMA = 2  # schema_version >= 2: a manifest without its seal reads as edited (fmkit.bundle.seal)
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}


def write_manifest(directory: Path, manifest: dict) -> dict:
    """Digest every file, seal the manifest (fmkit/bundle/sealed_directory.py); refuses a pickle."""
    from fmkit.bundle.sealed_directory import write_sealed_manifest

    return write_sealed_manifest(directory, MANIFEST, manifest)


def open_manifest(path: Path) -> dict:
    """The manifest of recommender ``path`` once its seal and every file digest verify."""
    from fmkit.bundle.sealed_directory import read_sealed_manifest

    path = Path(path)
    file = path / MANIFEST
    if not path.is_dir():
        raise BadInputError(f"{path}: no such directory; make one with `fmkit recommend train --out {path}`")
    if not file.is_file():
        hint = " (it is a model bundle, not a recommender)" if (path / "fmkit.json").is_file() else ""
        raise BadInputError(f"{path} is not a recommender directory: it has no {MANIFEST}{hint}; make one with "
                            "`fmkit recommend train`")
    manifest = read_sealed_manifest(path, MANIFEST, remake="retrain it with `fmkit recommend train`")
    if manifest.get("kind") != KIND:
        raise BadInputError(f"{path}: {MANIFEST} says kind={manifest.get('kind')!r}, not {KIND!r}")
    return manifest
