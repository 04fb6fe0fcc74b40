"""Model resolution: built-in names, local directories, bundles, and no hub downloads."""

import pytest

from fmkit.errors import BadInputError
from fmkit.models import resolve_model


def test_minilm_resolves_to_packaged_weights():
    resolved = resolve_model("minilm")
    assert (resolved.path / "model.safetensors").is_file() and not resolved.is_bundle


def test_hub_id_says_to_pass_a_local_directory():
    with pytest.raises(BadInputError, match="never downloads.*--model DIR"):
        resolve_model("sentence-transformers/all-MiniLM-L6-v2")


def test_typo_suggests_builtin():
    with pytest.raises(BadInputError, match="Did you mean 'minilm'"):
        resolve_model("minilmm")


def test_pickle_only_directory_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(BadInputError, match="never loads pickled"):
        resolve_model(str(tmp_path))


def test_local_directory(tiny_bert_dir):
    assert resolve_model(str(tiny_bert_dir)).path == tiny_bert_dir.resolve()
