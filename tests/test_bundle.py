"""Bundle files: atomic writes, digests, pickle refusal, manifest forward compatibility."""

import json

import pytest

from fmkit.bundle import Manifest, read_manifest, update_manifest, write_bundle
from fmkit.bundle.store import verify_bundle
from fmkit.errors import BadInputError


def manifest():
    return Manifest(task="text-classification", labels=["neg", "pos"], base_model={"name": "tiny"})


def test_crash_while_writing_leaves_nothing(tmp_path):
    def explode(directory):
        (directory / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_bundle(tmp_path / "b", manifest(), explode)
    assert list(tmp_path.iterdir()) == []


def test_digest_covers_files_but_not_manifest_or_reports(tmp_path):
    def files(directory):
        (directory / "config.json").write_text("{}")

    written = write_bundle(tmp_path / "b", manifest(), files)
    assert written.files == {"config.json": written.files["config.json"]}
    update_manifest(tmp_path / "b", lambda m: m.metrics.__setitem__("test", {"accuracy": 1.0}))
    (tmp_path / "b" / "reports").mkdir()
    (tmp_path / "b" / "reports" / "plot.png").write_bytes(b"png")
    assert read_manifest(tmp_path / "b").content_digest == written.content_digest
    assert verify_bundle(tmp_path / "b") == []
    (tmp_path / "b" / "config.json").write_text('{"changed": 1}')
    assert verify_bundle(tmp_path / "b") == ["changed config.json"]


def test_pickles_are_refused(tmp_path):
    def files(directory):
        (directory / "pytorch_model.bin").write_bytes(b"pickle")

    with pytest.raises(BadInputError, match="never loads pickles"):
        write_bundle(tmp_path / "b", manifest(), files)
    assert not (tmp_path / "b").exists()


def test_existing_output_is_not_overwritten_silently(tmp_path):
    write_bundle(tmp_path / "b", manifest(), lambda d: None)
    with pytest.raises(BadInputError, match="already exists"):
        write_bundle(tmp_path / "b", manifest(), lambda d: None)


def test_unknown_manifest_fields_warn_and_are_kept(tmp_path):
    write_bundle(tmp_path / "b", manifest(), lambda d: None)
    path = tmp_path / "b" / "fmkit.json"
    data = json.loads(path.read_text())
    data["from_the_future"] = {"x": 1}
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="from_the_future"):
        loaded = read_manifest(tmp_path / "b")
    assert loaded.model_dump()["from_the_future"] == {"x": 1}


def test_not_a_bundle(tmp_path):
    with pytest.raises(BadInputError, match="not an fmkit bundle"):
        read_manifest(tmp_path)
