"""Reading and writing bundles on disk.

A bundle is built in a temporary sibling directory and renamed into place, so a crash
never leaves a half bundle. Its content digest covers every file but the manifest, so
recording metrics later does not change the model's identity; the manifest is covered by its
seal (fmkit/bundle/seal.py), which every write here recomputes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from fmkit.bundle.manifest import MANIFEST_NAME, SCHEMA_VERSION, Manifest
from fmkit.errors import BadInputError, BundleIntegrityError
from fmkit.fileio import atomic_directory, write_json_atomic

# Derived reports (plots, evaluation outputs) live here and are not part of the model's identity.
REPORTS_DIR = "reports"
# Files that would be unpickled by a loader: fmkit never loads them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def is_bundle(path: Path) -> bool:
    return (Path(path) / MANIFEST_NAME).is_file()


def bundle_files(directory: Path) -> dict[str, Path]:
    """relative path -> file, for every file the content digest covers (all but the manifest and reports/)."""
    directory = Path(directory)
    files = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and relative.as_posix() != MANIFEST_NAME and relative.parts[0] != REPORTS_DIR:
            files[relative.as_posix()] = path
    return files


def file_digests(directory: Path) -> dict[str, str]:
    from fmkit.bundle.verify import cached_sha256

    return {name: cached_sha256(path) for name, path in bundle_files(directory).items()}


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
    from fmkit.train.distributed import alone, from_environment

    ranks = from_environment()
    if ranks.active and not alone():  # every rank of a torchrun job got here (compress: distill trains in write_files)
        return _write_on_rank_zero(ranks, out, manifest, write_files, overwrite, before_publish)
    return _publish(out, manifest, write_files, overwrite, before_publish)


def _write_on_rank_zero(ranks, out: Path, manifest: Manifest, write_files, overwrite: bool, before_publish) -> Manifest:
    """Only rank 0 publishes ``out``; the other ranks run ``write_files`` in a private directory they discard (it may
    hold collectives, e.g. distillation's training) and wait for rank 0's result. ``before_publish`` (measuring the
    written bundle) runs on rank 0 only: what a rank > 0 writes is not a bundle (transformers saves on rank 0 only)."""
    import tempfile

    from fmkit.train.distributed import on_main

    if not ranks.is_main:
        with tempfile.TemporaryDirectory(prefix=f"fmkit-rank{ranks.rank}-") as private:
            write_files(Path(private))
    return on_main(ranks, lambda: _publish(out, manifest, write_files, overwrite, before_publish))


def _publish(out: Path, manifest: Manifest, write_files, overwrite: bool, before_publish) -> Manifest:
    with atomic_directory(out, overwrite=overwrite) as tmp:
        write_files(tmp)
        refuse_pickles(tmp)
        manifest.files = file_digests(tmp)
        manifest.content_digest = content_digest(manifest.files)
        write_manifest(tmp, manifest)
        if before_publish is not None:
            before_publish(tmp, manifest)
    return manifest


def write_manifest(directory: Path, manifest: Manifest) -> Manifest:
    """Seal ``manifest`` and write it as ``directory/fmkit.json`` (atomically): the one way fmkit writes it."""
    from fmkit.bundle.seal import make_seal

    manifest.schema_version = max(manifest.schema_version, SCHEMA_VERSION)
    data = manifest.model_dump(mode="json")
    manifest.seal = data["seal"] = make_seal(data)
    write_json_atomic(Path(directory) / MANIFEST_NAME, data)
    return manifest


def read_manifest(path: Path) -> Manifest:
    """The manifest as written, unverified: use fmkit.bundle.verify.open_bundle before trusting it."""
    return read_manifest_data(path)[0]


def read_manifest_data(path: Path) -> tuple[Manifest, dict]:
    """(the manifest, the raw JSON it was read from: what the seal covers)."""
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
    if not isinstance(data, dict):
        raise BadInputError(f"{manifest_path} is not a JSON object; the bundle is damaged")
    from pydantic import ValidationError

    try:
        return Manifest.model_validate(data), data
    except ValidationError as error:
        raise BadInputError(f"{manifest_path} is not a valid fmkit manifest ({error.error_count()} problem(s): "
                            f"{error.errors()[0]['loc']} {error.errors()[0]['msg']}); the bundle is damaged") from None


def update_manifest(path: Path, change: Callable[[Manifest], None]) -> Manifest:
    """Apply ``change`` to the manifest, re-seal it and write it back atomically.

    A manifest edited outside fmkit is refused: re-sealing it would vouch for the edit.
    """
    from fmkit.bundle.seal import check_seal

    manifest, data = read_manifest_data(path)
    seal = check_seal(data)
    if seal.edited:
        raise BundleIntegrityError(f"{path}: {seal.message}; fmkit will not re-seal it with new results. Re-create the "
                                   "bundle with fmkit (or restore it from where it was made)")
    change(manifest)
    return write_manifest(path, manifest)


def verify_bundle(path: Path) -> list[str]:
    """Files whose digest differs from the manifest (empty when intact)."""
    from fmkit.bundle.verify import content_problems

    return content_problems(path, read_manifest(path))
