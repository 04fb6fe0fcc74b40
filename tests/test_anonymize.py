"""Anonymization: recall/precision per entity on the planted set, operators, pseudonym round trip, errors."""

import csv
import json
import subprocess
import sys

import pytest

from fmkit.errors import BadInputError
from fmkit.privacy.anonymize import AnonymizeConfig, anonymize_texts, keyed_token
from fmkit.privacy.planted import planted_pii, score_detection
from fmkit.data.pii import ner_available

KEY = b"a-test-key-of-more-than-16-bytes"


def fmkit(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "fmkit", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_planted_pii_is_found_per_entity():
    from fmkit.privacy.anonymize import Detector, resolve_entities

    rows = planted_pii(240, seed=3)
    detector = Detector(resolve_entities(None))
    found = [[(s, e, entity) for s, e, entity, _ in hits] for hits in detector.detect([r.text for r in rows])]
    scores = score_detection(rows, found)
    expected = {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "URL", "US_SSN"}
    if ner_available():
        expected |= {"PERSON", "LOCATION"}
    assert expected <= set(scores)
    for entity in expected:
        floor = 0.9 if entity in ("PERSON", "LOCATION") else 1.0  # patterns are exact; NER is a model
        assert scores[entity]["recall"] >= floor, (entity, scores[entity])
        assert scores[entity]["precision"] >= 0.9, (entity, scores[entity])


def test_planted_values_are_valid_for_their_checksums():
    from fmkit.privacy.planted import iban, luhn_complete

    assert iban("GB", "WEST12345698765432") == "GB82WEST12345698765432"  # the IBAN registry's example
    import random

    number = luhn_complete("4", 16, random.Random(0))
    digits = [int(d) for d in number][::-1]
    assert sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits)) % 10 == 0


@pytest.mark.parametrize("operator, check", [
    ("replace", lambda out: out == "Mail <EMAIL_ADDRESS> or call <PHONE_NUMBER> today."),
    ("mask", lambda out: "@" not in out and "*" * 10 in out and out.endswith("today.")),
    ("redact", lambda out: out == "Mail  or call  today."),
    ("hash", lambda out: out == f"Mail {keyed_token(KEY, 'EMAIL_ADDRESS', 'ann.lee@example.com')} or call "
                                f"{keyed_token(KEY, 'PHONE_NUMBER', '(212) 736-4410')} today."),
])
def test_operators(operator, check):
    text = "Mail ann.lee@example.com or call (212) 736-4410 today."
    [out], counts = anonymize_texts([text], AnonymizeConfig(operator=operator, entities=["EMAIL_ADDRESS", "PHONE_NUMBER"]),
                                    key=KEY)
    assert check(out), out
    assert counts == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}


def test_hash_maps_one_value_to_one_token_and_depends_on_the_key():
    cfg = AnonymizeConfig(operator="hash", entities=["EMAIL_ADDRESS"])
    texts = ["from a.b@example.com", "again a.b@example.com", "other c.d@example.com"]
    out, _ = anonymize_texts(texts, cfg, key=KEY)
    tokens = [t.split()[-1] for t in out]
    assert tokens[0] == tokens[1] != tokens[2]
    other, _ = anonymize_texts(texts, cfg, key=b"another-key-of-16-bytes-or-more")
    assert other[0].split()[-1] != tokens[0]
    with pytest.raises(BadInputError, match="needs a key"):
        anonymize_texts(texts, cfg)


def test_pool_and_single_process_agree(monkeypatch):
    import fmkit.privacy.anonymize as anonymize

    texts = [row.text for row in planted_pii(40, seed=5)]
    names = ["PERSON", "LOCATION"] if ner_available() else []  # spaCy in workers that cannot import torch
    cfg = AnonymizeConfig(entities=["EMAIL_ADDRESS", "CREDIT_CARD", "IP_ADDRESS", "PHONE_NUMBER", *names], workers=1)
    single, counts = anonymize_texts(texts, cfg)
    monkeypatch.setattr(anonymize, "POOL_MIN_TEXTS", 10)
    pooled, pooled_counts = anonymize_texts(texts, cfg.model_copy(update={"workers": 2}))
    assert pooled == single and pooled_counts == counts
    assert all(counts[name] > 0 for name in names)


def _write(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"])
        writer.writerows(rows)
    return path


def test_pseudonymize_round_trip_and_wrong_key(tmp_path):
    source = _write(tmp_path / "tickets.csv", [(1, "Card 4111 1111 1111 1111 from 10.1.2.3", "billing"),
                                               (2, "no pii here", "other"),
                                               (3, "Again 4111 1111 1111 1111", "billing")])
    out, mapping, restored = tmp_path / "anon.csv", tmp_path / "map.enc", tmp_path / "restored.csv"
    env = {"FMKIT_ANON_KEY": KEY.decode()}
    result = fmkit("anonymize", source, "--operator", "pseudonymize", "--mapping", mapping, "--out", out, "--json",
                   "--entities", "CREDIT_CARD,IP_ADDRESS", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["columns"]["text"]["found"] == {"CREDIT_CARD": 2, "IP_ADDRESS": 1}
    anonymized = out.read_text()
    assert "4111" not in anonymized and "<CREDIT_CARD_" in anonymized and "no pii here" in anonymized
    assert "4111" not in mapping.read_text()  # the mapping is encrypted
    assert json.loads((tmp_path / "anon.csv.report.json").read_text())["rows"] == 3
    wrong = fmkit("anonymize", out, "--reverse", "--mapping", mapping, "--out", restored,
                  env={"FMKIT_ANON_KEY": "a-wrong-key-of-16-bytes-plus"})
    assert wrong.returncode == 2 and "does not open" in wrong.stderr and not restored.exists()
    right = fmkit("anonymize", out, "--reverse", "--mapping", mapping, "--out", restored, env=env)
    assert right.returncode == 0, right.stderr
    assert restored.read_text() == source.read_text()


def test_bad_input_is_named_and_nothing_is_written(tmp_path):
    source = _write(tmp_path / "t.csv", [(1, "x", "y")])
    out = tmp_path / "o.csv"
    result = fmkit("anonymize", source, "--text-column", "body", "--out", out)
    assert result.returncode == 2 and "'body'" in result.stderr and "'text'" in result.stderr and not out.exists()
    result = fmkit("anonymize", source, "--entities", "EMAIL,PHONE_NUMBER", "--out", out)
    assert result.returncode == 2 and "EMAIL_ADDRESS" in result.stderr and not out.exists()
    result = fmkit("anonymize", source, "--out", source)
    assert result.returncode == 2 and "is the input file" in result.stderr
    result = fmkit("anonymize", source, "--operator", "hash", "--out", out, env={"FMKIT_ANON_KEY": ""})
    assert result.returncode == 2 and "FMKIT_ANON_KEY" in result.stderr and not out.exists()


def test_anonymize_stage_feeds_finetune_in_a_recipe(tiny_bert_dir, reviews_csv, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
name: private
stages:
  - name: clean-data
    stage: anonymize
    source: {reviews_csv}
    entities: [EMAIL_ADDRESS, CREDIT_CARD]
  - name: ft
    stage: finetune
    model: {tiny_bert_dir}
    data: {{source: clean-data}}
    train: {{epochs: 1, batch_size: 16, learning_rate: 0.005, progress: false, precision: fp32}}
""")
    result = fmkit("run", recipe, "--workspace", tmp_path / "ws", "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    manifest = json.loads((tmp_path / "ws" / "runs" / run["run"] / "ft" / "fmkit.json").read_text())
    assert manifest["data"]["source"].endswith("clean-data/reviews.csv")
