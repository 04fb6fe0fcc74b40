"""Image classification: readers and their errors, models, training, bundle, runtime, compression.

Images are made in code (small, learnable: a bright square whose corner is the class); real
Fashion-MNIST and the offline sample photos are used where they say more than synthetic data.
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from fmkit.cli.main import main as cli
from fmkit.data.images import ImageDataConfig, load_image_classification
from fmkit.data.images.builtin import FASHION_MNIST_DIR
from fmkit.data.images.idx import read_idx, write_idx
from fmkit.errors import BadInputError

needs_fashion = pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
                                   reason=f"Fashion-MNIST is not installed at {FASHION_MNIST_DIR} "
                                          "(apt-get install dataset-fashion-mnist; `make test` does)")
CORNERS = ["top-left", "top-right", "bottom-left", "bottom-right"]


def corner_images(count: int, size: int = 16, channels: int = 1, seed: int = 0, classes: int = 4):
    """Noise with a bright 6x6 square in the class's corner: a CNN learns it in a few steps."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (count, channels, size, size), dtype=np.uint8)
    labels = np.arange(count) % classes
    for image, label in zip(images, labels):
        row = 1 if label in (0, 1) else size - 7
        column = 1 if label in (0, 2) else size - 7
        image[:, row:row + 6, column:column + 6] = 230
    return images, labels


def write_folder(root: Path, images, labels, names=CORNERS) -> Path:
    from PIL import Image

    for index, (image, label) in enumerate(zip(images, labels)):
        folder = root / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        picture = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        Image.fromarray(picture).save(folder / f"{index}.png")
    return root


# -- IDX ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    path = write_idx(tmp_path / name, images)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    np.testing.assert_array_equal(read_idx(path), images)
    values = np.array([1.5, -2.0], dtype=np.float32)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "f.idx", values)), values)


def _header(code: int, dims: tuple[int, ...], zero: int = 0) -> bytes:
    return struct.pack(">HBB", zero, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize("payload, message", [
    (_header(0x08, (2, 2, 2), zero=0x0102) + bytes(8), "IDX magic number starts with 0x0102, expected 0x0000"),
    (_header(0x07, (2, 2, 2)) + bytes(8), "unknown IDX dtype code 0x07 (known: 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e)"),
    (_header(0x08, (2, 2, 2)) + bytes(7), "header says shape (2, 2, 2) of uint8 (8 bytes of data), but the file holds "
                                          "7 bytes after the header"),
    (_header(0x08, (2, 2, 2))[:9], "the header needs 16 bytes for 3 dimensions, the file has 9"),
    (b"\x00\x00", "2 bytes is too short for an IDX header"),
    (struct.pack(">HBB", 0, 0x08, 0), "IDX header says 0 dimensions"),
])
def test_idx_corrupt_header_is_named(tmp_path, payload, message):
    path = tmp_path / "bad-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(payload))
    with pytest.raises(BadInputError) as error:
        read_idx(path)
    assert message in str(error.value)
    assert str(path) in str(error.value) and "reinstall" in str(error.value)


def test_idx_folder_keeps_the_official_test_split(tmp_path):
    images, labels = corner_images(60)
    for prefix, rows in (("train", slice(0, 40)), ("t10k", slice(40, 60))):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images[rows, 0])
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels[rows].astype(np.uint8))  # raw beside gz
    data = load_image_classification(ImageDataConfig(source=str(tmp_path), validation_fraction=0.25))
    assert data.images.shape == (60, 1, 16, 16)
    assert data.label_names == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(data.split("test")[0], images[40:60])  # the t10k files, in file order
    assert len(data.splits["validation"]) == 8 and len(data.splits["train"]) == 32


def test_idx_count_mismatch(tmp_path):
    images, labels = corner_images(6)
    write_idx(tmp_path / "train-images-idx3-ubyte", images[:, 0])
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:5].astype(np.uint8))
    with pytest.raises(BadInputError, match="holds 6 images but train-labels-idx1-ubyte 5 labels"):
        load_image_classification(ImageDataConfig(source=str(tmp_path / "train-images-idx3-ubyte")))


# -- folders -----------------------------------------------------------------------------------

def test_folder_reader_reads_classes_from_subfolders(tmp_path):
    images, labels = corner_images(24, channels=3)
    write_folder(tmp_path / "photos", images, labels)
    data = load_image_classification(ImageDataConfig(source=str(tmp_path / "photos")))
    assert data.label_names == sorted(CORNERS)
    assert data.images.shape == (24, 3, 16, 16) and data.images.dtype == np.uint8
    assert sorted(len(v) for v in data.splits.values()) == [4, 4, 16]
    again = load_image_classification(ImageDataConfig(source=str(tmp_path / "photos")))
    assert again.fingerprint == data.fingerprint


