"""Counterfactual fairness for text: swap identity terms and see whether the prediction moves.

For each term pair (``he``/``she``, ``John``/``Mary``, ``Christian``/``Muslim`` ...) every test
sentence holding either term gets the other one instead (whole words, case kept), and the audit
reports per pair: how many sentences were swapped, the share whose predicted label flipped, and
the mean shift of the probability of the originally predicted label. An unbiased model would
show no flips and no shift. fmkit ships a list (``identity_terms.json``); users add their own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError


@dataclass(frozen=True)
class TermPair:
    category: str
    a: str
    b: str

    @property
    def name(self) -> str:
        return f"{self.a}<->{self.b}"


def _parse_pairs(data, origin: str) -> list[TermPair]:
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), list):
        raise BadInputError(f"{origin}: expected {{\"pairs\": [{{\"category\": ..., \"a\": ..., \"b\": ...}}]}}")
    pairs = []
    for index, item in enumerate(data["pairs"]):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) and item.get(k) for k in ("a", "b")):
            raise BadInputError(f"{origin}: pair {index} needs non-empty strings 'a' and 'b', got {item!r}")
        if item["a"].lower() == item["b"].lower():
            raise BadInputError(f"{origin}: pair {index} swaps {item['a']!r} with itself")
        pairs.append(TermPair(str(item.get("category", "custom")), item["a"], item["b"]))
    return pairs


def load_term_pairs(extra: str | Path | None = None, builtin: bool = True) -> list[TermPair]:
    """fmkit's shipped pairs, plus those in ``extra`` (a JSON file of the same shape)."""
    pairs = []
    if builtin:
        text = resources.files("fmkit.audit").joinpath("identity_terms.json").read_text(encoding="utf-8")
        pairs += _parse_pairs(json.loads(text), "identity_terms.json")
    if extra is not None:
        path = Path(extra)
        if not path.is_file():
            raise BadInputError(f"--terms {path} does not exist")
        try:
            pairs += _parse_pairs(json.loads(path.read_text(encoding="utf-8")), str(path))
        except json.JSONDecodeError as error:
            raise BadInputError(f"--terms {path} is not valid JSON ({error})") from None
    return pairs


def _match_case(replacement: str, original: str) -> str:
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def swap(text: str, pair: TermPair) -> str | None:
    """``text`` with every ``a`` and ``b`` exchanged (simultaneously), or None when it holds neither."""
    pattern = re.compile(rf"(?<![\w'])({re.escape(pair.a)}|{re.escape(pair.b)})(?![\w'])", re.IGNORECASE)
    if not pattern.search(text):
        return None

    def replace(match: re.Match) -> str:
        found = match.group(0)
        other = pair.b if found.lower() == pair.a.lower() else pair.a
        return _match_case(other, found)

    return pattern.sub(replace, text)


def counterfactual_audit(predict_proba, labels: list[str], texts: list[str], pairs: list[TermPair],
                         min_sentences: int = 5) -> dict:
    """Flip rate and mean probability shift per term pair; ``predict_proba(texts) -> (n, classes)``."""
    originals: dict[int, int] = {}
    swapped: list[tuple[TermPair, int, str]] = []
    for pair in pairs:
        for index, text in enumerate(texts):
            changed = swap(text, pair)
            if changed is not None and changed != text:
                swapped.append((pair, index, changed))
                originals.setdefault(index, len(originals))
    if not swapped:
        return {"sentences": len(texts), "swapped": 0, "pairs": {},
                "note": "no test sentence holds any identity term of the list"}
    original_rows = sorted(originals, key=originals.get)
    base = predict_proba([texts[i] for i in original_rows])
    changed = predict_proba([text for _, _, text in swapped])
    per_pair: dict[str, dict] = {}
    for row, (pair, index, _) in enumerate(swapped):
        before = base[originals[index]]
        label = int(np.argmax(before))
        entry = per_pair.setdefault(pair.name, {"category": pair.category, "sentences": 0, "flips": 0, "shifts": []})
        entry["sentences"] += 1
        entry["flips"] += int(np.argmax(changed[row]) != label)
        entry["shifts"].append(float(changed[row][label] - before[label]))
    report = {}
    all_shifts = []
    for name, entry in per_pair.items():
        shifts = np.array(entry.pop("shifts"))
        all_shifts.append(shifts)
        report[name] = {**entry, "flip_rate": entry["flips"] / entry["sentences"],
                        "mean_probability_shift": float(shifts.mean()),
                        "mean_absolute_shift": float(np.abs(shifts).mean()),
                        "reliable": entry["sentences"] >= min_sentences}
    total = len(swapped)
    reliable = {n: v for n, v in report.items() if v["reliable"]}
    return {"sentences": len(texts), "swapped": total,
            "flip_rate": sum(entry["flips"] for entry in report.values()) / total,
            "mean_absolute_shift": float(np.abs(np.concatenate(all_shifts)).mean()),
            "worst_pair": max(reliable, key=lambda n: reliable[n]["flip_rate"]) if reliable else None,
            "min_sentences": min_sentences,
            "pairs": dict(sorted(report.items(), key=lambda item: -item[1]["sentences"]))}
