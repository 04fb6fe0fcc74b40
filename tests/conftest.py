"""Shared fixtures: a tiny BERT built in code (2 layers, hidden 32) and small labelled tables."""

from __future__ import annotations

import os
import contextlib
import random
import socket
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmkit.train.hooks import TrainHooks  # no torch: the protocol alone

os.environ.setdefault("HF_HUB_OFFLINE", "1")

POSITIVE = ["great", "wonderful", "funny", "warm", "superb", "brilliant", "moving", "delightful"]
NEGATIVE = ["boring", "dull", "awful", "tedious", "clumsy", "bland", "messy", "lifeless"]
FILLER = ["the", "film", "movie", "plot", "acting", "was", "is", "a", "and", "story", "cast", "very", "quite"]


def synthetic_reviews(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Short reviews whose label is decided by one sentiment word: learnable by a tiny model."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        label = "pos" if index % 2 == 0 else "neg"
        words = rng.sample(FILLER, 5) + [rng.choice(POSITIVE if label == "pos" else NEGATIVE)]
        rng.shuffle(words)
        rows.append((" ".join(words) + f" {index}", label))
    return rows


def write_csv(path: Path, rows, header=("text", "label")) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def sentence_encoder(tiny_bert_dir: Path, directory: Path, mode: str = "mean") -> Path:
    """The tiny BERT as a sentence-transformers folder that declares ``mode`` pooling (like all-MiniLM-L6-v2)."""
    import json
    import shutil

    from fmkit.models.pooling import pooling_config

    shutil.copytree(tiny_bert_dir, directory)
    (directory / "1_Pooling").mkdir()
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config(mode, 32)), encoding="utf-8")
    (directory / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]),
        encoding="utf-8")
    return directory


@pytest.fixture(scope="session")
def tiny_sentence_encoder(tiny_bert_dir, tmp_path_factory) -> Path:
    """The tiny BERT declaring mean pooling: fmkit fine-tunes a mean-pooled head on it, as on MiniLM."""
    return sentence_encoder(tiny_bert_dir, tmp_path_factory.mktemp("encoder") / "tiny-st")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece vocab covering the synthetic data."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + FILLER
    vocab += list(string.ascii_lowercase + string.digits) + [f"##{c}" for c in string.ascii_lowercase + string.digits]
    tokenizer = BertTokenizerFast(vocab={token: index for index, token in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(str(directory))
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(directory), safe_serialization=True)
    return directory


@pytest.fixture(scope="session")
def reviews_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "reviews.csv", synthetic_reviews(400))


@pytest.fixture(scope="session")
def tiny_bundle(tiny_bert_dir, reviews_csv, tmp_path_factory) -> Path:
    """The tiny BERT fully fine-tuned on the synthetic reviews (test accuracy ~1.0)."""
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    out = tmp_path_factory.mktemp("tiny-bundle") / "reviews"
    run_finetune(FinetuneConfig(model=str(tiny_bert_dir), data={"source": str(reviews_csv)},
                                train={"epochs": 3, "batch_size": 16, "learning_rate": 5e-3, "progress": False,
                                       "precision": "fp32"}), out)
    return out


class CrashAfter(TrainHooks):
    """A training hook that simulates the process dying after ``step`` optimizer steps."""

    def __init__(self, step):
        self.step = step

    def after_step(self, step):
        if step == self.step:
            raise KeyboardInterrupt("simulated kill")
        return False


CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if Path(p).exists()), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make test installs it as root)")


@contextlib.contextmanager
def headless_page(tmp_path: Path, width: int = 1200, height: int = 800):
    """A Playwright page in Debian's headless Chromium (never `playwright install`), files kept in tmp_path."""
    from playwright.sync_api import sync_playwright

    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg-config"), "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, env=env, args=[
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--allow-file-access-from-files"])
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def live_server(bundle: Path, workspace: Path, *extra: str):
    """A real ``fmkit serve`` process on loopback serving ``bundle`` as "reviews"; yields (process, base URL)."""
    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "fmkit", "serve", "--bundle", f"reviews={bundle}",
                                "--port", str(port), "--workspace", str(workspace), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(process.stderr.read().decode()[-2000:])
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail("fmkit serve did not become ready in 120 s")
            time.sleep(0.2)
        yield process, base
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


def corner_picture(label: int, size: int = 16, channels: int = 1, seed: int = 0):
    """Noise with a bright 6x6 square in corner ``label`` (0..3) as (H, W) or (H, W, 3) uint8."""
    import numpy as np

    rng = np.random.default_rng(seed)
    picture = rng.integers(0, 60, (size, size, channels), dtype=np.uint8)
    row = 1 if label in (0, 1) else size - 7
    column = 1 if label in (0, 2) else size - 7
    picture[row:row + 6, column:column + 6] = 230
    return picture[:, :, 0] if channels == 1 else picture


@pytest.fixture(scope="session")
def tiny_image_bundle(tmp_path_factory) -> Path:
    """A small CNN trained on 16x16 gray pictures whose bright corner is the class (4 classes)."""
    from PIL import Image

    from fmkit.cli.main import main as cli

    root = tmp_path_factory.mktemp("corners") / "corners"
    for index in range(160):
        folder = root / ["top-left", "top-right", "bottom-left", "bottom-right"][index % 4]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(corner_picture(index % 4, seed=index)).save(folder / f"{index}.png")
    out = tmp_path_factory.mktemp("image-bundle") / "corners-cnn"
    assert cli(["finetune", "--model", "cnn", "--data", str(root), "--out", str(out), "--epochs", "4",
                "--batch-size", "32", "--learning-rate", "3e-3", "--no-progress", "--precision", "fp32",
                "--no-augment"]) == 0
    return out