def test_mixed_sizes_need_image_size(tmp_path):
    from PIL import Image

    images, labels = corner_images(8)
    root = write_folder(tmp_path / "mixed", images, labels)
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(root / "top-left" / "wide.png")
    with pytest.raises(BadInputError) as error:
        load_image_classification(ImageDataConfig(source=str(root)))
    message = str(error.value)
    assert "images have 2 different sizes (width x height: 16x16: 8 (e.g. " in message
    assert "30x20: 1 (e.g. top-left/wide.png)" in message
    assert message.endswith("pass --image-size N to resize them all to NxN")
    data = load_image_classification(ImageDataConfig(source=str(root), image_size=12))
    assert data.images.shape == (9, 1, 12, 12)


def test_mixed_channels_need_channels(tmp_path):
    from PIL import Image

    images, labels = corner_images(8)
    root = write_folder(tmp_path / "mixed", images, labels)
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(root / "top-right" / "red.png")
    with pytest.raises(BadInputError, match=r"images mix grayscale and RGB \(grayscale: 8 .*RGB: 1 \(e.g. "
                                            r"top-right/red.png\)\); pass --channels 1 or --channels 3"):
        load_image_classification(ImageDataConfig(source=str(root)))
    gray = load_image_classification(ImageDataConfig(source=str(root), channels=1))
    assert gray.images.shape == (9, 1, 16, 16)
    assert {int(v) for v in gray.images[gray.images.max(axis=(1, 2, 3)) == 76].ravel()} == {76}  # red: 0.299 * 255
    color = load_image_classification(ImageDataConfig(source=str(root), channels=3))
    assert color.images.shape == (9, 3, 16, 16)
    assert (color.images[:, 0] == color.images[:, 2]).all(axis=(1, 2)).sum() == 8  # gray ones repeated


def test_folder_with_one_class_or_none(tmp_path):
    images, labels = corner_images(4, classes=1)
    root = write_folder(tmp_path / "one", images, labels)
    (root / "empty-class").mkdir()
    with pytest.raises(BadInputError, match=r"only one class \('top-left'\) has images; classification needs at least "
                                            r"two class subfolders \(empty: empty-class\)"):
        load_image_classification(ImageDataConfig(source=str(root)))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(BadInputError, match="no images in class subfolders; put each class in its own subfolder"):
        load_image_classification(ImageDataConfig(source=str(tmp_path / "nothing")))


def test_unreadable_image_is_named(tmp_path):
    images, labels = corner_images(4, classes=2)
    root = write_folder(tmp_path / "broken", images, labels)
    (root / "top-left" / "junk.png").write_bytes(b"not a png")
    with pytest.raises(BadInputError, match="junk.png: not a readable image"):
        load_image_classification(ImageDataConfig(source=str(root)))


# -- NumPy -------------------------------------------------------------------------------------

def test_npz_reader_accepts_hwc_floats_and_label_names(tmp_path):
    images, labels = corner_images(20, channels=3)
    floats = images.transpose(0, 2, 3, 1).astype(np.float32) / 255  # (N, H, W, C) in [0, 1]
    np.savez(tmp_path / "set.npz", images=floats, labels=labels, label_names=np.array(CORNERS))
    data = load_image_classification(ImageDataConfig(source=str(tmp_path / "set.npz")))
    np.testing.assert_array_equal(data.images, images)
    assert data.label_names == CORNERS and data.labels[:2] == CORNERS[:2]


def test_npz_count_mismatch_and_bad_range(tmp_path):
    images, labels = corner_images(10)
    np.savez(tmp_path / "short.npz", images=images, labels=labels[:9])
    with pytest.raises(BadInputError, match="10 images but 9 labels; each image needs one label"):
        load_image_classification(ImageDataConfig(source=str(tmp_path / "short.npz")))
    np.savez(tmp_path / "range.npz", x=images.astype(np.float32) * 2, y=labels)
    with pytest.raises(BadInputError, match=r"pixel values span \[0, 460\]; use uint8, floats in \[0, 1\] or \[0, 255\]"):
        load_image_classification(ImageDataConfig(source=str(tmp_path / "range.npz")))


