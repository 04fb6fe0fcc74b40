"""A small synthetic shop for the recommender's CLI and serving tests, trained once per test session.

Items belong to one of four groups named by a word in their text (and their genre); each user picks
items of one group over time, so both the collaborative models and the text model have something
to learn. The tables carry what real logs carry: an ISO time column, explicit ratings (one below the
threshold), a duplicate event, an event naming an item the items table lacks, and a user with one
interaction — each must be counted and dropped.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from conftest import FILLER, POSITIVE

GROUPS = POSITIVE[:4]
USERS, ITEMS, PER_USER = 60, 48, 12
TRAIN_FLAGS = ("--text-epochs", "3", "--text-learning-rate", "0.003", "--text-max-length", "48",
               "--text-precision", "fp32", "--text-batch-size", "16", "--threads", "1", "--no-text-onnx",
               "--trees", "30", "--hybrid-threads", "1", "--min-rows-in-leaf", "5")


def write_tables(root: Path) -> tuple[Path, Path]:
    rng = random.Random(0)
    items = root / "items.csv"
    with open(items, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "title", "genres", "description", "year"])
        for i in range(ITEMS):
            writer.writerow([100 + i, f"{GROUPS[i % 4]} {i}", GROUPS[i % 4], " ".join(rng.sample(FILLER, 4)),
                             1990 + i % 7])
    interactions = root / "interactions.csv"
    with open(interactions, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "ts", "rating"])
        for user in range(USERS):
            mine = [100 + i for i in range(ITEMS) if i % 4 == user % 4]
            for step, item in enumerate(rng.sample(mine, PER_USER)):
                writer.writerow([user, item, f"2020-01-{1 + step:02d}T{user % 24:02d}:00:00Z", 5])
        writer.writerow([0, 100, "2020-02-01T00:00:00Z", 5])      # a duplicate of user 0's event (if 100 is theirs)
        writer.writerow([1, 101, "2020-02-01T00:00:00Z", 2])      # below the rating threshold
        writer.writerow([2, 9999, "2020-02-01T00:00:00Z", 5])     # an item the items table lacks
        writer.writerow([500, 102, "2020-02-01T00:00:00Z", 5])    # a user with one interaction
    return interactions, items


def trained_recommender(tmp_path_factory, tiny_bert_dir) -> Path:
    """The recommender directory, trained with the real CLI the first time a test module asks for it."""
    from fmkit.cli.main import main

    root = tmp_path_factory.getbasetemp() / "recommend-shop"
    out = root / "shop"
    if (out / "recommender.json").is_file():
        return out
    root.mkdir(exist_ok=True)
    interactions, items = write_tables(root)
    code = main(["recommend", "train", "--interactions", str(interactions), "--items", str(items),
                 "--time-column", "ts", "--text-columns", "title,genres,description",
                 "--text-base-model", str(tiny_bert_dir), *TRAIN_FLAGS, "--out", str(out)])
    assert code == 0
    return out
