"""Compression hooks for image bundles: ONNX export of the network (preprocessing included),
calibration images from the training split, the parent's own test images.

The exported graph takes ``pixel_values`` float32 (N, C, H, W) in 0..255 at the bundle's image
size and returns ``logits``; resizing, channel repeat and normalisation are inside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmkit.compress.tasks import CompressHooks, check_fingerprint
from fmkit.runtime.images import INPUT_NAME  # the graph input the image runtimes feed


def _data(context):
    from fmkit.data.images import load_image_classification
    from fmkit.tasks.image_classification import image_data_config

    config = image_data_config(context.manifest.data, context.data_source)
    data = load_image_classification(config)
    check_fingerprint(context, data, config.source)
    return data


def _split_rows(context, name: str) -> list[int]:
    """The parent's saved split (same fingerprint), else the recomputed one."""
    from fmkit.bundle.split import split_rows

    return split_rows(context.parent, context.data, name)


def _test_inputs(context):
    rows = _split_rows(context, "test")
    return context.data.images[rows], [context.data.labels[i] for i in rows]


def _measure(path, images, measure):
    """The text measurement, in a fresh process, fed image files: single-image latency includes decoding."""
    import tempfile

    from PIL import Image

    from fmkit.runtime.measure import measure_bundle

    count = min(len(images), max(measure.latency_samples, 1000))
    with tempfile.TemporaryDirectory(prefix="fmkit-measure-") as folder:
        paths = []
        for index, image in enumerate(images[:count]):
            file = Path(folder) / f"{index}.png"
            Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(file)
            paths.append(str(file))
        return measure_bundle(path, paths, threads=measure.threads, latency_samples=measure.latency_samples,
                              throughput_batch=measure.throughput_batch)


def export_image_onnx(model, path: Path, channels: int, image_size, *, opset: int = 17) -> Path:
    import warnings

    import torch

    model = model.float().eval().cpu()
    example = torch.zeros(2, channels, *image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: the padding arithmetic is constant for a fixed size
        torch.onnx.export(model, (example,), str(path), input_names=[INPUT_NAME], output_names=["logits"],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                          dynamo=False, do_constant_folding=True)
    return Path(path)


def _export(context, directory: Path, opset: int) -> Path:
    """The parent as fp32 ONNX, refused if ONNX Runtime's logits differ from PyTorch's on real images."""
    import onnxruntime as ort
    import torch

    from fmkit.errors import CheckFailedError
    from fmkit.runtime.images import load_image_model

    model = load_image_model(context.parent)
    images = _samples(context, "train", 32)
    path = export_image_onnx(model, Path(directory) / "fp32.onnx", images.shape[1], images.shape[2:], opset=opset)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pixels = images.astype(np.float32)
    with torch.inference_mode():
        reference = model(torch.from_numpy(pixels)).numpy()
    (ours,) = session.run(None, {INPUT_NAME: pixels})
    difference = float(np.abs(ours - reference).max())
    if difference > 1e-4:
        raise CheckFailedError(f"ONNX Runtime and PyTorch logits differ by {difference:.2e} on training images; the "
                               "export is not trustworthy. Report it with the architecture and opset.")
    return path


def _samples(context, split: str, count: int) -> np.ndarray:
    from fmkit.errors import BadInputError

    rows = _split_rows(context, split)
    if split == "train" and count > len(rows):
        raise BadInputError(f"calibration needs {count} images but the training split has only {len(rows)}; lower "
                            "calibration_samples or use more data")
    chosen = sorted(np.random.default_rng(context.seed).permutation(len(rows))[:count])
    return context.data.images[[rows[i] for i in chosen]]


def _calibration(context, samples: int, batch_size: int = 32):
    images = _samples(context, "train", samples).astype(np.float32)
    return [{INPUT_NAME: images[s:s + batch_size]} for s in range(0, len(images), batch_size)]


def _validation(context, samples: int, batch_size: int = 64):
    rows = _split_rows(context, "validation")
    chosen = [rows[i] for i in sorted(np.random.default_rng(context.seed).permutation(len(rows))[:samples])]
    images = context.data.images[chosen].astype(np.float32)
    labels = np.array([context.manifest.labels.index(context.data.labels[i]) for i in chosen])
    return [{INPUT_NAME: images[s:s + batch_size]} for s in range(0, len(images), batch_size)], labels


def _group(node_name: str) -> str:
    """``/network/_blocks.3/_expand_conv/Conv`` -> ``_blocks.3``; ``/network/features/features.0/...`` -> ``features.0``."""
    parts = [p for p in node_name.split("/") if p and p != "network"]
    if len(parts) > 1 and parts[0] in ("_blocks", "features", "classifier"):
        return parts[1]
    return parts[0] if parts else "head"


IMAGE_HOOKS = CompressHooks(
    load_data=_data, test_inputs=_test_inputs, measure=_measure, export_fp32=_export,
    calibration_feeds=_calibration, validation_feeds=_validation, static_op_types=("Conv", "MatMul", "Gemm"),
    group_of=_group)