def test_config_errors_are_reported_together():
    with pytest.raises(ValueError) as error:
        ImageDataConfig(source="x", image_size=4, validation_fraction=1.5, max_rows=3)
    message = str(error.value)
    for fragment in ("image_size=4: use 8..1024", "validation_fraction=1.5: must be in [0, 1)", "max_rows=3"):
        assert fragment in message


@needs_fashion
def test_fashion_mnist_builtin_uses_the_official_test_split():
    data = load_image_classification(ImageDataConfig(source="fashion-mnist", max_rows=2000))
    assert data.label_names[:2] == ["T-shirt/top", "Trouser"] and len(data.label_names) == 10
    assert data.images.shape[1:] == (1, 28, 28)
    sizes = {name: len(rows) for name, rows in data.splits.items()}
    assert sizes["test"] == pytest.approx(2000 / 7, abs=10)  # 10k of 70k, class-proportional
    assert sizes["validation"] == pytest.approx(0.1 * (2000 - sizes["test"]), abs=10)


# -- task dispatch -----------------------------------------------------------------------------

def test_task_is_inferred_from_model_and_data(tmp_path, reviews_csv):
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.images.config import ImageFinetuneConfig
    from fmkit.tasks import finetune_config, task_of_settings

    np.savez(tmp_path / "set.npz", images=np.zeros((10, 8, 8), np.uint8), labels=np.arange(10) % 2)
    assert task_of_settings({"model": "cnn", "data": {"source": "anything.csv"}}) == "image-classification"
    assert task_of_settings({"data": {"source": "fashion-mnist"}}) == "image-classification"
    assert task_of_settings({"data": {"source": str(tmp_path / "set.npz")}}) == "image-classification"
    assert task_of_settings({"data": {"source": str(tmp_path)}}) == "image-classification"  # a folder of classes
    assert task_of_settings({"model": "minilm", "data": {"source": str(reviews_csv)}}) == "text-classification"
    assert isinstance(finetune_config({"data": {"source": str(reviews_csv)}}), FinetuneConfig)
    image = finetune_config({"data": {"source": "fashion-mnist"}, "input_size": 64})
    assert isinstance(image, ImageFinetuneConfig) and image.model == "auto" and image.augment
    with pytest.raises(BadInputError, match="unknown task 'image-clasification'.*Did you mean 'image-classification'"):
        task_of_settings({"task": "image-clasification", "data": {"source": "x"}})


def test_text_flags_on_image_data_are_rejected(capsys):
    code = cli(["finetune", "--data", "fashion-mnist", "--text-column", "body", "--out", "/tmp/never"])
    assert code == 2
    assert "data.text_column: unknown key" in capsys.readouterr().err


def test_shipped_full_recipe_has_a_valid_image_stage():
    from fmkit.finetune.images.config import ImageFinetuneConfig
    from fmkit.recipe.schema import load_recipe

    stages = {s.name: s for s in load_recipe("recipes/full.yaml").stages}
    image = stages["finetune-fashion-cnn"].config
    assert isinstance(image, ImageFinetuneConfig) and image.data.max_rows and image.train.epochs == 1
    assert stages["fashion-cnn-int8-static"].references == {"bundle": "finetune-fashion-cnn"}


# -- models and training -----------------------------------------------------------------------

def test_augmented_batches_are_deterministic_and_resumable():
    import torch

    from fmkit.finetune.images.batches import ImageBatches

    images, labels = corner_images(50)
    source = ImageBatches(images, labels, batch_size=16, seed=3, augment=True)
    assert len(source) == 4 and source.num_examples == 50
    first = list(source.batches(1))
    resumed = list(source.batches(1, start=2))
    assert torch.equal(first[2]["pixel_values"], resumed[0]["pixel_values"])
    assert not torch.equal(first[0]["labels"], list(source.batches(2))[0]["labels"])  # a new order per epoch
    plain = ImageBatches(images, labels, batch_size=16, seed=3, augment=False)
    batch = next(plain.batches(1))
    rows = [int(np.flatnonzero((images.reshape(50, -1) == p.numpy().reshape(1, -1)).all(1))[0])
            for p in batch["pixel_values"].to(torch.uint8)]
    assert labels[rows].tolist() == batch["labels"].tolist()  # unaugmented pixels are the images themselves
    assert not torch.equal(first[0]["pixel_values"].sort().values, batch["pixel_values"].sort().values)


