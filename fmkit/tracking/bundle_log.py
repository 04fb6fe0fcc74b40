"""What one bundle contributes to an MLflow run: tags (digest, lineage), metrics (per split, training,
evaluation curve, privacy/compression/benchmark figures) and artifacts (manifest, reports with the model
card; the weights only when asked: they are the bulk of a bundle and already live in the bundle directory).

The manifest is read as plain JSON: exporting reports what a bundle says about itself and must work on
bundles sealed with another workspace's key, so it neither verifies nor re-validates them.
"""

from __future__ import annotations

import json
from pathlib import Path

from fmkit.tracking.flatten import clean_key, flatten_metrics

MANIFEST = "fmkit.json"
REPORTS = "reports"
ARTIFACT_DIR = "bundle"
# manifest sections whose numbers are measurements: epsilon, sizes, latencies, audit rates
MEASURED_SECTIONS = ("privacy", "compression", "benchmarks", "audits")


def read_bundle_manifest(directory: Path) -> dict | None:
    """The bundle's manifest as JSON data, or None when ``directory`` is not a readable bundle."""
    try:
        data = json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def bundle_tags(manifest: dict, directory: Path) -> dict[str, str]:
    lineage = [entry for entry in manifest.get("lineage") or [] if isinstance(entry, dict)]
    tags = {"fmkit.bundle_digest": manifest.get("content_digest") or "", "fmkit.bundle_path": str(Path(directory).resolve()),
            "fmkit.task": manifest.get("task") or "", "fmkit.runtime": manifest.get("runtime") or "",
            "fmkit.base_model": str((manifest.get("base_model") or {}).get("name") or ""),
            "fmkit.version": manifest.get("fmkit_version") or "",
            "fmkit.labels": ", ".join(map(str, manifest.get("labels") or []))[:5000],
            "fmkit.lineage": " > ".join(str(entry.get("stage")) for entry in lineage)}
    if lineage:
        tags["fmkit.parent_digest"] = str(lineage[-1].get("parent_digest") or "")
        tags["fmkit.data_fingerprint"] = str(lineage[-1].get("data_fingerprint") or "")
    return {key: value for key, value in tags.items() if value}


def bundle_metrics(manifest: dict, timestamp: int) -> list[tuple[str, float, int, int]]:
    """(key, value, step, timestamp) for every measurement in the manifest; the validation curve by step."""
    flat: dict[str, float] = {}
    for split, values in (manifest.get("metrics") or {}).items():
        if isinstance(values, dict):
            flat.update(flatten_metrics(values, f"{split}."))
    training = manifest.get("training") or {}
    flat.update(flatten_metrics({key: value for key, value in training.items() if not isinstance(value, dict)},
                                "training.", depth=1))
    for section in MEASURED_SECTIONS:
        flat.update(flatten_metrics(manifest.get(section) or {}, f"{section}.", depth=3))
    rows = [(key, value, 0, timestamp) for key, value in flat.items()]
    for entry in training.get("history") or []:  # one row per evaluation: the curve MLflow plots
        if isinstance(entry, dict) and isinstance(entry.get("step"), int):
            rows += [(clean_key(f"eval.{key}"), value, entry["step"], timestamp)
                     for key, value in flatten_metrics(entry, depth=1).items() if key not in ("step", "epoch")]
    return rows


def log_bundle_artifacts(client, run_id: str, directory: Path, *, weights: bool) -> list[str]:
    """Copy the manifest and reports/ (model card, plots) into the run's artifacts under bundle/; every other
    file too when ``weights``. Returns the artifact paths written."""
    directory = Path(directory)
    written = []
    client.log_artifact(run_id, str(directory / MANIFEST), ARTIFACT_DIR)
    written.append(f"{ARTIFACT_DIR}/{MANIFEST}")
    if (directory / REPORTS).is_dir():
        client.log_artifacts(run_id, str(directory / REPORTS), f"{ARTIFACT_DIR}/{REPORTS}")
        written.append(f"{ARTIFACT_DIR}/{REPORTS}/")
    if weights:
        for path in sorted(directory.iterdir()):
            if path.name in (MANIFEST, REPORTS):
                continue
            if path.is_dir():
                client.log_artifacts(run_id, str(path), f"{ARTIFACT_DIR}/{path.name}")
            else:
                client.log_artifact(run_id, str(path), ARTIFACT_DIR)
            written.append(f"{ARTIFACT_DIR}/{path.name}")
    return written
