"""The recommender's data layer: cleaning with counted drops, the time split, the cold items, movielens."""

from __future__ import annotations

import csv
import random

import pytest

from fmkit.apps.recommend.data import RecommendDataConfig, load_interactions, title_key
from fmkit.errors import BadInputError

GROUPS = ["red", "green", "blue", "gold"]


def write_shop(root, users=40, items=40, per_user=10, *, extra_rows=(), time_format="iso", rating=True):
    """Items in four groups; each user rates items of one group, one per day (a learnable, ordered log)."""
    rng = random.Random(0)
    items_path, events_path = root / "items.csv", root / "events.csv"
    with open(items_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "title", "genres", "description"])
        for i in range(items):
            group = GROUPS[i % 4]
            writer.writerow([100 + i, f"{group} thing {i}", f"{group}|shop", f"made of {group}"])
    with open(events_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "ts"] + (["rating"] if rating else []))
        for user in range(users):
            mine = [100 + i for i in range(items) if i % 4 == user % 4]
            for day, item in enumerate(rng.sample(mine, per_user)):
                when = f"2020-01-{1 + day:02d}T{user % 24:02d}:00:00Z" if time_format == "iso" else \
                    str(1577836800 + 86400 * day + user)
                writer.writerow([user, item, when] + ([5] if rating else []))
        for row in extra_rows:
            writer.writerow(row)
    return events_path, items_path


def config(events, items, **overrides):
    settings = {"interactions": str(events), "items": str(items), "time_column": "ts",
                "text_columns": ["title", "genres", "description"], **overrides}
    return RecommendDataConfig(**settings)


def test_config_reports_every_error_at_once():
    with pytest.raises(ValueError) as error:
        RecommendDataConfig(data="netflix", test_fraction=0.7, cold_fraction=-0.1, user_column="id", item_column="id")
    message = str(error.value)
    for part in ("data='netflix'", "test_fraction=0.7", "cold_fraction=-0.1", "user_column and item_column"):
        assert part in message
    assert RecommendDataConfig().data == "movielens"  # no interactions table: the built-in data set


def test_cleaning_counts_every_drop(tmp_path):
    extra = [(0, 100, "2020-02-01T00:00:00Z", 5),    # user 0 already has item 100? only if sampled: see below
             (1, 101, "2020-02-02T00:00:00Z", 5), (1, 101, "2020-02-03T00:00:00Z", 5),  # a repeated event
             (2, 102, "2020-02-01T00:00:00Z", 2),     # below the threshold
             (3, 9999, "2020-02-01T00:00:00Z", 5),    # an item the items table lacks
             (500, 103, "2020-02-01T00:00:00Z", 5)]   # a user with one interaction
    events, items = write_shop(tmp_path, extra_rows=extra)
    data = load_interactions(config(events, items, cold_fraction=0.0))
    import pandas as pd

    raw = pd.read_csv(events)
    positive = raw[raw["rating"] >= 4]
    known = positive[positive["item"] != 9999]
    expected_duplicates = int(known.duplicated(["user", "item"]).sum())
    assert expected_duplicates >= 1
    assert data.drops == {"below_threshold": 1, "unknown_items": 1, "duplicates": expected_duplicates,
                          "users_with_one_interaction": 1}
    assert 500 not in set(data.train["user"]) and 9999 not in set(data.item_index)
    kept = len(data.train) + len(data.valid) + len(data.test) + len(data.cold)
    assert kept == len(raw) - sum(data.drops.values())
    # ids that are all integers become integers, so `--user 42` finds user 42
    assert data.train["user"].dtype.kind == "i" and data.items["item"].dtype.kind == "i"
    text = data.items.set_index("item").loc[100, "text"]
    assert text == "red thing 0. red, shop. made of red"
    assert str(data.train["time"].dt.tz) == "UTC"


def test_time_column_that_does_not_parse_names_the_rows(tmp_path):
    events, items = write_shop(tmp_path, extra_rows=[(0, 100, "yesterday", 5), (1, 101, "31/31/2020", 5)])
    with pytest.raises(BadInputError) as error:
        load_interactions(config(events, items))
    message = str(error.value)
    assert "time column 'ts' has 2 value(s)" in message and "'yesterday'" in message
    assert "--time-column none" in message
    with pytest.raises(BadInputError, match="no column"):
        load_interactions(config(events, items, time_column="when"))


def test_unix_seconds_and_row_order_and_implicit_tables(tmp_path):
    events, items = write_shop(tmp_path, time_format="unix", rating=False)
    data = load_interactions(config(events, items))
    assert data.facts["explicit"] is False and data.drops["below_threshold"] == 0
    assert data.train["time"].min().year == 2020
    by_rows = load_interactions(config(events, items, time_column=None))
    assert len(by_rows.test) == len(data.test)