def test_cnn_training_lowers_the_loss():
    import torch

    from fmkit.finetune.images.batches import ImageBatches, image_loss
    from fmkit.models.images import IMAGE_MODELS
    from fmkit.train import train
    from fmkit.train.config import TrainConfig

    images, labels = corner_images(128)
    torch.manual_seed(0)
    model = IMAGE_MODELS.get("cnn").load().build({"channels": 1, "num_classes": 4, "input_size": 16,
                                                   "normalisation": {"mean": 127.5, "std": 127.5}})
    batch = {"pixel_values": torch.from_numpy(images).float(), "labels": torch.as_tensor(labels)}
    model.eval()
    before = image_loss(model, batch).item()
    result = train(model, ImageBatches(images, labels, 32, seed=0, augment=False),
                   TrainConfig(epochs=3, learning_rate=2e-3, progress=False, precision="fp32"), loss_fn=image_loss)
    model.eval()
    after = image_loss(model, batch).item()
    assert result.steps == 12 and result.samples_per_second > 0
    assert after < 0.5 * before


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path):
    import torch
    from conftest import CrashAfter
    from safetensors.torch import load_file

    from fmkit.finetune.images.config import ImageFinetuneConfig
    from fmkit.finetune.stage import checkpoint_dir_for, run_finetune

    images, labels = corner_images(96, size=16)
    np.savez(tmp_path / "corners.npz", images=images, labels=labels)
    cfg = ImageFinetuneConfig(model="cnn", data={"source": str(tmp_path / "corners.npz")}, augment=True,
                              train={"epochs": 2, "batch_size": 16, "learning_rate": 2e-3, "progress": False,
                                     "precision": "fp32", "checkpoint_every_steps": 3})
    run_finetune(cfg, tmp_path / "clean")
    with pytest.raises(KeyboardInterrupt):  # dies at step 8, mid-epoch 2: resumes from step 6 (augmented batches)
        run_finetune(cfg, tmp_path / "resumed", hooks=CrashAfter(8))
    assert (checkpoint_dir_for(tmp_path / "resumed") / "latest" / "state.json").is_file()
    run_finetune(cfg, tmp_path / "resumed", resume=True)
    clean, resumed = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("clean", "resumed"))
    assert clean.keys() == resumed.keys()
    for name in clean:
        torch.testing.assert_close(resumed[name], clean[name], rtol=0, atol=0)


def test_model_auto_picks_pretrained_below_the_threshold_and_cnn_above(tmp_path):
    from fmkit.finetune.images.config import ImageFinetuneConfig

    images, labels = corner_images(40, size=12)
    np.savez(tmp_path / "set.npz", images=images, labels=labels)
    cfg = ImageFinetuneConfig(data={"source": str(tmp_path / "set.npz")})
    data = load_image_classification(cfg.data)
    train_rows = len(data.splits["train"])
    assert cfg.model == "auto"
    small, why = cfg.resolved_for(data)
    assert (small.model, small.input_size) == ("efficientnet-lite0", 64) and cfg.model == "auto"  # a copy
    assert why["chosen"] == "efficientnet-lite0" and why["train_rows"] == train_rows and why["input_size"] == 64
    assert f"{train_rows} training images < pretrained_below_rows=10000" in why["reason"]
    large, why = cfg.model_copy(update={"pretrained_below_rows": train_rows}).resolved_for(data)  # at the threshold
    assert (large.model, large.input_size, why["chosen"]) == ("cnn", None, "cnn") and ">=" in why["reason"]
    sized, _ = cfg.model_copy(update={"input_size": 96}).resolved_for(data)
    assert (sized.model, sized.input_size) == ("efficientnet-lite0", 96)  # an explicit size is kept
    explicit = ImageFinetuneConfig(model="cnn", data=cfg.data)
    assert explicit.resolved_for(data) == (explicit, {})
    with pytest.raises(ValueError, match="pretrained_below_rows"):
        ImageFinetuneConfig(data=cfg.data, pretrained_below_rows=-1)


