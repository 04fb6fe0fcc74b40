"""The sentence-transformers folder layout of a text-retrieval bundle.

A bundle is the HF encoder (config.json, model.safetensors, tokenizer) at its root plus the
files sentence-transformers reads to rebuild the same pipeline: ``modules.json`` (Transformer ->
Pooling -> Normalize), ``1_Pooling/config.json`` (fmkit/models/pooling.py writes and reads it),
``sentence_bert_config.json`` (the token limit) and ``config_sentence_transformers.json``.
``SentenceTransformer(bundle)`` then returns the embeddings fmkit's runtime returns.
"""

from __future__ import annotations

import json
from pathlib import Path

from fmkit.models.pooling import POOLING_DIR, pooling_config

MODULES_FILE = "modules.json"
SENTENCE_CONFIG_FILE = "sentence_bert_config.json"
ST_CONFIG_FILE = "config_sentence_transformers.json"
SUPPORT_FILES = (MODULES_FILE, SENTENCE_CONFIG_FILE, ST_CONFIG_FILE, f"{POOLING_DIR}/config.json")

MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": POOLING_DIR, "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


def write_sentence_transformers_files(directory: Path, pooling: str, dimension: int, max_length: int) -> None:
    """The modules, pooling and token-limit files beside the saved encoder (Normalize has no files)."""
    directory = Path(directory)
    (directory / POOLING_DIR).mkdir(exist_ok=True)
    files = {
        MODULES_FILE: MODULES,
        f"{POOLING_DIR}/config.json": pooling_config(pooling, dimension),
        SENTENCE_CONFIG_FILE: {"max_seq_length": max_length, "do_lower_case": False},
        ST_CONFIG_FILE: {"similarity_fn_name": "cosine", "prompts": {}, "default_prompt_name": None},
    }
    for name, content in files.items():
        (directory / name).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def copy_sentence_transformers_files(parent: Path, directory: Path) -> None:
    """A variant (ONNX, INT8) keeps its parent's layout files: pooling and token limit are the parent's."""
    import shutil

    for name in SUPPORT_FILES:
        source = Path(parent) / name
        if source.is_file():
            (Path(directory) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, Path(directory) / name)


def declared_max_length(path: Path) -> int | None:
    """The token limit a sentence-transformers folder declares (MiniLM: 256), or None."""
    config = Path(path) / SENTENCE_CONFIG_FILE
    try:
        return int(json.loads(config.read_text(encoding="utf-8"))["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
