"""Run a recipe: one directory per run, stages in order, unchanged stages reused by content hash."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import time
from pathlib import Path

from fmkit._version import __version__
from fmkit.bundle.manifest import utc_now
from fmkit.errors import BadInputError
from fmkit.fileio import write_json_atomic, write_text_atomic
from fmkit.recipe.registry_db import RunRegistry
from fmkit.recipe.schema import Recipe, StageEntry
from fmkit.recipe.stages import StageContext, set_path


def new_run_dir(workspace: Path, name: str) -> Path:
    stem = f"{_dt.date.today().isoformat()}-{name}"
    runs = Path(workspace) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 10_000):
        candidate = runs / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"too many runs named {stem} in {runs}")


def input_digest(value: str) -> str:
    """Identity of an input named in a config: a bundle's digest, a file's hash, or the name itself."""
    from fmkit.bundle import is_bundle, read_manifest
    from fmkit.data.builtin import BUILTIN_DATASETS
    from fmkit.fileio import sha256_file

    path = Path(value)
    if path.is_dir() and is_bundle(path):
        return read_manifest(path).content_digest
    if path.is_file():
        return "sha256:" + sha256_file(path)
    if path.is_dir():  # e.g. a folder of corpus files or images: every file by content
        from fmkit.bundle.store import content_digest, file_digests

        return content_digest(file_digests(path))
    if value in BUILTIN_DATASETS:
        return f"builtin:{value}"
    return f"name:{value}"


def stage_cache_key(entry: StageEntry, config: dict) -> str:
    """Hash of the stage type, its resolved config and the identity of every input it reads.

    Inputs count by content, not by path: a bundle reused from an earlier run (at another path)
    or a data file that was moved still hits the cache.
    """
    identity = json.loads(json.dumps(config))
    for key in ("model", "bundle", "source", "from_model"):
        if isinstance(identity.get(key), str):
            identity[key] = input_digest(identity[key])
    if isinstance(identity.get("corpus"), list):  # pretraining text: each file by content
        identity["corpus"] = [input_digest(v) if isinstance(v, str) else v for v in identity["corpus"]]
    data = identity.get("data")
    if isinstance(data, dict) and isinstance(data.get("source"), str):
        data["source"] = input_digest(data["source"])
    elif isinstance(data, str):
        identity["data"] = input_digest(data)
    payload = json.dumps({"stage": entry.stage, "config": identity, "fmkit": __version__}, sort_keys=True)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def _logger(run_dir: Path) -> logging.Logger:
    logger = logging.getLogger(f"fmkit.run.{run_dir.name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger


def run_recipe(recipe: Recipe, *, workspace: Path | None = None, use_cache: bool = True, echo=print) -> dict:
    import warnings

    workspace = Path(workspace or recipe.workspace)
    registry = RunRegistry(workspace)
    run_dir = new_run_dir(workspace, recipe.name)
    write_text_atomic(run_dir / "recipe.yaml", recipe.text)
    write_json_atomic(run_dir / "resolved.json", recipe.resolved())
    logger = _logger(run_dir)

    def log(message: str) -> None:
        logger.info(message)
        echo(message)

    run_id = registry.start_run(recipe.name, str(recipe.path), run_dir, utc_now())
    outputs: dict[str, Path] = {}
    report: dict = {"run": run_dir.name, "run_dir": str(run_dir), "stages": []}
    log(f"run {run_dir} ({len(recipe.stages)} stages)")
    try:
        for index, entry in enumerate(recipe.stages, start=1):
            config = entry.config.model_dump(mode="json")
            for field_name, stage_name in entry.references.items():
                set_path(config, field_name, str(outputs[stage_name]))
            for field_name in entry.spec.references:
                value = config.get(field_name)
                if field_name not in entry.references and field_name == "bundle" and not Path(str(value)).is_dir():
                    raise BadInputError(f"stage {entry.name!r}: {field_name}={value!r} is neither an earlier "
                                        "stage nor a bundle directory")
            key = stage_cache_key(entry, config)
            out = run_dir / entry.name
            started = time.perf_counter()
            cached = registry.cached_stage(key) if use_cache and entry.spec.cacheable else None
            if cached is not None and (cached["output"] is None or Path(cached["output"]).exists()):
                result_path = Path(cached["output"]) if cached["output"] else None
                summary = json.loads(cached["summary"] or "{}")
                if entry.spec.produces_bundle and result_path is not None:
                    out.symlink_to(result_path.resolve(), target_is_directory=True)
                    result_path = out
                log(f"[{index}/{len(recipe.stages)}] {entry.name} ({entry.stage}): unchanged, reusing {cached['output']}")
                is_cached = True
            else:
                log(f"[{index}/{len(recipe.stages)}] {entry.name} ({entry.stage}): running")
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("default")
                    result = entry.spec.run(type(entry.config).model_validate(config), out,  # the model it validated with
                                            StageContext(run_dir, outputs, log))
                for warning in caught:
                    log(f"  warning: {warning.message}")
                result_path, summary, is_cached = result.bundle, result.summary, False
            seconds = round(time.perf_counter() - started, 2)
            if result_path is not None:
                outputs[entry.name] = result_path
                from fmkit.bundle import is_bundle, read_manifest

                if is_bundle(result_path):
                    registry.record_bundle(read_manifest(result_path), result_path.resolve(), utc_now())
            registry.record_stage(run_id, entry.name, entry.stage, key, "done",
                                  str(result_path.resolve()) if result_path else None, is_cached, seconds, summary,
                                  utc_now())
            report["stages"].append({"name": entry.name, "stage": entry.stage, "cached": is_cached,
                                     "seconds": seconds, "output": str(result_path) if result_path else None,
                                     **summary})
            log(f"  done in {seconds} s: {json.dumps(summary.get('metrics', {}))}")
            write_json_atomic(run_dir / "outputs.json", report)
    except BaseException as error:
        registry.finish_run(run_id, "failed", utc_now(), f"{type(error).__name__}: {error}")
        report["status"] = "failed"
        write_json_atomic(run_dir / "outputs.json", report)
        logger.error(f"failed: {type(error).__name__}: {error}")
        raise
    registry.finish_run(run_id, "done", utc_now())
    report["status"] = "done"
    write_json_atomic(run_dir / "outputs.json", report)
    log(f"run finished: {run_dir}")
    return report