@pytest.mark.filterwarnings("ignore:the model does NOT beat the baseline")  # one step: not the point here
def test_model_auto_trains_efficientnet_and_its_baseline_probes_the_same_network(tmp_path):
    from fmkit.finetune.images.config import ImageFinetuneConfig
    from fmkit.finetune.stage import run_finetune

    images, labels = corner_images(40, size=12)
    np.savez(tmp_path / "set.npz", images=images, labels=labels)
    cfg = ImageFinetuneConfig(data={"source": str(tmp_path / "set.npz")}, augment=False,
                              train={"max_steps": 1, "batch_size": 8, "progress": False, "precision": "fp32",
                                     "device": "cpu"})
    lines = []
    manifest = run_finetune(cfg, tmp_path / "auto", echo=lines.append)
    assert any(line.startswith("model auto: efficientnet-lite0 at 64 px") for line in lines)
    assert manifest.training["model_choice"]["chosen"] == "efficientnet-lite0"
    assert manifest.training["architecture"] == "efficientnet-lite0" and manifest.training["input_size"] == 64
    assert manifest.lineage[-1].config["model"] == "efficientnet-lite0"  # what evaluate's baseline refits on
    assert manifest.lineage[-1].config["input_size"] == 64 and manifest.base_model["digest"].startswith("sha256:")
    assert manifest.training["baseline"]["encoder"].startswith("efficientnet-lite0 (ImageNet")
    config = json.loads((tmp_path / "auto" / "image_config.json").read_text())
    assert (config["architecture"], config["input_size"]) == ("efficientnet-lite0", 64)


def test_efficientnet_weights_load_strictly():
    import torch

    from fmkit.models.images import efficientnet_lite

    network, record = efficientnet_lite.imagenet_network()  # load_state_dict(strict=True) inside
    state = torch.load(efficientnet_lite.weights_path(), map_location="cpu", weights_only=True)
    ours = network.state_dict()
    assert len(state) == len(ours) == efficientnet_lite.EXPECTED_KEYS == record["tensors"]
    assert set(state) == set(ours)
    assert all(torch.equal(state[k], ours[k]) for k in state)
    assert record["digest"].startswith("sha256:5793442")


def _imagenet_top5(picture) -> list[int]:
    import torch
    from PIL import Image

    from fmkit.models.images import efficientnet_lite

    model = efficientnet_lite.build({"channels": 3, "num_classes": 1000, "input_size": 224,
                                     "normalisation": {"mean": 127.0, "std": 128.0}})
    efficientnet_lite.load_pretrained(model)
    model.network._fc.load_state_dict(efficientnet_lite.imagenet_network()[0]._fc.state_dict())  # ImageNet head back
    pixels = np.asarray(picture.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR), np.float32)
    with torch.inference_mode():
        logits = model.eval()(torch.from_numpy(pixels.transpose(2, 0, 1)[None].copy()))
    return logits[0].topk(5).indices.tolist()


@pytest.mark.slow
def test_efficientnet_recognises_real_photos():
    from matplotlib.cbook import get_sample_data
    from PIL import Image
    from sklearn.datasets import load_sample_image

    with Image.open(get_sample_data("grace_hopper.jpg")) as hopper:
        assert 652 in _imagenet_top5(hopper)  # military uniform
    palace_like = {442, 483, 497, 663, 668, 698, 832}  # bell cote, castle, church, monastery, mosque, palace, stupa
    assert palace_like & set(_imagenet_top5(Image.fromarray(load_sample_image("china.jpg"))))


def test_grayscale_is_repeated_to_three_channels_inside_efficientnet():
    import torch

    from fmkit.models.images import efficientnet_lite

    model = efficientnet_lite.build({"channels": 1, "num_classes": 3, "input_size": 32,
                                     "normalisation": {"mean": 127.0, "std": 128.0}}).eval()
    gray = torch.rand(2, 1, 28, 28) * 255
    with torch.inference_mode():
        assert model(gray).shape == (2, 3)
        color = efficientnet_lite.build({"channels": 3, "num_classes": 3, "input_size": 32,
                                         "normalisation": {"mean": 127.0, "std": 128.0}})
        assert torch.allclose(model.preprocess(gray), color.preprocess(gray.repeat(1, 3, 1, 1)))


# -- the pipeline: finetune -> bundle -> evaluate -> predict -> quantize -----------------------

@pytest.fixture(scope="module")
def image_bundle(tmp_path_factory) -> Path:
    images, labels = corner_images(240, size=16)
    root = write_folder(tmp_path_factory.mktemp("corners") / "corners", images, labels)
    out = tmp_path_factory.mktemp("bundles") / "corners-cnn"
    code = cli(["finetune", "--model", "cnn", "--data", str(root), "--out", str(out), "--epochs", "4",
                "--batch-size", "32", "--learning-rate", "3e-3", "--no-progress", "--precision", "fp32",
                "--no-augment"])  # a flip would swap left and right corners
    assert code == 0
    return out


