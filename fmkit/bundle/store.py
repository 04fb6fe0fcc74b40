"""Reading and writing bundles on disk.

A bundle is built in a temporary sibling directory and renamed into place, so a crash
never leaves a half bundle. Its content digest covers every file but the manifest, so
recording metrics later does not change the model's identity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from fmkit.bundle.manifest import MANIFEST_NAME, Manifest
from fmkit.errors import BadInputError
from fmkit.fileio import atomic_directory, sha256_file, write_json_atomic

# Derived reports (plots, evaluation outputs) live here and are not part of the model's identity.
REPORTS_DIR = "reports"
# Files that would be unpickled by a loader: fmkit never loads them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def is_bundle(path: Path) -> bool:
    return (Path(path) / MANIFEST_NAME).is_file()


def file_digests(directory: Path) -> dict[str, str]:
    directory = Path(directory)
    digests = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and path.name != MANIFEST_NAME and relative.parts[0] != REPORTS_DIR:
            digests[relative.as_posix()] = sha256_file(path)
    return digests


def content_digest(files: dict[str, str]) -> str:
    summary = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return f"sha256:{summary}"


def refuse_pickles(directory: Path) -> None:
    pickles = [p.name for p in Path(directory).rglob("*") if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise BadInputError(
            f"{directory} contains pickle files {pickles}; fmkit never loads pickles "
            "(they can run code). Convert the weights to safetensors "
            "(model.save_pretrained(dir, safe_serialization=True)) and remove the pickles."
        )


def write_bundle(
    out: Path,
    manifest: Manifest,
    write_files: Callable[[Path], None],
    *,
    overwrite: bool = False,
    before_publish: Callable[[Path, Manifest], None] | None = None,
) -> Manifest:
    """Create bundle ``out``: ``write_files(tmp_dir)`` writes weights/tokenizer, we add the manifest.

    ``before_publish(tmp_dir, manifest)`` runs on the complete temporary bundle before it is renamed
    into place (e.g. evaluating and benchmarking it), so ``out`` never appears unmeasured.
    """
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        write_files(tmp)
        refuse_pickles(tmp)
        manifest.files = file_digests(tmp)
        manifest.content_digest = content_digest(manifest.files)
        write_json_atomic(tmp / MANIFEST_NAME, manifest.model_dump(mode="json"))
        if before_publish is not None:
            before_publish(tmp, manifest)
    return manifest


def read_manifest(path: Path) -> Manifest:
    path = Path(path)
    manifest_path = path / MANIFEST_NAME
    if not path.exists():
        raise BadInputError(f"bundle {path} does not exist; pass a directory made by fmkit")
    if not manifest_path.is_file():
        raise BadInputError(
            f"{path} is not an fmkit bundle (no {MANIFEST_NAME}); "
            "pass a directory made by `fmkit finetune`, or use it as --model to start from it"
        )
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BadInputError(f"{manifest_path} is not valid JSON ({error}); the bundle is damaged") from None
    return Manifest.model_validate(data)


def update_manifest(path: Path, change: Callable[[Manifest], None]) -> Manifest:
    """Apply ``change`` to the manifest and write it back atomically."""
    manifest = read_manifest(path)
    change(manifest)
    write_json_atomic(Path(path) / MANIFEST_NAME, manifest.model_dump(mode="json"))
    return manifest


def verify_bundle(path: Path) -> list[str]:
    """Files whose digest differs from the manifest (empty when intact)."""
    manifest = read_manifest(path)
    actual = file_digests(path)
    problems = [f"missing {name}" for name in manifest.files if name not in actual]
    problems += [f"changed {name}" for name, digest in manifest.files.items() if actual.get(name, digest) != digest]
    problems += [f"unexpected {name}" for name in actual if name not in manifest.files]
    return problems