def test_time_split_holds_out_each_users_latest_and_the_cold_items(tmp_path):
    events, items = write_shop(tmp_path, users=40, items=40, per_user=10)
    data = load_interactions(config(events, items, cold_fraction=0.1, seed=3))
    assert len(data.cold_items) == 4  # 10% of the 40 items
    for frame in (data.train, data.valid, data.test):
        assert not set(frame["item"]) & data.cold_items
    assert set(data.cold["item"]) <= data.cold_items and len(data.cold) > 0
    for user, test in data.test.groupby("user"):
        train = data.train[data.train["user"] == user]
        valid = data.valid[data.valid["user"] == user]
        warm = len(train) + len(valid) + len(test)
        assert len(test) == max(1, round(0.2 * warm))
        assert train["time"].max() <= (valid["time"].min() if len(valid) else test["time"].min())
        if len(valid):
            assert valid["time"].max() <= test["time"].min()
    # the same seed draws the same cold items; another seed, others
    assert load_interactions(config(events, items, cold_fraction=0.1, seed=3)).cold_items == data.cold_items
    assert load_interactions(config(events, items, cold_fraction=0.1, seed=4)).cold_items != data.cold_items
    # histories: train before valid, train + valid before test, oldest first
    user = data.test["user"].iloc[0]
    history = data.histories([user], "test")[0]
    expected = (data.train[data.train["user"] == user]["item"].tolist()
                + data.valid[data.valid["user"] == user]["item"].tolist())
    assert history == expected
    assert list(data.items["item"]) == list(data.item_index)
    assert (data.items["popularity"].sum()) == len(data.train)


def test_unknown_item_column_and_missing_rating_values_are_clear(tmp_path):
    events, items = write_shop(tmp_path, extra_rows=[(0, 100, "2020-02-01T00:00:00Z", "five")])
    with pytest.raises(BadInputError, match="rating column 'rating' has 1 value"):
        load_interactions(config(events, items))
    with pytest.raises(BadInputError, match="set item_column"):
        load_interactions(config(events, items, item_column="sku"))


def test_title_keys_meet_rotten_tomatoes_slugs():
    assert title_key("Deer Hunter, The") == title_key("deer hunter") == "deer_hunter"
    assert title_key("Fallen Angels (Duo luo tian shi)") == "fallen_angels"
    assert title_key("Ali G Indahouse") == "ali_g_indahouse"


def test_movielens_loads_with_the_pinned_pandas():
    data = load_interactions(RecommendDataConfig(data="movielens"))
    assert data.facts["rows"] == 100_004 and data.n_items == 9_066
    assert data.drops["below_threshold"] == 48_436  # ratings under 4 stars
    assert data.drops["unknown_items"] == 0 and data.drops["duplicates"] == 0
    assert len(data.user_index) == 668  # 671 users; 3 have a single rating >= 4
    assert 200 <= data.facts["plots_matched"] <= 400  # title matches within the corpus' years
    with_plot = data.items[data.items["plot_summary"] != ""]
    assert with_plot["year"].between(2000, 2005).all()
    assert len(data.cold_items) == round(0.1 * data.items["item"].isin(
        set(data.train["item"]) | set(data.valid["item"]) | set(data.test["item"]) | data.cold_items).sum())
    toy_story = data.items.set_index("item").loc[1]
    assert toy_story["title"] == "Toy Story" and "Animation" in toy_story["text"]


def test_parquet_tables_keep_their_timestamps_and_pick_text_columns(tmp_path):
    import pandas as pd

    events = pd.DataFrame({"u": [1, 1, 1, 2, 2, 2], "i": [10, 11, 12, 10, 12, 13],
                           "t": pd.date_range("2021-03-01", periods=6, freq="h", tz="UTC")})
    items = pd.DataFrame({"i": [10, 11, 12, 13], "title": ["a", "b", "c", "d"], "genres": ["x|y"] * 4,
                          "price": [1.0, 2.0, 3.0, 4.0]})
    events.to_parquet(tmp_path / "events.parquet")
    items.to_parquet(tmp_path / "items.parquet")
    data = load_interactions(RecommendDataConfig(interactions=str(tmp_path / "events.parquet"),
                                                 items=str(tmp_path / "items.parquet"), user_column="u",
                                                 item_column="i", time_column="t", cold_fraction=0.0))
    assert data.facts["text_columns"] == ["title", "genres"]  # the text columns, not the price
    assert data.items.set_index("item").loc[10, "text"] == "a. x, y"
    assert data.test.sort_values("user")["item"].tolist() == [12, 13]  # each user's latest


def test_genres_use_one_separator_whatever_the_file_used(tmp_path):
    events, items = write_shop(tmp_path)
    items.write_text(items.read_text().replace("|shop", ";shop"))
    data = load_interactions(config(events, items, genre_separator=";"), log=lambda line: None)
    assert data.items["genres"].str.contains("|", regex=False).all()  # what the hybrid's genre features split on
    assert not data.items["genres"].str.contains(";").any() and "; " not in data.items["text"].iloc[0]