def test_bundle_has_weights_config_metrics_and_lineage(image_bundle):
    from fmkit.bundle.store import verify_bundle

    manifest = json.loads((image_bundle / "fmkit.json").read_text())
    assert manifest["task"] == "image-classification" and manifest["labels"] == sorted(CORNERS)
    assert manifest["base_model"]["weights"] == "random init"
    assert manifest["lineage"][0]["config"]["task"] == "image-classification"
    assert manifest["metrics"]["test"]["accuracy"] >= 0.9
    assert set(manifest["metrics"]["test"]) >= {"macro_f1", "expected_calibration_error", "confusion_matrix"}
    assert manifest["data"]["image_size"] == [16, 16] and manifest["data"]["channels"] == 1
    config = json.loads((image_bundle / "image_config.json").read_text())
    assert config["architecture"] == "cnn" and config["num_classes"] == 4 and config["input_size"] == 16
    assert (image_bundle / "reports" / "confusion_test.png").stat().st_size > 1000
    assert not list(image_bundle.glob("*.pt*")) and verify_bundle(image_bundle) == []


def test_evaluate_and_predict_through_the_cli(image_bundle, tmp_path, capsys):
    from PIL import Image

    assert cli(["evaluate", str(image_bundle), "--json", "--no-record"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    recorded = json.loads((image_bundle / "fmkit.json").read_text())["metrics"]["test"]
    assert metrics["accuracy"] == recorded["accuracy"] and metrics["count"] == recorded["count"] == 24
    images, labels = corner_images(4, size=16, channels=3, seed=9)
    paths = []
    for index, image in enumerate(images):  # 32x32 RGB files: brought to 16x16 gray as in training
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(image.transpose(1, 2, 0).repeat(2, axis=0).repeat(2, axis=1)).save(paths[-1])
    assert cli(["predict", str(image_bundle), *map(str, paths), "--json"]) == 0
    predicted = [row["label"] for row in json.loads(capsys.readouterr().out)]
    assert predicted == [CORNERS[i] for i in labels]


def test_runtime_takes_arrays_on_the_shared_backends(image_bundle):
    import fmkit

    model = fmkit.load(image_bundle)
    images, labels = corner_images(8, size=16)
    from_batch = [p.label for p in model.predict(images)]
    assert from_batch == [CORNERS[i] for i in labels]
    assert [p.label for p in model.predict(list(images[:, 0]))] == from_batch[:8]  # single (H, W) images
    named = fmkit.load(image_bundle, backend="torch")  # one torch backend: the task comes from the manifest
    assert named.backend == "torch" and named.adapter.capabilities.serves == "images"
    assert [p.label for p in named.predict(images)] == from_batch
    with pytest.raises(BadInputError, match="unknown runtime backend 'torch-image'; use one of torch, onnx"):
        fmkit.load(image_bundle, backend="torch-image")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["quantize-dynamic", "quantize-static", "export-onnx"])
def test_quantized_variants_are_evaluated_and_predict(image_bundle, tmp_path, method, capsys):
    import fmkit

    out = tmp_path / method
    assert cli(["compress", str(image_bundle), "--method", method, "--out", str(out), "--no-measure",
                "--max-accuracy-drop", "2"]) == 0
    manifest = json.loads((out / "fmkit.json").read_text())
    assert manifest["runtime"] == "onnx" and manifest["task"] == "image-classification"
    assert manifest["compression"]["status"] == "ok"
    assert manifest["compression"]["accuracy_drop_points"] <= 2
    assert (out / "model.onnx").is_file() and (out / "image_config.json").is_file()
    model = fmkit.load(out)
    assert model.backend == "onnx" and model.adapter.capabilities.serves == "images"
    images, labels = corner_images(8, size=16, seed=5)
    assert [p.label for p in model.predict(images)] == [CORNERS[i] for i in labels]


def test_explaining_or_auditing_an_image_bundle_is_refused_by_its_task(image_bundle, capsys):
    """The image adapter has no explanations and no text audits: `fmkit explain` and `fmkit audit` say so."""
    assert cli(["explain", str(image_bundle), "a picture"]) == 2
    assert ("is a image-classification bundle: its task has no explanations (integrated gradients attribute the "
            "words of a text)") in capsys.readouterr().err
    assert cli(["audit", "explanations", str(image_bundle)]) == 2
    assert "the explanations check needs text-input" in capsys.readouterr().err


def test_text_only_compression_refuses_image_bundles(image_bundle, tmp_path, capsys):
    assert cli(["compress", str(image_bundle), "--method", "distill", "--out", str(tmp_path / "d")]) == 2
    assert ("is an image-classification bundle; distill compresses text-classification bundles. For "
            "image-classification: export-onnx, quantize-dynamic, quantize-static") in capsys.readouterr().err
