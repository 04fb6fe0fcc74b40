"""The few-shot topics' own encoder on ONNX Runtime INT8: the zero-shot base (MiniLM) exported once with
fmkit's encoder export (parity-checked against PyTorch to 1e-4), INT8-quantized as the compress stage
quantizes (ONNX Runtime dynamic quantization, per-channel int8 weights), cached in the workspace under
the base's digest and sealed like an application's directory (every file's sha256 and the record's seal,
checked before every use; the log says when it is built).

    encoder = int8_topic_encoder("minilm", Path("workspace"), threads=2)
    encoder.encode(["Oil prices crash"])     # (1, 384) unit vectors, runtime "onnx-int8"

Used when the topics do not share the sentiment bundle's encoder (``topic_encoder: minilm`` in the
monitor config); its topic quality against the fp32 PyTorch encoder is measured by
bench/monitor_models.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CACHE_FOLDER = "monitor-topic-encoder"
DONE_FILE = "source.json"  # written last (sealed, with every file's digest): marks a finished build
PARITY_TEXTS = ("Bank of England cuts interest rates to a record low", "Oil prices slump as demand collapses",
                "High street retailer falls into administration", "FTSE 100 rallies as vaccine hopes grow")


def build_int8_encoder(base_path: Path, directory: Path, *, max_length: int, log=print) -> None:
    """``directory``/model.onnx (INT8) and the base's tokenizer and pooling files."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoTokenizer

    from fmkit.models.pooling import POOLING_DIR
    from fmkit.export.onnx import ONNX_FILE
    from fmkit.retrieval.encoder_model import load_bi_encoder
    from fmkit.retrieval.export import check_encoder_parity, export_encoder_onnx

    directory.mkdir(parents=True, exist_ok=True)
    model = load_bi_encoder(base_path)
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    with tempfile.TemporaryDirectory() as work:
        fp32 = export_encoder_onnx(model, Path(work) / "fp32.onnx")
        difference = check_encoder_parity(model, fp32, list(PARITY_TEXTS), tokenizer, max_length)
        quantize_dynamic(str(fp32), str(directory / ONNX_FILE), weight_type=QuantType.QInt8, per_channel=True)
    tokenizer.save_pretrained(str(directory))
    for name in ("config.json", "sentence_bert_config.json"):
        if (base_path / name).is_file():
            shutil.copy2(base_path / name, directory / name)
    if (base_path / POOLING_DIR).is_dir():
        shutil.copytree(base_path / POOLING_DIR, directory / POOLING_DIR, dirs_exist_ok=True)
    log(f"topic encoder: {base_path.name} exported to ONNX (parity {difference:.1e}) and INT8-quantized")


def verified_record(directory: Path) -> tuple[dict | None, str | None]:
    """(the build's record, None) once its seal and every file digest verify (fmkit/bundle/sealed_directory.py,
    as for an assistant or a recommender), else (None, why the cached encoder cannot be used)."""
    from fmkit.bundle.sealed_directory import read_sealed_manifest
    from fmkit.errors import BundleIntegrityError

    if not (directory / DONE_FILE).is_file():
        return None, "not in the workspace yet"
    try:
        return read_sealed_manifest(directory, DONE_FILE, remake="it is rebuilt"), None
    except BundleIntegrityError as error:
        return None, (f"the cached files in {directory} differ from their recorded digests or their record is "
                      f"damaged ({error})")


def int8_topic_encoder(base: str, workspace: Path, *, threads: int | None = None, batch_size: int = 64, log=print):
    """An OnnxEncoder (fmkit/runtime/embeddings.py) on the INT8 export of the base ``base``, built on first use."""
    import fcntl

    from fmkit.bundle.sealed_directory import write_sealed_manifest
    from fmkit.finetune.text_model import base_model_record
    from fmkit.models import resolve_model
    from fmkit.retrieval.layout import declared_max_length
    from fmkit.runtime.embeddings import FALLBACK_MAX_LENGTH, OnnxEncoder

    resolved = resolve_model(str(base))
    digest = base_model_record(resolved)["digest"]
    max_length = declared_max_length(resolved.path) or FALLBACK_MAX_LENGTH
    root = Path(workspace).expanduser() / CACHE_FOLDER
    directory = root / digest.split(":")[-1][:16]
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:  # two processes on one workspace: the second waits, then reuses
        fcntl.flock(lock, fcntl.LOCK_EX)
        record, problem = verified_record(directory)
        if problem is not None:
            log(f"topic encoder: {problem}: building it once into {directory} (the INT8 ONNX variant of {base}, "
                "seconds)")
            shutil.rmtree(directory, ignore_errors=True)  # what a killed build or a damaged file left
            build_int8_encoder(Path(resolved.path), directory, max_length=max_length, log=log)
            record = write_sealed_manifest(directory, DONE_FILE, {"base": str(base), "digest": digest,
                                                                  "max_length": max_length})
        else:
            log(f"topic encoder: INT8 ONNX variant of {base} cached in {directory} (verified)")
    return OnnxEncoder(directory, name=f"{base} (INT8 ONNX)", digest=record["digest"],
                       max_length=record["max_length"], batch_size=batch_size, threads=threads)
